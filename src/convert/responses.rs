//! The Responses API through the generic converter: the request body sent upstream, and each
//! upstream stream event (or the non-streamed Response) as a typed `CreateResponseResponse`.

use std::sync::LazyLock;

use bytes::Bytes;
use prost::Message;
use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, Value as PValue};
use serde_json::{Map, Value as Json};

use super::{
    doc::{Doc, Node},
    json::struct_json,
    schema,
};
use crate::{
    openai::{ApiError, UpstreamError, UpstreamMeta},
    pb,
    usage::Usage,
};

const ENVELOPE: &str = "openai_gateway.v1.CreateResponseResponse";
const REQUEST: &str = "openai_gateway.v1.CreateResponseRequest";

/// What an event means for the stream that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// More events follow.
    Continue,
    /// `response.completed` or `response.incomplete`: the stream ended normally.
    Terminal,
    /// `error` or `response.failed`: forward the event, then end with this error's status.
    Failed(UpstreamError),
}

/// One converted upstream event.
#[derive(Debug, Clone)]
pub struct Event {
    /// The typed message for the caller.
    pub message: pb::CreateResponseResponse,
    /// What it means for the stream.
    pub outcome: Outcome,
}

fn descriptor(name: &str) -> MessageDescriptor {
    crate::pb::pool()
        .get_message_by_name(name)
        .expect("message is in the contract")
}

/// The envelope's descriptor, looked up once.
fn envelope() -> &'static MessageDescriptor {
    static ENVELOPE_DESC: LazyLock<MessageDescriptor> = LazyLock::new(|| descriptor(ENVELOPE));
    &ENVELOPE_DESC
}

/// The JSON body for `POST /responses`: the request's fields under OpenAI's names, then
/// `extra_body` merged over them, then `stream`.
pub fn request_body(request: &pb::CreateResponseRequest, stream: bool) -> Bytes {
    let mut body = request_object(request, REQUEST);
    body.insert("stream".into(), Json::Bool(stream));
    to_bytes(body)
}

/// The JSON object of a request message of type `type_name` (a `CreateResponseRequest`,
/// `CountInputTokensRequest`, a conversation request...): its fields under OpenAI's names
/// (`gateway_only` fields, such as path parameters, left out), then its `extra_body`, if it has
/// one, merged over them.
pub fn request_object<M: Message>(request: &M, type_name: &str) -> Map<String, Json> {
    let dynamic = DynamicMessage::decode(descriptor(type_name), request.encode_to_vec().as_slice())
        .expect("a message decodes as its own descriptor");
    let mut body = match schema().to_json(&dynamic) {
        Json::Object(object) => object,
        _ => Map::new(),
    };
    if dynamic.has_field_by_name("extra_body")
        && let Some(PValue::Message(extra)) = dynamic.get_field_by_name("extra_body").as_deref()
        && let Json::Object(extra) = struct_json(extra)
    {
        body.extend(extra);
    }
    body
}

/// A JSON object as a request body.
pub fn to_bytes(body: Map<String, Json>) -> Bytes {
    Bytes::from(serde_json::to_vec(&Json::Object(body)).expect("JSON values serialize"))
}

/// A JSON answer (`body`) as the generated message `M` of type `type_name`: typed where the
/// contract types it, the rest kept in `extra_json`.
pub fn answer<M: Message + Default>(
    body: &[u8],
    type_name: &str,
    meta: &UpstreamMeta,
) -> Result<M, UpstreamError> {
    let doc = Doc::parse(body).map_err(|e| UpstreamError::Decode {
        message: format!("the body is not JSON ({e})"),
        meta: meta.clone(),
    })?;
    if !doc.is_object() {
        return Err(not_an_object(meta));
    }
    schema()
        .decode_json(&descriptor(type_name), &doc)
        .map_err(|e| UpstreamError::Decode {
            message: format!("the body could not be converted ({e})"),
            meta: meta.clone(),
        })
}

