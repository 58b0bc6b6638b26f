//! `SpeechService`: validate -> convert -> call OpenAI -> stream the audio back as it arrives.
//!
//! Audio is never buffered whole. The upstream status is checked before the stream is returned
//! (so a failure before any output is a Trailers-Only status); then the shared [`pump`] sends
//! `start` (format and content type), forwards every piece of audio the moment it arrives (split
//! when larger than [`CHUNK`]) through a bounded channel, and ends with `done`. `tts-1` /
//! `tts-1-hd` return a raw chunked audio body; other models are asked for `stream_format: sse`
//! (base64 `speech.audio.delta` events, then `speech.audio.done` with the usage). Which one
//! arrived is decided by the upstream `Content-Type`, so an OpenAI-compatible server that
//! ignores `stream_format` still works. When the caller goes away the pump stops and drops the
//! upstream request at once.

use std::{collections::VecDeque, pin::Pin};

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Map, Value as Json, json};
use tokio::sync::mpsc;
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::{
    call::{
        Begun, CallContext, Permit, Source, Step, pump, upstream_status as status,
        with_upstream_metadata,
    },
    profiles::Upstreams,
    validate_media::{self, is_classic_tts},
};
use crate::{
    error,
    openai::{
        Accept, ApiError, ByteStream, EventStream, OpenAiClient, UpstreamError, UpstreamMeta,
    },
    pb::{
        AudioChunk, CreateSpeechRequest, CreateSpeechResponse, RawJson, SpeechDone,
        SpeechKeepalive, SpeechStart, SpeechUsage, create_speech_response::Event,
        speech_service_server::SpeechService,
    },
};

/// Largest piece of audio per message (960 KiB): upstream pieces above it are split.
pub const CHUNK: usize = 960 * 1024;

/// Largest unknown stream event passed through as `unknown`.
const MAX_PASSTHROUGH: usize = 1024 * 1024;

type SpeechStreamItem = Result<CreateSpeechResponse, Status>;

/// The RPC name used in metrics and spans.
const METHOD: &str = "CreateSpeech";

/// The `SpeechService` implementation.
#[derive(Debug, Clone)]
pub struct SpeechApi {
    upstreams: Upstreams,
    ctx: CallContext,
}

impl SpeechApi {
    /// A handler calling OpenAI through the profile each call selects, with the shared
    /// per-call context.
    pub fn new(upstreams: Upstreams, ctx: CallContext) -> Self {
        Self { upstreams, ctx }
    }
}

#[tonic::async_trait]
impl SpeechService for SpeechApi {
    type CreateSpeechStream = Pin<Box<dyn Stream<Item = SpeechStreamItem> + Send + 'static>>;

    async fn create_speech(
        &self,
        request: Request<CreateSpeechRequest>,
    ) -> Result<Response<Self::CreateSpeechStream>, Status> {
        let model = request.get_ref().model.clone();
        let begun = self.ctx.begin(&request, &self.upstreams, METHOD, &model)?;
        let span = begun.call.span().clone();
        let deadline = begun.deadline;
        let client = begun.client.clone();
        let request = request.into_inner();
        let violations = validate_media::create_speech(&request);
        if !violations.is_empty() {
            return Err(begun.fail(error::invalid_argument(&violations)));
        }
        let sse = !is_classic_tts(&request.model);
        let accept = if sse {
            Accept::EventStream
        } else {
            Accept::Any
        };
        let body = request_body(&request, sse);
        let format = request.response_format.as_deref().unwrap_or("mp3");
        let opened = async {
            let upstream = client
                .post_json("/audio/speech", body, accept, deadline)
                .await
                .map_err(|e| status(&client, &e))?;
            let headers = upstream.headers().clone();
            let content_type = headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            if content_type.starts_with("text/event-stream") {
                let events = upstream.events().map_err(|e| status(&client, &e))?;
                let start = start(format, content_type_of(format), "sse");
                return Ok((Body::Sse(Box::new(events)), start, headers));
            }
            let content_type = if content_type.is_empty() {
                content_type_of(format).to_owned()
            } else {
                content_type
            };
            let start = start(format, &content_type, "audio");
            Ok((Body::Raw(Box::new(upstream.bytes())), start, headers))
        };
        let (body, start, headers) = match self
            .ctx
            .unless_shutdown(opened)
            .instrument(span.clone())
            .await
        {
            Ok(opened) => opened,
            Err(status) => return Err(begun.fail(status)),
        };
        if let Some(id) = headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
            span.record("upstream_request_id", id);
        }
        let Begun { permit, call, .. } = begun;
        let (tx, rx) = mpsc::channel(self.ctx.stream_buffer);
        let source = Upstream {
            body,
            pending: VecDeque::from([start]),
            offset: 0,
            finished: false,
            client,
            model,
            _permit: permit,
        };
        let ctx = self.ctx.clone();
        tokio::spawn(async move { pump(&ctx, tx, source, call).await }.instrument(span));
        let stream: Self::CreateSpeechStream = Box::pin(ReceiverStream::new(rx));
        Ok(with_upstream_metadata(stream, &headers))
    }
}

