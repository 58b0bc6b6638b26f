//! The Responses API through the generic converter: the request body sent upstream, and each
//! upstream stream event (or the non-streamed Response) as a typed `CreateResponseResponse`.

use bytes::Bytes;
use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage, Value as PValue};
use serde_json::{Map, Value as Json};

use super::{json::struct_json, schema};
use crate::{
    openai::{ApiError, UpstreamError, UpstreamMeta},
    pb,
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

/// The JSON body for `POST /responses`: the request's fields under OpenAI's names, then
/// `extra_body` merged over them, then `stream`.
pub fn request_body(request: &pb::CreateResponseRequest, stream: bool) -> Bytes {
    let dynamic = DynamicMessage::decode(descriptor(REQUEST), request.encode_to_vec().as_slice())
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
    body.insert("stream".into(), Json::Bool(stream));
    Bytes::from(serde_json::to_vec(&Json::Object(body)).expect("JSON values serialize"))
}

/// Converts one upstream SSE `data` payload into a typed message.
pub fn event(data: &[u8], meta: &UpstreamMeta) -> Result<Event, UpstreamError> {
    let json: Json = serde_json::from_slice(data).map_err(|e| UpstreamError::Decode {
        message: format!("a stream event is not JSON ({e})"),
        meta: meta.clone(),
    })?;
    let Json::Object(object) = json else {
        return Err(UpstreamError::Decode {
            message: "a stream event is not a JSON object".into(),
            meta: meta.clone(),
        });
    };
    Ok(convert_event(object, meta))
}

/// The single message for a non-streamed call (`stream: false`): the Response arrives in the
/// lifecycle variant matching its status (`failed`, `incomplete`, `queued`, `in_progress`),
/// otherwise `completed`.
pub fn non_streamed(response: Json, meta: &UpstreamMeta) -> Result<Event, UpstreamError> {
    if !response.is_object() {
        return Err(UpstreamError::Decode {
            message: "the response body is not a JSON object".into(),
            meta: meta.clone(),
        });
    }
    let kind = match response.get("status").and_then(Json::as_str) {
        Some("failed") => "response.failed",
        Some("incomplete") => "response.incomplete",
        Some("queued") => "response.queued",
        Some("in_progress") => "response.in_progress",
        _ => "response.completed",
    };
    let mut object = Map::new();
    object.insert("type".into(), Json::String(kind.into()));
    object.insert("sequence_number".into(), Json::from(0));
    object.insert("response".into(), response);
    Ok(convert_event(object, meta))
}

fn convert_event(object: Map<String, Json>, meta: &UpstreamMeta) -> Event {
    let outcome = match object.get("type").and_then(Json::as_str) {
        Some("response.completed" | "response.incomplete") => Outcome::Terminal,
        Some("error") => Outcome::Failed(UpstreamError::StreamError {
            error: Box::new(ApiError::from_error_event(&Json::Object(object.clone()))),
            meta: meta.clone(),
        }),
        Some("response.failed") => {
            let error = object.get("response").and_then(|r| r.get("error"));
            let field = |k: &str| error.and_then(|e| e.get(k)).and_then(Json::as_str);
            Outcome::Failed(UpstreamError::ResponseFailed {
                code: field("code").map(str::to_owned),
                message: field("message")
                    .unwrap_or("the response failed without an error message")
                    .to_owned(),
                meta: meta.clone(),
            })
        }
        _ => Outcome::Continue,
    };
    let output_text = object.get("response").and_then(output_text);
    let mut dynamic = schema().from_json(&descriptor(ENVELOPE), object);
    if let Some(text) = output_text {
        set_output_text(&mut dynamic, text);
    }
    let message = dynamic
        .transcode_to::<pb::CreateResponseResponse>()
        .expect("a dynamic message transcodes to its generated type");
    Event { message, outcome }
}

/// All `output_text` parts of all `message` items joined in order, as the OpenAI SDKs compute
/// `response.output_text`. `None` when the object has no `output` array.
pub fn output_text(response: &Json) -> Option<String> {
    let output = response.get("output")?.as_array()?;
    let mut text = String::new();
    for item in output {
        if item.get("type").and_then(Json::as_str) != Some("message") {
            continue;
        }
        for part in item
            .get("content")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            if part.get("type").and_then(Json::as_str) == Some("output_text")
                && let Some(t) = part.get("text").and_then(Json::as_str)
            {
                text.push_str(t);
            }
        }
    }
    Some(text)
}

/// Sets `response.output_text` on whichever lifecycle variant of the envelope is set.
fn set_output_text(envelope: &mut DynamicMessage, text: String) {
    let desc = envelope.descriptor();
    for field in desc
        .fields()
        .filter(|f| f.containing_oneof().is_some_and(|o| !o.is_synthetic()))
    {
        if !envelope.has_field(&field) {
            continue;
        }
        if let Some(variant) = envelope.get_field_mut(&field).as_message_mut()
            && variant.has_field_by_name("response")
            && let Some(response) = variant
                .get_field_by_name_mut("response")
                .and_then(PValue::as_message_mut)
        {
            response.set_field_by_name("output_text", PValue::String(text));
        }
        return;
    }
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
