//! `SpeechService`: the request's own parts of `CreateSpeech`; [`super::call`] runs it and
//! [`crate::convert::speech`] converts what comes back.
//!
//! Audio is forwarded as it arrives: a `start` message, audio chunks, then `done`. `tts-1` /
//! `tts-1-hd` return a raw chunked audio body; other models are asked for `stream_format: sse`.
//! Which one arrived is decided by the upstream `Content-Type`, so an OpenAI-compatible server
//! that ignores `stream_format` still works.

use super::{
    call::{Failure, Opened, Rpc, Upstream, serve},
    pump::{Pending, Source, Step},
    validate_media::is_classic_tts,
};
use crate::{
    convert::speech::{self as convert, Converted},
    openai::{Accept, ByteStream, EventStream, UpstreamError},
    pb::{CreateSpeechRequest, CreateSpeechResponse, speech_service_server::SpeechService},
    usage::Usage,
};
use reqwest::header::CONTENT_TYPE;

serve!(SpeechService {
    stream create_speech(CreateSpeech) -> CreateSpeechStream;
});

/// `CreateSpeech`: `POST /audio/speech`.
pub struct CreateSpeech;

impl Rpc for CreateSpeech {
    type Request = CreateSpeechRequest;
    type Message = CreateSpeechResponse;
    type Source = Audio;
    const METHOD: &'static str = "CreateSpeech";

    async fn open(
        &self,
        upstream: Upstream,
        request: CreateSpeechRequest,
    ) -> Result<Opened<CreateSpeechResponse, Audio>, Failure> {
        let sse = !is_classic_tts(&request.model);
        let accept = if sse {
            Accept::EventStream
        } else {
            Accept::Any
        };
        let body = convert::request_body(&request, sse);
        let format = request.response_format.as_deref().unwrap_or("mp3");
        let response = upstream.post("/audio/speech", body, accept).await?;
        let headers = response.headers().clone();
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let (body, start) = if content_type.starts_with("text/event-stream") {
            let start = convert::start(format, convert::content_type_of(format), "sse");
            (Body::Sse(response.events()?), start)
        } else {
            let content_type = if content_type.is_empty() {
                convert::content_type_of(format)
            } else {
                content_type
            };
            let start = convert::start(format, content_type, "audio");
            (Body::Raw(response.bytes()), start)
        };
        let audio = Audio {
            body,
            pending: Pending::new([start]),
            offset: 0,
            model: request.model,
        };
        Ok(Opened::stream(headers, audio))
    }
}

/// The upstream body: raw audio, or SSE events carrying base64 audio.
pub enum Body {
    /// A chunked audio body (`stream_format: audio`), read under the call's time limits.
    Raw(ByteStream),
    /// `stream_format: sse`.
    Sse(EventStream),
}

/// One upstream speech call as a [`Source`]: `start`, then audio chunks as they arrive, then
/// `done`.
pub struct Audio {
    body: Body,
    /// Messages ready to send (the start message; the pieces of a split upstream chunk).
    pending: Pending<CreateSpeechResponse>,
    /// Audio bytes converted so far.
    offset: i64,
    /// The requested model, under which token usage is counted.
    model: String,
}

impl Audio {
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
                Some(Ok(event)) => convert::stream_event(&event.data, events.meta()),
                Some(Err(e)) => Err(e),
                None => Err(UpstreamError::Dropped {
                    message: "the upstream speech stream closed before speech.audio.done".into(),
                    meta: events.meta().clone(),
                }),
            },
        }
    }
}

impl Source for Audio {
    type Message = CreateSpeechResponse;

    async fn next(&mut self) -> Step<CreateSpeechResponse> {
        loop {
            if let Some(step) = self.pending.take() {
                return step;
            }
            match self.read().await {
                Ok(Converted::Audio(audio)) => {
                    let chunks = convert::audio_chunks(&audio, &mut self.offset);
                    self.pending.extend(chunks);
                }
                Ok(Converted::Done(usage)) => {
                    self.pending.extend([convert::done(self.offset, usage)]);
                    self.pending.complete();
                }
                Ok(Converted::Unknown(Some(message))) => self.pending.extend([message]),
                Ok(Converted::Unknown(None)) => {}
                Err(e) => return Step::Fail(e.into()),
            }
        }
    }

    fn keepalive(&self) -> CreateSpeechResponse {
        convert::keepalive()
    }

    fn usage(&self, message: &CreateSpeechResponse) -> Option<Usage> {
        convert::usage(&self.model, message)
    }
}