/// The JSON body for `POST /audio/speech`. A voice starting with `voice_` is a custom voice id,
/// sent as `{"id": ...}`.
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

fn start(format: &str, content_type: &str, stream_format: &str) -> CreateSpeechResponse {
    CreateSpeechResponse {
        event: Some(Event::Start(SpeechStart {
            response_format: format.to_owned(),
            content_type: content_type.to_owned(),
            stream_format: stream_format.to_owned(),
        })),
    }
}

/// Splits `audio` into chunk messages of at most [`CHUNK`] bytes, advancing `offset`.
fn audio_chunks(audio: &Bytes, offset: &mut i64) -> Vec<CreateSpeechResponse> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < audio.len() {
        let end = (at + CHUNK).min(audio.len());
        out.push(CreateSpeechResponse {
            event: Some(Event::Audio(AudioChunk {
                data: audio.slice(at..end),
                offset: *offset,
            })),
        });
        *offset += (end - at) as i64;
        at = end;
    }
    out
}

fn done(total_bytes: i64, usage: Option<SpeechUsage>) -> CreateSpeechResponse {
    CreateSpeechResponse {
        event: Some(Event::Done(SpeechDone { total_bytes, usage })),
    }
}

/// What one speech stream event means.
enum Converted {
    /// Audio to forward.
    Audio(Bytes),
    /// `speech.audio.done`: the end, with the usage if reported.
    Done(Option<SpeechUsage>),
    /// An event this contract does not know, passed through (or `None`: too large, skipped).
    Unknown(Option<RawJson>),
}

/// Converts one SSE speech event. An `error` event is an `Err`.
fn speech_event(data: &[u8], meta: &UpstreamMeta) -> Result<Converted, UpstreamError> {
    let decode = |message: String| UpstreamError::Decode {
        message,
        meta: meta.clone(),
    };
    let event: Json = serde_json::from_slice(data)
        .map_err(|e| decode(format!("a speech stream event is not JSON ({e})")))?;
    let kind = event.get("type").and_then(Json::as_str).unwrap_or_default();
    Ok(match kind {
        "speech.audio.delta" => {
            let b64 = event
                .get("audio")
                .and_then(Json::as_str)
                .ok_or_else(|| decode("a speech.audio.delta event has no `audio`".into()))?;
            let audio = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| decode(format!("speech.audio.delta `audio` is not base64 ({e})")))?;
            Converted::Audio(Bytes::from(audio))
        }
        "speech.audio.done" => {
            let usage = event.get("usage").filter(|u| u.is_object()).map(|u| {
                let int = |k: &str| u.get(k).and_then(Json::as_i64).unwrap_or(0);
                SpeechUsage {
                    input_tokens: int("input_tokens"),
                    output_tokens: int("output_tokens"),
                    total_tokens: int("total_tokens"),
                }
            });
            Converted::Done(usage)
        }
        "error" => {
            return Err(UpstreamError::StreamError {
                error: Box::new(ApiError::from_error_event(&event)),
                meta: meta.clone(),
            });
        }
        _ if data.len() > MAX_PASSTHROUGH => Converted::Unknown(None),
        _ => Converted::Unknown(Some(RawJson {
            r#type: kind.to_owned(),
            json: String::from_utf8_lossy(data).into_owned(),
        })),
    })
}