/// A stored Response (the body of `GET /responses/{id}` or of a cancel), with the gateway's
/// `output_text`.
pub fn stored(body: &[u8], meta: &UpstreamMeta) -> Result<pb::Response, UpstreamError> {
    use pb::create_response_response::Event as E;
    let event = non_streamed(body, meta)?;
    match event.message.event {
        Some(
            E::Completed(e)
            | E::Incomplete(e)
            | E::Failed(e)
            | E::Queued(e)
            | E::InProgress(e)
            | E::Created(e),
        ) => Ok(e.response.unwrap_or_default()),
        _ => Err(not_an_object(meta)),
    }
}

/// The response id a lifecycle event carries (`created`, `queued`, `in_progress`...).
pub fn response_id(message: &pb::CreateResponseResponse) -> Option<&str> {
    use pb::create_response_response::Event as E;
    match message.event.as_ref()? {
        E::Created(e)
        | E::Queued(e)
        | E::InProgress(e)
        | E::Completed(e)
        | E::Incomplete(e)
        | E::Failed(e) => e.response.as_ref()?.id.as_deref(),
        _ => None,
    }
}

/// Converts one upstream SSE `data` payload into a typed message.
///
/// The hot path of a stream: the JSON is parsed into a [`Doc`] that borrows from `data`, then
/// written as protobuf wire bytes by the descriptor-driven converter and decoded into the
/// generated type. An `error` event is parsed a second time, into a `serde_json::Value`, for
/// [`ApiError`] (it ends the stream, so this happens at most once).
pub fn event(data: &[u8], meta: &UpstreamMeta) -> Result<Event, UpstreamError> {
    let doc = Doc::parse(data).map_err(|e| UpstreamError::Decode {
        message: format!("a stream event is not JSON ({e})"),
        meta: meta.clone(),
    })?;
    if !doc.is_object() {
        return Err(UpstreamError::Decode {
            message: "a stream event is not a JSON object".into(),
            meta: meta.clone(),
        });
    }
    let outcome = match doc.get("type").and_then(Node::as_str) {
        Some("error") => {
            let json: Json = serde_json::from_slice(data).unwrap_or_default();
            Outcome::Failed(UpstreamError::StreamError {
                error: Box::new(ApiError::from_error_event(&json)),
                meta: meta.clone(),
            })
        }
        other => outcome(other, &doc, meta),
    };
    convert_event(&doc, outcome, meta, data.len())
}

/// The single message for a non-streamed call (`stream: false`), from the raw body: the
/// Response arrives in the lifecycle variant matching its status (`failed`, `incomplete`,
/// `queued`, `in_progress`), otherwise `completed`. Parsed into a borrowed [`Doc`], not a
/// `serde_json::Value`: half the CPU of converting a non-streamed call.
pub fn non_streamed(body: &[u8], meta: &UpstreamMeta) -> Result<Event, UpstreamError> {
    let response = Doc::parse(body).map_err(|e| UpstreamError::Decode {
        message: format!("the body is not JSON ({e})"),
        meta: meta.clone(),
    })?;
    if !response.is_object() {
        return Err(not_an_object(meta));
    }
    let kind = lifecycle_type(response.get("status").and_then(Node::as_str));
    let object = Doc::Object(vec![
        ("type".into(), Doc::String(kind.into())),
        ("sequence_number".into(), Doc::Number(0.into())),
        ("response".into(), response),
    ]);
    let outcome = outcome(Some(kind), &object, meta);
    convert_event(&object, outcome, meta, body.len())
}

/// The model and token usage of a lifecycle message that carries a Response with usage
/// (`completed`, `incomplete`, `failed`).
pub fn usage(message: &pb::CreateResponseResponse) -> Option<Usage> {
    use pb::create_response_response::Event as E;
    match message.event.as_ref()? {
        E::Completed(e) | E::Incomplete(e) | E::Failed(e) => response_usage(e.response.as_ref()?),
        _ => None,
    }
}

/// The model and token usage of a Response, if it reports usage.
pub fn response_usage(response: &pb::Response) -> Option<Usage> {
    let usage = response.usage.as_ref()?;
    Some(Usage {
        model: response.model.clone().unwrap_or_default(),
        input_tokens: usage.input_tokens.unwrap_or(0),
        output_tokens: usage.output_tokens.unwrap_or(0),
        cached_input_tokens: usage
            .input_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens),
        reasoning_tokens: usage
            .output_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens),
    })
}

