//! Every event type OpenAI documents (the 58 members of `ResponseStreamEvent`), plus keepalive and an unknown future
//! type, goes through the JSON -> proto conversion and back unchanged: nothing is dropped.

use openai_grpc_gateway::{
    convert::responses::{event, event_to_json},
    fake,
    openai::UpstreamMeta,
    pb::create_response_response::Event,
};
use serde_json::Value;

/// JSON equality where numbers compare by value (`1` and `1.0` are the same JSON number; a
/// double-typed field such as `temperature` sends back `1.0`). Key order never matters.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn every_event_type_round_trips_losslessly() {
    let events = fake::every_event_type();
    assert!(
        events.len() >= 60,
        "58 documented types + keepalive + unknown, got {}",
        events.len()
    );
    let mut unknown = 0;
    for original in events {
        let bytes = serde_json::to_vec(&original).unwrap();
        let converted = event(&bytes, &UpstreamMeta::default()).expect("converts");
        let kind = original["type"].as_str().unwrap().to_owned();
        match &converted.message.event {
            Some(Event::Unknown(_)) => unknown += 1,
            Some(_) => {}
            None => panic!("{kind}: no variant set"),
        }
        let back = event_to_json(&converted.message);
        assert!(
            same(&back, &original),
            "{kind} changed:\n  sent: {original}\n  back: {back}"
        );
    }
    assert_eq!(
        unknown, 1,
        "only the made-up future event type is unknown to the contract"
    );
}

#[test]
fn typed_fields_are_filled_not_just_extra_json() {
    // A lossless converter could cheat by stuffing everything into extra_json; the common
    // events must land in their typed fields.
    for original in fake::every_event_type() {
        let kind = original["type"].as_str().unwrap().to_owned();
        let converted = event(
            &serde_json::to_vec(&original).unwrap(),
            &UpstreamMeta::default(),
        )
        .unwrap();
        if matches!(converted.message.event, Some(Event::Unknown(_))) {
            continue;
        }
        let debug = format!("{:?}", converted.message);
        if let Some(item_id) = original.get("item_id").and_then(Value::as_str) {
            assert!(
                debug.contains(&format!("item_id: Some({item_id:?})")),
                "{kind}: item_id not typed: {debug}"
            );
        }
        if let Some(delta) = original.get("delta").and_then(Value::as_str) {
            assert!(
                debug.contains(&format!("delta: Some({delta:?})")),
                "{kind}: delta not typed: {debug}"
            );
        }
    }
}