/// The upstream body: raw audio, or SSE events carrying base64 audio.
enum Body {
    /// A chunked audio body (`stream_format: audio`), read under the call's time limits.
    Raw(Box<ByteStream>),
    /// `stream_format: sse`.
    Sse(Box<EventStream>),
}

/// One upstream speech call as a [`Source`]: `start`, then audio chunks as they arrive, then
/// `done`. Dropping it closes the upstream request and frees the call's admission slot.
struct Upstream {
    body: Body,
    /// Messages ready to send (the start message; the pieces of a split upstream chunk).
    pending: VecDeque<CreateSpeechResponse>,
    /// Audio bytes converted so far.
    offset: i64,
    /// `done` is queued: the last pending message ends the stream.
    finished: bool,
    client: OpenAiClient,
    /// The requested model, under which token usage is counted.
    model: String,
    _permit: Permit,
}

impl Upstream {
    /// Reads the next piece of the upstream body. Cancel-safe: both reads keep their data until
    /// it is returned.
    async fn read(&mut self) -> Result<Converted, UpstreamError> {
        match &mut self.body {
            Body::Raw(body) => match body.next().await {
                Some(Ok(audio)) => Ok(Converted::Audio(audio)),
                None => Ok(Converted::Done(None)),
                Some(Err(e)) => Err(e),
            },
            Body::Sse(events) => match events.next().await {
                Some(Ok(event)) => speech_event(&event.data, events.meta()),
                Some(Err(e)) => Err(e),
                None => Err(UpstreamError::Dropped {
                    message: "the upstream speech stream closed before speech.audio.done".into(),
                    meta: events.meta().clone(),
                }),
            },
        }
    }
}

impl Source for Upstream {
    type Message = CreateSpeechResponse;

    /// The usage `done` reports (SSE path only), under the requested model.
    fn usage(&self, message: &CreateSpeechResponse) -> Option<(String, Vec<(&'static str, i64)>)> {
        let Some(Event::Done(done)) = &message.event else {
            return None;
        };
        let usage = done.usage.as_ref()?;
        Some((
            self.model.clone(),
            vec![
                ("input", usage.input_tokens),
                ("output", usage.output_tokens),
            ],
        ))
    }

    async fn next(&mut self) -> Step<CreateSpeechResponse> {
        loop {
            // Popping is synchronous, so a `next` dropped for a heartbeat loses nothing.
            if let Some(message) = self.pending.pop_front() {
                return if self.finished && self.pending.is_empty() {
                    Step::Last(message)
                } else {
                    Step::Send(message)
                };
            }
            if self.finished {
                return Step::End;
            }
            match self.read().await {
                Ok(Converted::Audio(audio)) => {
                    let chunks = audio_chunks(&audio, &mut self.offset);
                    self.pending.extend(chunks);
                }
                Ok(Converted::Done(usage)) => {
                    self.pending.push_back(done(self.offset, usage));
                    self.finished = true;
                }
                Ok(Converted::Unknown(Some(raw))) => {
                    return Step::Send(CreateSpeechResponse {
                        event: Some(Event::Unknown(raw)),
                    });
                }
                Ok(Converted::Unknown(None)) => {
                    tracing::warn!("skipping an unknown speech stream event too large to forward");
                }
                Err(e) => return Step::Fail(status(&self.client, &e)),
            }
        }
    }

    /// A gateway heartbeat during a long upstream silence.
    fn keepalive(&self) -> CreateSpeechResponse {
        CreateSpeechResponse {
            event: Some(Event::Keepalive(SpeechKeepalive::default())),
        }
    }
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
}
