//! Every event type OpenAI documents (the 58 members of `ResponseStreamEvent`), plus keepalive and an unknown future
//! type, goes through the JSON -> proto conversion and back unchanged: nothing is dropped. And
//! every output item type (the 28 members of `OutputItem`) arrives typed: in its own variant,
//! with nothing but nulls left in `extra_json`.

use openai_grpc_gateway::{
    convert::{
        responses::{event, event_to_json},
        schema,
    },
    fake,
    openai::UpstreamMeta,
    pb::{create_response_response::Event, pool},
};
use prost_reflect::{DynamicMessage, ReflectMessage, Value as PValue};
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

/// Where, under `message`, something arrived untyped: a `RawJson` catch-all (an unknown type)
/// or an `extra_json` holding anything but nulls (a key the contract does not model).
fn untyped(message: &DynamicMessage, path: &str, found: &mut Vec<String>) {
    if message.descriptor().full_name() == "openai_gateway.v1.RawJson" {
        found.push(format!(
            "{path}: unknown {:?}",
            message.get_field_by_name("json")
        ));
        return;
    }
    for (field, value) in message.fields() {
        let here = format!("{path}.{}", field.name());
        match value {
            PValue::String(text) if field.name() == "extra_json" => {
                let extra: serde_json::Map<String, Value> =
                    serde_json::from_str(text).expect("extra_json is a JSON object");
                if extra.values().any(|v| !v.is_null()) {
                    found.push(format!("{here}: {text}"));
                }
            }
            PValue::Message(m) => untyped(m, &here, found),
            PValue::List(items) => {
                for (i, v) in items.iter().enumerate() {
                    if let PValue::Message(m) = v {
                        untyped(m, &format!("{here}[{i}]"), found);
                    }
                }
            }
            PValue::Map(entries) => {
                for (k, v) in entries {
                    if let PValue::Message(m) = v {
                        untyped(m, &format!("{here}[{k:?}]"), found);
                    }
                }
            }
            _ => {}
        }
    }
}

fn dynamic(message: &impl prost::Message, name: &str) -> DynamicMessage {
    let desc = pool()
        .get_message_by_name(&format!("openai_gateway.v1.{name}"))
        .unwrap();
    DynamicMessage::decode(desc, message.encode_to_vec().as_slice()).unwrap()
}

#[test]
fn every_output_item_type_arrives_typed_and_round_trips() {
    let events = fake::every_item_events();
    let item_union = pool()
        .get_message_by_name("openai_gateway.v1.OutputItem")
        .unwrap();
    for original in &events {
        let kind = original["type"].as_str().unwrap();
        let converted = event(
            &serde_json::to_vec(original).unwrap(),
            &UpstreamMeta::default(),
        )
        .expect("converts");
        let back = event_to_json(&converted.message);
        assert!(
            same(&back, original),
            "{kind} changed:\n  sent: {original}\n  back: {back}"
        );
        let mut found = Vec::new();
        match &converted.message.event {
            Some(Event::OutputItemDone(done)) => {
                let item = done.item.as_ref().expect("item");
                let item = dynamic(item, "OutputItem");
                let ty = original["item"]["type"].as_str().unwrap();
                let variant = schema().variant(&item_union, ty);
                assert!(variant.is_some(), "{ty}: no typed variant");
                assert!(
                    item.has_field(variant.as_ref().unwrap()),
                    "{ty}: not in its variant: {item:?}"
                );
                untyped(&item, ty, &mut found);
            }
            Some(Event::Completed(completed)) => {
                let response = completed.response.as_ref().unwrap();
                assert_eq!(response.output.len(), 28, "one item of each type");
                for (i, item) in response.output.iter().enumerate() {
                    untyped(
                        &dynamic(item, "OutputItem"),
                        &format!("output[{i}]"),
                        &mut found,
                    );
                }
                for (name, message) in [
                    (
                        "moderation",
                        dynamic(response.moderation.as_ref().unwrap(), "ResponseModeration"),
                    ),
                    (
                        "prompt_cache_options",
                        dynamic(
                            response.prompt_cache_options.as_ref().unwrap(),
                            "ResponsePromptCacheOptions",
                        ),
                    ),
                    (
                        "reasoning",
                        dynamic(response.reasoning.as_ref().unwrap(), "ResponseReasoning"),
                    ),
                ] {
                    untyped(&message, name, &mut found);
                }
            }
            _ => {}
        }
        assert!(
            found.is_empty(),
            "{kind}: untyped parts:\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn the_untyped_probe_sees_unknown_items_and_unmodelled_keys() {
    // The probe itself: an item of a made-up type and an unmodelled key must be reported.
    let mut events = fake::every_item_events();
    let completed = events.last_mut().unwrap();
    completed["response"]["output"][0]["sparkle"] = serde_json::json!(1);
    completed["response"]["output"][1] = serde_json::json!({"type": "hologram_call", "id": "h_1"});
    let converted = event(
        &serde_json::to_vec(completed).unwrap(),
        &UpstreamMeta::default(),
    )
    .unwrap();
    let Some(Event::Completed(c)) = &converted.message.event else {
        panic!()
    };
    let mut found = Vec::new();
    for (i, item) in c.response.as_ref().unwrap().output.iter().enumerate() {
        untyped(
            &dynamic(item, "OutputItem"),
            &format!("output[{i}]"),
            &mut found,
        );
    }
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with("output[0].message.extra_json"),
        "{found:?}"
    );
    assert!(found[1].starts_with("output[1].unknown"), "{found:?}");
}
