//! The Speech API in both vocabularies: the JSON body of `POST /audio/speech`, and what comes
//! back (a raw chunked audio body, or `speech.audio.delta` / `speech.audio.done` server-sent
//! events carrying base64 audio) as `CreateSpeechResponse` messages: `start`, audio chunks of at
//! most [`CHUNK`] bytes as they arrive, then `done`.

use bytes::Bytes;
use serde_json::{Map, Value as Json, json};

use super::media::{
    CHUNK, decode_base64, error_event, event_type, int_field, merge_extra_body, parse_event,
    pieces, undecodable, unknown_event,
};
use crate::{
    openai::{UpstreamError, UpstreamMeta},
    pb::{
        AudioChunk, CreateSpeechRequest, CreateSpeechResponse, SpeechDone, SpeechKeepalive,
        SpeechStart, SpeechUsage, create_speech_response::Event,
    },
    usage::Usage,
};

/// The JSON body for `POST /audio/speech`. A voice starting with `voice_` is a custom voice id,
/// sent as `{"id": ...}`; `extra_body` is merged over the fields; `sse` asks for
/// `stream_format: sse`.
pub fn request_body(req: &CreateSpeechRequest, sse: bool) -> Bytes {
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    body.insert("input".into(), json!(req.input));
    let voice = if req.voice.starts_with("voice_") {
        json!({"id": req.voice})
    } else {
        json!(req.voice)
    };
    body.insert("voice".into(), voice);
    if let Some(f) = &req.response_format {
        body.insert("response_format".into(), json!(f));
    }
    if let Some(s) = req.speed {
        body.insert("speed".into(), json!(s));
    }
    if let Some(i) = &req.instructions {
        body.insert("instructions".into(), json!(i));
    }
    merge_extra_body(&mut body, req.extra_body.as_ref());
    if sse {
        body.insert("stream_format".into(), json!("sse"));
    }
    Bytes::from(serde_json::to_vec(&Json::Object(body)).expect("JSON values serialize"))
}

/// The usual MIME type of a speech format (used when the upstream sent SSE, or no type).
pub fn content_type_of(format: &str) -> &'static str {
    match format {
        "mp3" => "audio/mpeg",
        "opus" => "audio/opus",
        "aac" => "audio/aac",
        "flac" => "audio/flac",
        "wav" => "audio/wav",
        "pcm" => "audio/pcm",
        _ => "application/octet-stream",
    }
}

fn message(event: Event) -> CreateSpeechResponse {
    CreateSpeechResponse { event: Some(event) }
}

/// The first message: the format, its content type, and how the upstream delivered it
/// (`audio` or `sse`).
pub fn start(format: &str, content_type: &str, stream_format: &str) -> CreateSpeechResponse {
    message(Event::Start(SpeechStart {
        response_format: format.to_owned(),
        content_type: content_type.to_owned(),
        stream_format: stream_format.to_owned(),
    }))
}

/// Splits `audio` into chunk messages of at most [`CHUNK`] bytes (no copy), advancing `offset`.
pub fn audio_chunks(audio: &Bytes, offset: &mut i64) -> Vec<CreateSpeechResponse> {
    if audio.is_empty() {
        return Vec::new();
    }
    pieces(audio, CHUNK)
        .into_iter()
        .map(|(_, data, _)| {
            let at = *offset;
            *offset += data.len() as i64;
            message(Event::Audio(AudioChunk { data, offset: at }))
        })
        .collect()
}

/// The last message: the audio's length and, on the SSE path, the usage.
pub fn done(total_bytes: i64, usage: Option<SpeechUsage>) -> CreateSpeechResponse {
    message(Event::Done(SpeechDone { total_bytes, usage }))
}

/// A gateway heartbeat during a long upstream silence.
pub fn keepalive() -> CreateSpeechResponse {
    message(Event::Keepalive(SpeechKeepalive::default()))
}

/// The token usage a `done` message reports, counted under the requested `model`.
pub fn usage(model: &str, message: &CreateSpeechResponse) -> Option<Usage> {
    let Some(Event::Done(done)) = &message.event else {
        return None;
    };
    let usage = done.usage.as_ref()?;
    Some(Usage {
        model: model.to_owned(),
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        ..Usage::default()
    })
}

/// What one speech stream event means.
#[derive(Debug)]
pub enum Converted {
    /// Audio to forward.
    Audio(Bytes),
    /// `speech.audio.done`: the end, with the usage if reported.
    Done(Option<SpeechUsage>),
    /// An event this contract does not know, passed through as `unknown` (or `None`: too large,
    /// skipped).
    Unknown(Option<CreateSpeechResponse>),
}

/// Converts one SSE speech event. An `error` event is an `Err`.
pub fn stream_event(data: &[u8], meta: &UpstreamMeta) -> Result<Converted, UpstreamError> {
    let event = parse_event(data, "speech", meta)?;
    let kind = event_type(&event);
    Ok(match kind {
        "speech.audio.delta" => {
            let b64 = event.get("audio").and_then(Json::as_str).ok_or_else(|| {
                undecodable(meta, "a speech.audio.delta event has no `audio`".into())
            })?;
            Converted::Audio(decode_base64(b64, "speech.audio.delta `audio`", meta)?)
        }
        "speech.audio.done" => Converted::Done(event.get("usage").filter(|u| u.is_object()).map(
            |u| SpeechUsage {
                input_tokens: int_field(u, "input_tokens"),
                output_tokens: int_field(u, "output_tokens"),
                total_tokens: int_field(u, "total_tokens"),
            },
        )),
        "error" => return Err(error_event(&event, meta)),
        _ => Converted::Unknown(unknown_event(kind, data).map(|raw| message(Event::Unknown(raw)))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_voice_is_an_object_and_sse_only_when_asked() {
        let req = CreateSpeechRequest {
            input: "hi".into(),
            model: "gpt-4o-mini-tts".into(),
            voice: "voice_123".into(),
            speed: Some(1.5),
            ..Default::default()
        };
        let body: Json = serde_json::from_slice(&request_body(&req, true)).unwrap();
        assert_eq!(
            body,
            json!({"model": "gpt-4o-mini-tts", "input": "hi", "voice": {"id": "voice_123"}, "speed": 1.5, "stream_format": "sse"})
        );
        let req = CreateSpeechRequest {
            voice: "alloy".into(),
            model: "tts-1".into(),
            ..req
        };
        let body: Json = serde_json::from_slice(&request_body(&req, false)).unwrap();
        assert_eq!(body["voice"], "alloy");
        assert!(body.get("stream_format").is_none());
    }

    #[test]
    fn audio_base64_with_line_breaks_is_accepted() {
        let event = br#"{"type":"speech.audio.delta","audio":"aGVs\nbG8="}"#;
        let Converted::Audio(audio) = stream_event(event, &UpstreamMeta::default()).unwrap() else {
            panic!("not audio")
        };
        assert_eq!(audio, &b"hello"[..]);
    }

    #[test]
    fn chunks_advance_the_offset() {
        let mut offset = 10;
        let chunks = audio_chunks(&Bytes::from(vec![0u8; CHUNK + 1]), &mut offset);
        assert_eq!(chunks.len(), 2);
        assert_eq!(offset, 10 + CHUNK as i64 + 1);
        assert!(audio_chunks(&Bytes::new(), &mut offset).is_empty());
    }
}