/// A gateway heartbeat: the `keepalive` variant without a `sequence_number` (OpenAI's own
/// keepalive events carry one).
pub fn keepalive() -> pb::CreateResponseResponse {
    pb::CreateResponseResponse {
        sequence_number: None,
        event: Some(pb::create_response_response::Event::Keepalive(
            pb::KeepaliveEvent::default(),
        )),
    }
}

fn not_an_object(meta: &UpstreamMeta) -> UpstreamError {
    UpstreamError::Decode {
        message: "the response body is not a JSON object".into(),
        meta: meta.clone(),
    }
}

/// The event type whose lifecycle variant carries a Response of this `status`.
fn lifecycle_type(status: Option<&str>) -> &'static str {
    match status {
        Some("failed") => "response.failed",
        Some("incomplete") => "response.incomplete",
        Some("queued") => "response.queued",
        Some("in_progress") => "response.in_progress",
        _ => "response.completed",
    }
}

/// What an event of type `kind` means for its stream (`error` events are handled by the caller).
fn outcome<N: Node>(kind: Option<&str>, object: &N, meta: &UpstreamMeta) -> Outcome {
    match kind {
        Some("response.completed" | "response.incomplete") => Outcome::Terminal,
        Some("response.failed") => {
            let error = object.get("response").and_then(|r| r.get("error"));
            let field = |k: &str| error.and_then(|e| e.get(k)).and_then(N::as_str);
            Outcome::Failed(UpstreamError::ResponseFailed {
                code: field("code").map(str::to_owned),
                message: field("message")
                    .unwrap_or("the response failed without an error message")
                    .to_owned(),
                meta: meta.clone(),
            })
        }
        _ => Outcome::Continue,
    }
}

/// `capacity`: room to reserve for the wire bytes (the JSON's size is plenty: protobuf is
/// smaller).
fn convert_event<N: Node>(
    object: &N,
    outcome: Outcome,
    meta: &UpstreamMeta,
    capacity: usize,
) -> Result<Event, UpstreamError> {
    let envelope = envelope();
    let mut wire = Vec::with_capacity(capacity);
    schema().encode_object(envelope, object, &mut wire);
    if let Some(text) = object.get("response").and_then(output_text)
        && let Some(kind) = object.get("type").and_then(N::as_str)
    {
        append_output_text(envelope, kind, &text, &mut wire);
    }
    let message =
        pb::CreateResponseResponse::decode(wire.as_slice()).map_err(|e| UpstreamError::Decode {
            message: format!("a stream event could not be converted ({e})"),
            meta: meta.clone(),
        })?;
    Ok(Event { message, outcome })
}

/// All `output_text` parts of all `message` items joined in order, as the OpenAI SDKs compute
/// `response.output_text`. `None` when the object has no `output` array.
fn output_text<N: Node>(response: &N) -> Option<String> {
    let output = response.get("output")?.as_array()?;
    let mut text = String::new();
    for item in output {
        if item.get("type").and_then(N::as_str) != Some("message") {
            continue;
        }
        for part in item
            .get("content")
            .and_then(N::as_array)
            .into_iter()
            .flatten()
        {
            if part.get("type").and_then(N::as_str) == Some("output_text")
                && let Some(t) = part.get("text").and_then(N::as_str)
            {
                text.push_str(t);
            }
        }
    }
    Some(text)
}

