//! What the Images and Speech conversions share: binary chunking under the 1 MiB message size,
//! base64 decoding, the pass-through of stream events the contract does not know, and upstream
//! `error` events.

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Map, Value as Json};

use crate::{
    openai::{ApiError, UpstreamError, UpstreamMeta},
    pb::RawJson,
};

/// Bytes of binary data per message: 960 KiB, a multiple of 3 so that the base64 of every chunk
/// but the last has no padding (concatenated base64 strings still decode as one file), and small
/// enough that every message stays under 1 MiB for clients with gRPC's default 4 MiB limit.
pub const CHUNK: usize = 960 * 1024;

/// Largest upstream-provided text forwarded in one message (URLs, unknown events).
pub const MAX_PASSTHROUGH: usize = 1024 * 1024;

/// An upstream body or event the gateway cannot decode.
pub(crate) fn undecodable(meta: &UpstreamMeta, message: String) -> UpstreamError {
    UpstreamError::Decode {
        message,
        meta: meta.clone(),
    }
}

/// Parses one stream event's JSON (`what` names the stream in the error).
pub(crate) fn parse_event(
    data: &[u8],
    what: &str,
    meta: &UpstreamMeta,
) -> Result<Json, UpstreamError> {
    serde_json::from_slice(data)
        .map_err(|e| undecodable(meta, format!("a {what} stream event is not JSON ({e})")))
}

/// The event's `type` ("" when it has none).
pub(crate) fn event_type(event: &Json) -> &str {
    event.get("type").and_then(Json::as_str).unwrap_or_default()
}

/// An upstream `error` event, in either of OpenAI's shapes, as the error that ends the stream.
pub(crate) fn error_event(event: &Json, meta: &UpstreamMeta) -> UpstreamError {
    UpstreamError::StreamError {
        error: Box::new(ApiError::from_error_event(event)),
        meta: meta.clone(),
    }
}

/// An event the contract does not know, passed through verbatim; `None` (logged) when it is too
/// large to forward.
pub(crate) fn unknown_event(kind: &str, data: &[u8]) -> Option<RawJson> {
    if data.len() > MAX_PASSTHROUGH {
        tracing::warn!(
            event_type = kind,
            bytes = data.len(),
            "skipping an unknown stream event too large to forward"
        );
        return None;
    }
    Some(RawJson {
        r#type: kind.to_owned(),
        json: String::from_utf8_lossy(data).into_owned(),
    })
}

/// Decodes standard base64, tolerating the line breaks some compatible servers insert.
pub(crate) fn decode_base64(
    text: &str,
    what: &str,
    meta: &UpstreamMeta,
) -> Result<Bytes, UpstreamError> {
    let engine = base64::engine::general_purpose::STANDARD;
    engine
        .decode(text)
        .or_else(|first| {
            let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            engine.decode(compact).map_err(|_| first)
        })
        .map(Bytes::from)
        .map_err(|e| undecodable(meta, format!("{what} is not valid base64 ({e})")))
}

/// Splits `bytes` into `(offset, data, last)` pieces without copying: the first at most `first`
/// bytes, the others at most [`CHUNK`]. An empty input gives one empty, last piece.
pub(crate) fn pieces(bytes: &Bytes, first: usize) -> Vec<(usize, Bytes, bool)> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut budget = first.clamp(1, CHUNK);
    loop {
        let end = (at + budget).min(bytes.len());
        out.push((at, bytes.slice(at..end), end == bytes.len()));
        if end == bytes.len() {
            return out;
        }
        at = end;
        budget = CHUNK;
    }
}

/// A string member of `object`.
pub(crate) fn str_field(object: &Json, key: &str) -> Option<String> {
    object.get(key).and_then(Json::as_str).map(str::to_owned)
}

/// An integer member of `object` (0 when absent).
pub(crate) fn int_field(object: &Json, key: &str) -> i64 {
    object.get(key).and_then(Json::as_i64).unwrap_or(0)
}

/// Merges a request's `extra_body` into its JSON body: each member is set, replacing a member
/// of the same name (as Responses' `extra_body` does).
pub(crate) fn merge_extra_body(body: &mut Map<String, Json>, extra: Option<&prost_types::Struct>) {
    for (key, value) in extra.into_iter().flat_map(|e| &e.fields) {
        body.insert(key.clone(), value_json(value));
    }
}

/// A `google.protobuf.Value` as JSON. Whole numbers that a double holds exactly come back as
/// integers (a JSON `1` travels as the double `1.0`), as in the Responses converter.
fn value_json(value: &prost_types::Value) -> Json {
    use prost_types::value::Kind;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::NumberValue(n)) if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 => {
            Json::from(*n as i64)
        }
        Some(Kind::NumberValue(n)) => {
            serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number)
        }
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::ListValue(list)) => list.values.iter().map(value_json).collect(),
        Some(Kind::StructValue(object)) => Json::Object(
            object
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), value_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_input_in_order() {
        let bytes = Bytes::from(vec![7u8; 2 * CHUNK + 5]);
        let p = pieces(&bytes, CHUNK - 3);
        let lens: Vec<usize> = p.iter().map(|(_, d, _)| d.len()).collect();
        assert_eq!(lens, [CHUNK - 3, CHUNK, 8]);
        let offsets: Vec<usize> = p.iter().map(|(o, _, _)| *o).collect();
        assert_eq!(offsets, [0, CHUNK - 3, 2 * CHUNK - 3]);
        assert_eq!(
            p.iter().map(|(_, _, l)| *l).collect::<Vec<_>>(),
            [false, false, true]
        );
        let empty = pieces(&Bytes::new(), CHUNK);
        assert_eq!(empty.len(), 1);
        assert!(empty[0].2 && empty[0].1.is_empty());
        assert_eq!(CHUNK % 3, 0);
    }

    #[test]
    fn base64_with_line_breaks_decodes() {
        let meta = UpstreamMeta::default();
        assert_eq!(
            decode_base64("aGVs\nbG8=", "x", &meta).unwrap(),
            &b"hello"[..]
        );
        assert_eq!(
            decode_base64("aGVsbG8=\r\n", "x", &meta).unwrap(),
            &b"hello"[..]
        );
        assert!(decode_base64("not base64!", "x", &meta).is_err());
    }

    #[test]
    fn extra_body_members_replace_and_add() {
        use prost_types::{Struct, Value, value::Kind};
        let value = |kind| Value { kind: Some(kind) };
        let extra = Struct {
            fields: [
                ("size".to_owned(), value(Kind::StringValue("auto".into()))),
                ("n".to_owned(), value(Kind::NumberValue(2.0))),
                ("ratio".to_owned(), value(Kind::NumberValue(0.5))),
                (
                    "future".to_owned(),
                    value(Kind::StructValue(Struct {
                        fields: [("on".to_owned(), value(Kind::BoolValue(true)))].into(),
                    })),
                ),
            ]
            .into(),
        };
        let mut body = serde_json::json!({"prompt": "p", "size": "1024x1024"})
            .as_object()
            .cloned()
            .unwrap();
        merge_extra_body(&mut body, Some(&extra));
        assert_eq!(
            Json::Object(body),
            serde_json::json!({"prompt": "p", "size": "auto", "n": 2, "ratio": 0.5, "future": {"on": true}})
        );
    }

    #[test]
    fn oversized_unknown_events_are_skipped() {
        assert!(unknown_event("t", &vec![b'x'; MAX_PASSTHROUGH + 1]).is_none());
        let raw = unknown_event("t", br#"{"type":"t"}"#).unwrap();
        assert_eq!(raw.json, r#"{"type":"t"}"#);
    }
}