/// Sets `response.output_text` on the lifecycle variant that `kind` selects, by appending its
/// wire bytes to the encoded envelope: protobuf merges a repeated occurrence of a singular
/// message field (the variant, then its `response`) into the one already read, so only
/// `output_text` changes. Nothing is appended for a variant without a `response` message that
/// has an `output_text` string.
fn append_output_text(envelope: &MessageDescriptor, kind: &str, text: &str, wire: &mut Vec<u8>) {
    let Some(variant) = schema().variant(envelope, kind) else {
        return;
    };
    let Kind::Message(lifecycle) = variant.kind() else {
        return;
    };
    let Some(response) = lifecycle.get_field_by_name("response") else {
        return;
    };
    let Kind::Message(response_desc) = response.kind() else {
        return;
    };
    let Some(field) = response_desc
        .get_field_by_name("output_text")
        .filter(|f| f.kind() == Kind::String && !f.is_list())
    else {
        return;
    };
    let mut text_field = Vec::with_capacity(text.len() + 8);
    put_len(&mut text_field, field.number(), text.as_bytes());
    let mut response_field = Vec::with_capacity(text_field.len() + 8);
    put_len(&mut response_field, response.number(), &text_field);
    put_len(wire, variant.number(), &response_field);
}

/// A length-delimited field: key, length, bytes.
fn put_len(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    prost::encoding::encode_key(number, prost::encoding::WireType::LengthDelimited, out);
    prost::encoding::encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Converts a typed message back into the JSON event OpenAI sent (used to prove losslessness,
/// and by callers that want JSON).
pub fn event_to_json(message: &pb::CreateResponseResponse) -> Json {
    let dynamic = DynamicMessage::decode(descriptor(ENVELOPE), message.encode_to_vec().as_slice())
        .expect("a message decodes as its own descriptor");
    schema().to_json(&dynamic)
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng, rngs::StdRng};

    use super::*;
    use crate::pb::create_response_response::Event as E;

    const CREATED: &str = r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","created_at":1767225600,"status":"in_progress","background":false,"completed_at":null,"error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"gpt-4.1-mini-2025-04-14","output":[],"parallel_tool_calls":true,"reasoning":{"effort":null,"summary":null},"service_tier":"auto","store":true,"temperature":1.0,"text":{"format":{"type":"text"},"verbosity":"medium"},"tool_choice":"auto","tools":[],"top_logprobs":0,"top_p":1.0,"truncation":"disabled","usage":null,"user":null,"metadata":{}}}"#;
    const DELTA: &str = r#"{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi","logprobs":[],"obfuscation":"q8ZrT1vLm0XcAa"}"#;
    const COMPLETED: &str = r#"{"type":"response.completed","sequence_number":10,"response":{"id":"resp_1","object":"response","status":"completed","output":[{"id":"msg_1","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"Hi there!"}],"role":"assistant"},{"id":"fc_1","type":"function_call","status":"completed","arguments":"{}","call_id":"call_1","name":"f"}],"usage":{"input_tokens":9,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"output_tokens":4,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":13},"metadata":{"k":"v"}}}"#;

    fn roundtrip(raw: &str) -> (Event, Json) {
        let event = event(raw.as_bytes(), &UpstreamMeta::default()).unwrap();
        let back = event_to_json(&event.message);
        (event, back)
    }

    #[test]
    fn contract_unions_all_have_catch_alls() {
        assert!(schema().unions_without_catch_all().is_empty());
    }

    #[test]
    fn typed_and_lossless() {
        let (ev, back) = roundtrip(DELTA);
        assert_eq!(back, serde_json::from_str::<Json>(DELTA).unwrap());
        assert_eq!(ev.message.sequence_number, Some(4));
        let Some(E::OutputTextDelta(d)) = &ev.message.event else {
            panic!("{:?}", ev.message)
        };
        assert_eq!(d.delta.as_deref(), Some("Hi"));
        assert_eq!(d.obfuscation.as_deref(), Some("q8ZrT1vLm0XcAa"));
        assert_eq!(ev.outcome, Outcome::Continue);

        let (ev, back) = roundtrip(CREATED);
        assert_eq!(back, serde_json::from_str::<Json>(CREATED).unwrap());
        let Some(E::Created(c)) = &ev.message.event else {
            panic!()
        };
        let r = c.response.as_ref().unwrap();
        assert_eq!(r.id.as_deref(), Some("resp_1"));
        assert_eq!(r.output_text, "");
        assert!(r.extra_json.contains("\"usage\":null"), "{}", r.extra_json);

        let (ev, back) = roundtrip(COMPLETED);
        assert_eq!(back, serde_json::from_str::<Json>(COMPLETED).unwrap());
        assert_eq!(ev.outcome, Outcome::Terminal);
        let Some(E::Completed(c)) = &ev.message.event else {
            panic!()
        };
        let r = c.response.as_ref().unwrap();
        assert_eq!(r.output_text, "Hi there!");
        assert_eq!(r.usage.as_ref().unwrap().total_tokens, Some(13));
        assert_eq!(r.output.len(), 2);
    }

    #[test]
    fn non_streamed_is_the_terminal_event_of_its_status() {
        let completed: Json = serde_json::from_str(COMPLETED).unwrap();
        for (status, kind) in [
            ("completed", "response.completed"),
            ("failed", "response.failed"),
            ("incomplete", "response.incomplete"),
            ("in_progress", "response.in_progress"),
            ("queued", "response.queued"),
        ] {
            let mut response = completed["response"].clone();
            response["status"] = Json::from(status);
            let body = serde_json::to_vec(&response).unwrap();
            let meta = UpstreamMeta::default();
            let as_event =
                serde_json::json!({"type": kind, "sequence_number": 0, "response": response});
            let streamed = event(&serde_json::to_vec(&as_event).unwrap(), &meta).unwrap();
            let single = non_streamed(&body, &meta).unwrap();
            assert_eq!(single.message, streamed.message, "{status}");
            assert_eq!(single.outcome, streamed.outcome, "{status}");
        }
        assert!(non_streamed(b"[1]", &UpstreamMeta::default()).is_err());
        assert!(non_streamed(b"{", &UpstreamMeta::default()).is_err());
        let with_usage = non_streamed(
            serde_json::to_vec(&completed["response"])
                .unwrap()
                .as_slice(),
            &UpstreamMeta::default(),
        )
        .unwrap();
        assert_eq!(
            usage(&with_usage.message).map(|u| (u.input_tokens, u.output_tokens, u.total())),
            Some((9, 4, 13))
        );
    }

    /// JSON equality where numbers compare by value (a double-typed field sends back `1.0`),
    /// within the last digit: serde_json's default float parsing (no `float_roundtrip`) can be
    /// one unit off in the 17th digit, and text kept in `extra_json` is parsed again.
    fn same(a: &Json, b: &Json) -> bool {
        match (a, b) {
            (Json::Number(x), Json::Number(y)) => {
                let (x, y) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                x == y || (x - y).abs() <= 1e-15 * x.abs().max(y.abs())
            }
            (Json::Array(x), Json::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
            }
            (Json::Object(x), Json::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }

    /// A random JSON value: the types, nulls, empties and keys that exercise every rule.
    fn random_json(rng: &mut StdRng, depth: u32) -> Json {
        const KEYS: [&str; 12] = [
            "type",
            "text",
            "id",
            "status",
            "content",
            "output",
            "delta",
            "annotations",
            "logprobs",
            "role",
            "usage",
            "metadata",
        ];
        const STRINGS: [&str; 6] = [
            "",
            "auto",
            "message",
            "output_text",
            "completed",
            "q\"\n\u{e9}",
        ];
        match rng.random_range(0..if depth == 0 { 6 } else { 8 }) {
            0 => Json::Null,
            1 => Json::from(rng.random_bool(0.5)),
            2 => Json::from(rng.random_range(-5i64..5)),
            3 => Json::from(rng.random_range(0..u64::MAX)),
            4 => Json::from(rng.random_range(-1e6f64..1e6)),
            5 => Json::from(STRINGS[rng.random_range(0..STRINGS.len())]),
            6 => (0..rng.random_range(0..3))
                .map(|_| random_json(rng, depth - 1))
                .collect(),
            _ => (0..rng.random_range(0..4))
                .map(|_| {
                    let key = KEYS[rng.random_range(0..KEYS.len())].to_owned();
                    (key, random_json(rng, depth - 1))
                })
                .collect::<Map<String, Json>>()
                .into(),
        }
    }

    /// Replaces, removes and adds members at random, at every depth.
    fn mutate(rng: &mut StdRng, value: &mut Json, depth: u32) {
        match value {
            Json::Object(map) => {
                let keys: Vec<String> = map.keys().cloned().collect();
                for key in keys {
                    if rng.random_bool(0.15) {
                        map.insert(key, random_json(rng, 2));
                    } else if rng.random_bool(0.05) {
                        map.remove(&key);
                    } else if depth > 0
                        && let Some(v) = map.get_mut(&key)
                    {
                        mutate(rng, v, depth - 1);
                    }
                }
                if rng.random_bool(0.2) {
                    map.insert(
                        format!("new_{}", rng.random_range(0..5)),
                        random_json(rng, 2),
                    );
                }
            }
            Json::Array(items) => {
                for item in items.iter_mut().filter(|_| depth > 0) {
                    mutate(rng, item, depth - 1);
                }
                if rng.random_bool(0.1) {
                    items.push(random_json(rng, 2));
                }
            }
            _ => {}
        }
    }

    #[test]
    fn mutated_events_round_trip_losslessly() {
        // Every documented event type with members replaced by values of the wrong type, nulls,
        // empties, unknown keys and nested surprises: whatever arrives comes back unchanged.
        let events = crate::fake::every_event_type();
        let mut rng = StdRng::seed_from_u64(6);
        for round in 0..40 {
            for original in &events {
                let mut event = original.clone();
                mutate(&mut rng, &mut event, 6);
                let raw = serde_json::to_vec(&event).unwrap();
                let converted = super::event(&raw, &UpstreamMeta::default()).unwrap();
                let back = event_to_json(&converted.message);
                assert!(
                    same(&back, &event),
                    "round {round}:\n sent {event}\n back {back}"
                );
            }
        }
        // Not only objects: any JSON value as the event is an error or a lossless message.
        for _ in 0..500 {
            let value = random_json(&mut rng, 4);
            let raw = serde_json::to_vec(&value).unwrap();
            match super::event(&raw, &UpstreamMeta::default()) {
                Ok(converted) => assert!(same(&event_to_json(&converted.message), &value)),
                Err(_) => assert!(!value.is_object()),
            }
        }
    }

    #[test]
    fn unknown_event_passes_through() {
        let raw =
            r#"{"type":"response.future.delta","sequence_number":7,"payload":{"a":[1,2.5,null]}}"#;
        let (ev, back) = roundtrip(raw);
        assert_eq!(back, serde_json::from_str::<Json>(raw).unwrap());
        assert_eq!(ev.message.sequence_number, Some(7));
        let Some(E::Unknown(u)) = &ev.message.event else {
            panic!()
        };
        assert_eq!(u.r#type, "response.future.delta");
    }

    #[test]
    fn request_body_uses_openai_names() {
        let req = pb::CreateResponseRequest {
            model: "gpt-4.1".into(),
            input_text: Some("hi".into()),
            temperature: Some(0.5),
            metadata: [("user_id".to_owned(), "u1".to_owned())].into(),
            tool_choice: Some(pb::ToolChoice {
                choice: Some(pb::tool_choice::Choice::Mode("auto".into())),
            }),
            tools: vec![pb::Tool {
                tool: Some(pb::tool::Tool::Function(pb::FunctionTool {
                    name: "get_weather".into(),
                    parameters: Some(prost_types::Struct {
                        fields: [(
                            "type".to_owned(),
                            prost_types::Value {
                                kind: Some(prost_types::value::Kind::StringValue("object".into())),
                            },
                        )]
                        .into(),
                    }),
                    ..Default::default()
                })),
            }],
            extra_body: Some(prost_types::Struct {
                fields: [(
                    "max_tool_calls".to_owned(),
                    prost_types::Value {
                        kind: Some(prost_types::value::Kind::NumberValue(3.0)),
                    },
                )]
                .into(),
            }),
            ..Default::default()
        };
        let body: Json = serde_json::from_slice(&request_body(&req, true)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "model": "gpt-4.1", "input": "hi", "temperature": 0.5, "stream": true,
                "metadata": {"user_id": "u1"}, "tool_choice": "auto", "max_tool_calls": 3,
                "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
            })
        );
    }
}
