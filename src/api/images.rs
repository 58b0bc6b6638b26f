//! `ImagesService`: validate -> convert -> call OpenAI -> stream the images back in chunks.
//!
//! Images are large, so nothing is ever sent as one big message: OpenAI's base64 is decoded and
//! the bytes leave in ordered [`ImageChunk`]s of at most [`CHUNK`] bytes (image index, offset,
//! last flag), keeping every message under 1 MiB for clients with gRPC's default 4 MiB limit.
//! URL results are passed through and never fetched.
//!
//! Without `partial_images` there is one JSON upstream call: its status is checked and the whole
//! body decoded before the first message, so any upstream failure is a Trailers-Only status.
//! With `partial_images > 0` the upstream call is streamed (`stream: true`) and the shared
//! [`pump`] forwards each preview as it arrives through a bounded channel, stopping (and dropping
//! the upstream request) as soon as the caller goes away.

use std::{collections::VecDeque, pin::Pin};

use base64::Engine as _;
use bytes::Bytes;
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
    validate_media,
};
use crate::{
    error,
    openai::{Accept, ApiError, EventStream, OpenAiClient, UpstreamError, UpstreamMeta},
    pb::{
        CreateImageRequest, CreateImageResponse, ImageChunk, ImageKeepalive, ImageResult,
        ImageTokensDetails, ImageUrl, ImageUsage, PartialImageChunk, RawJson,
        create_image_response::Event, images_service_server::ImagesService,
    },
};

/// Bytes of image data per message: 960 KiB, a multiple of 3 so that the base64 of every chunk
/// but the last has no padding (concatenated base64 strings still decode as one file).
pub const CHUNK: usize = 960 * 1024;

/// Largest message the gateway sends for upstream-provided text (URLs, unknown events).
const MAX_PASSTHROUGH: usize = 1024 * 1024;

type ImageStreamItem = Result<CreateImageResponse, Status>;

/// The RPC name used in metrics and spans.
const METHOD: &str = "CreateImage";

/// The `ImagesService` implementation.
#[derive(Debug, Clone)]
pub struct ImagesApi {
    upstreams: Upstreams,
    ctx: CallContext,
}

impl ImagesApi {
    /// A handler calling OpenAI through the profile each call selects, with the shared
    /// per-call context.
    pub fn new(upstreams: Upstreams, ctx: CallContext) -> Self {
        Self { upstreams, ctx }
    }
}

/// An upstream call whose HTTP status was checked.
enum Opened {
    /// No previews: every message, ready to send.
    Whole(Vec<CreateImageResponse>),
    /// Previews: the event stream, not read yet.
    Stream(Box<EventStream>),
}

#[tonic::async_trait]
impl ImagesService for ImagesApi {
    type CreateImageStream = Pin<Box<dyn Stream<Item = ImageStreamItem> + Send + 'static>>;

    async fn create_image(
        &self,
        request: Request<CreateImageRequest>,
    ) -> Result<Response<Self::CreateImageStream>, Status> {
        let model = request.get_ref().model.clone().unwrap_or_default();
        let begun = self.ctx.begin(&request, &self.upstreams, METHOD, &model)?;
        let span = begun.call.span().clone();
        let deadline = begun.deadline;
        let client = begun.client.clone();
        let request = request.into_inner();
        let violations = validate_media::create_image(&request);
        if !violations.is_empty() {
            return Err(begun.fail(error::invalid_argument(&violations)));
        }
        let stream = request.partial_images.unwrap_or(0) > 0;
        let body = request_body(&request, stream);
        let accept = if stream {
            Accept::EventStream
        } else {
            Accept::Json
        };
        let opened = async {
            let upstream = client
                .post_json("/images/generations", body, accept, deadline)
                .await
                .map_err(|e| status(&client, &e))?;
            let headers = upstream.headers().clone();
            if stream {
                let events = upstream.events().map_err(|e| status(&client, &e))?;
                return Ok((headers, Opened::Stream(Box::new(events))));
            }
            let meta = upstream.meta().clone();
            let json = upstream.json().await.map_err(|e| status(&client, &e))?;
            let messages = non_streamed(json, &meta).map_err(|e| status(&client, &e))?;
            Ok((headers, Opened::Whole(messages)))
        };
        let (headers, opened) = match self
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
        let Begun {
            permit, mut call, ..
        } = begun;
        let events = match opened {
            Opened::Whole(messages) => {
                call.first_event();
                if let Some((model, usage)) = messages.iter().find_map(|m| usage_of(&model, m)) {
                    call.usage(&model, &usage);
                }
                call.finish(tonic::Code::Ok);
                let stream: Self::CreateImageStream =
                    Box::pin(tokio_stream::iter(messages.into_iter().map(Ok)));
                return Ok(with_upstream_metadata(stream, &headers));
            }
            Opened::Stream(events) => events,
        };
        let (tx, rx) = mpsc::channel(self.ctx.stream_buffer);
        let source = Upstream {
            events,
            pending: VecDeque::new(),
            complete: false,
            client,
            model,
            _permit: permit,
        };
        let ctx = self.ctx.clone();
        tokio::spawn(async move { pump(&ctx, tx, source, call).await }.instrument(span));
        let stream: Self::CreateImageStream = Box::pin(ReceiverStream::new(rx));
        Ok(with_upstream_metadata(stream, &headers))
    }
}

/// The JSON body for `POST /images/generations`: the set fields under OpenAI's names, plus
/// `stream: true` when previews are streamed.
pub fn request_body(req: &CreateImageRequest, stream: bool) -> Bytes {
    let mut body = Map::new();
    body.insert("prompt".into(), json!(req.prompt));
    let strings = [
        ("model", &req.model),
        ("size", &req.size),
        ("quality", &req.quality),
        ("style", &req.style),
        ("response_format", &req.response_format),
        ("output_format", &req.output_format),
        ("background", &req.background),
        ("moderation", &req.moderation),
        ("user", &req.user),
    ];
    for (key, value) in strings {
        if let Some(v) = value {
            body.insert(key.into(), json!(v));
        }
    }
    let ints = [
        ("n", req.n),
        ("output_compression", req.output_compression),
        ("partial_images", req.partial_images),
    ];
    for (key, value) in ints {
        if let Some(v) = value {
            body.insert(key.into(), json!(v));
        }
    }
    if stream {
        body.insert("stream".into(), Json::Bool(true));
    }
    Bytes::from(serde_json::to_vec(&Json::Object(body)).expect("JSON values serialize"))
}

fn decode_error(meta: &UpstreamMeta, message: String) -> UpstreamError {
    UpstreamError::Decode {
        message,
        meta: meta.clone(),
    }
}

/// Decodes standard base64, tolerating line breaks some compatible servers insert.
fn decode_base64(text: &str, what: &str, meta: &UpstreamMeta) -> Result<Bytes, UpstreamError> {
    let engine = base64::engine::general_purpose::STANDARD;
    engine
        .decode(text)
        .or_else(|first| {
            let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            engine.decode(compact).map_err(|_| first)
        })
        .map(Bytes::from)
        .map_err(|e| decode_error(meta, format!("{what} is not valid base64 ({e})")))
}

/// Splits `bytes` into `(offset, data, last)` pieces: the first at most `first` bytes, the
/// others at most [`CHUNK`]. An empty input gives one empty, last piece.
fn pieces(bytes: &Bytes, first: usize) -> Vec<(usize, Bytes, bool)> {
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

/// The chunks of one finished image. A long `revised_prompt` (first chunk only) shrinks the
/// first chunk's data so the message stays under 1 MiB.
fn image_chunks(
    image_index: i32,
    image: &Bytes,
    revised_prompt: Option<String>,
) -> Vec<CreateImageResponse> {
    let prompt_len = revised_prompt.as_ref().map_or(0, String::len);
    let first = CHUNK
        .saturating_sub(prompt_len.next_multiple_of(3))
        .max(3 * 1024);
    let total = image.len() as i64;
    let mut revised_prompt = revised_prompt;
    pieces(image, first)
        .into_iter()
        .map(|(offset, data, last)| CreateImageResponse {
            event: Some(Event::ImageChunk(ImageChunk {
                image_index,
                offset: offset as i64,
                data,
                last,
                total_bytes: total,
                revised_prompt: revised_prompt.take(),
            })),
        })
        .collect()
}

/// The chunks of one preview image.
fn partial_chunks(partial_image_index: i32, image: &Bytes) -> Vec<CreateImageResponse> {
    let total = image.len() as i64;
    pieces(image, CHUNK)
        .into_iter()
        .map(|(offset, data, last)| CreateImageResponse {
            event: Some(Event::PartialImage(PartialImageChunk {
                image_index: 0,
                partial_image_index,
                offset: offset as i64,
                data,
                last,
                total_bytes: total,
            })),
        })
        .collect()
}

fn str_field(object: &Json, key: &str) -> Option<String> {
    object.get(key).and_then(Json::as_str).map(str::to_owned)
}

fn int_field(object: &Json, key: &str) -> i64 {
    object.get(key).and_then(Json::as_i64).unwrap_or(0)
}

fn tokens_details(object: Option<&Json>) -> Option<ImageTokensDetails> {
    let d = object.filter(|d| d.is_object())?;
    Some(ImageTokensDetails {
        text_tokens: int_field(d, "text_tokens"),
        image_tokens: int_field(d, "image_tokens"),
    })
}

/// OpenAI's `ImagesUsage`, when present.
fn usage(object: &Json) -> Option<ImageUsage> {
    let u = object.get("usage").filter(|u| u.is_object())?;
    Some(ImageUsage {
        input_tokens: int_field(u, "input_tokens"),
        output_tokens: int_field(u, "output_tokens"),
        total_tokens: int_field(u, "total_tokens"),
        input_tokens_details: tokens_details(u.get("input_tokens_details")),
        output_tokens_details: tokens_details(u.get("output_tokens_details")),
    })
}

/// The final `result` message from an `ImagesResponse` or an `image_generation.completed` event.
fn result(object: &Json, created_key: &str, image_count: i32) -> CreateImageResponse {
    CreateImageResponse {
        event: Some(Event::Result(ImageResult {
            created: int_field(object, created_key),
            size: str_field(object, "size"),
            quality: str_field(object, "quality"),
            background: str_field(object, "background"),
            output_format: str_field(object, "output_format"),
            usage: usage(object),
            image_count,
        })),
    }
}

/// Converts a whole `ImagesResponse` into the messages to send, decoding every image first so
/// that undecodable data fails the call before any output.
pub fn non_streamed(
    body: Json,
    meta: &UpstreamMeta,
) -> Result<Vec<CreateImageResponse>, UpstreamError> {
    let Some(data) = body.get("data").and_then(Json::as_array) else {
        return Err(decode_error(
            meta,
            "the images response has no `data` array".into(),
        ));
    };
    let mut messages = Vec::new();
    for (i, entry) in data.iter().enumerate() {
        let index = i32::try_from(i).unwrap_or(i32::MAX);
        let revised_prompt = str_field(entry, "revised_prompt");
        if let Some(b64) = entry.get("b64_json").and_then(Json::as_str) {
            let image = decode_base64(b64, &format!("data[{i}].b64_json"), meta)?;
            messages.extend(image_chunks(index, &image, revised_prompt));
        } else if let Some(url) = entry.get("url").and_then(Json::as_str) {
            if url.len() + revised_prompt.as_ref().map_or(0, String::len) > MAX_PASSTHROUGH {
                return Err(decode_error(
                    meta,
                    format!(
                        "data[{i}].url is too large to forward ({} bytes)",
                        url.len()
                    ),
                ));
            }
            messages.push(CreateImageResponse {
                event: Some(Event::ImageUrl(ImageUrl {
                    image_index: index,
                    url: url.to_owned(),
                    revised_prompt,
                })),
            });
        } else {
            return Err(decode_error(
                meta,
                format!("data[{i}] has neither `b64_json` nor `url`"),
            ));
        }
    }
    let count = i32::try_from(data.len()).unwrap_or(i32::MAX);
    messages.push(result(&body, "created", count));
    Ok(messages)
}

/// What one upstream stream event means.
enum Converted {
    /// Send these messages; `true` when the image stream is complete.
    Messages(Vec<CreateImageResponse>, bool),
    /// Nothing to send (an unknown event too large to pass through).
    Skip,
}

/// Converts one `image_generation.*` stream event. An `error` event is an `Err`.
fn stream_event(data: &[u8], meta: &UpstreamMeta) -> Result<Converted, UpstreamError> {
    let event: Json = serde_json::from_slice(data)
        .map_err(|e| decode_error(meta, format!("a stream event is not JSON ({e})")))?;
    let kind = event.get("type").and_then(Json::as_str).unwrap_or_default();
    let b64 = || {
        event
            .get("b64_json")
            .and_then(Json::as_str)
            .ok_or_else(|| decode_error(meta, format!("a {kind} event has no `b64_json`")))
    };
    Ok(match kind {
        "image_generation.partial_image" | "image_edit.partial_image" => {
            let image = decode_base64(b64()?, kind, meta)?;
            let index = event
                .get("partial_image_index")
                .and_then(Json::as_i64)
                .and_then(|i| i32::try_from(i).ok())
                .unwrap_or(0);
            Converted::Messages(partial_chunks(index, &image), false)
        }
        "image_generation.completed" | "image_edit.completed" => {
            let image = decode_base64(b64()?, kind, meta)?;
            let mut messages = image_chunks(0, &image, str_field(&event, "revised_prompt"));
            messages.push(result(&event, "created_at", 1));
            Converted::Messages(messages, true)
        }
        "error" => {
            return Err(UpstreamError::StreamError {
                error: Box::new(ApiError::from_error_event(&event)),
                meta: meta.clone(),
            });
        }
        _ if data.len() > MAX_PASSTHROUGH => {
            tracing::warn!(
                event_type = kind,
                bytes = data.len(),
                "skipping an unknown image stream event too large to forward"
            );
            Converted::Skip
        }
        _ => Converted::Messages(
            vec![CreateImageResponse {
                event: Some(Event::Unknown(RawJson {
                    r#type: kind.to_owned(),
                    json: String::from_utf8_lossy(data).into_owned(),
                })),
            }],
            false,
        ),
    })
}

/// A streamed generation as a [`Source`]: one upstream event becomes several messages (an
/// image's chunks), queued in `pending` and handed out one at a time. Dropping it closes the
/// upstream request and frees the call's admission slot.
struct Upstream {
    events: Box<EventStream>,
    pending: VecDeque<CreateImageResponse>,
    /// The final image was converted: the last pending message ends the stream.
    complete: bool,
    client: OpenAiClient,
    /// The requested model, under which token usage is counted.
    model: String,
    _permit: Permit,
}

/// The token usage a final `result` message reports, under `model`.
fn usage_of(
    model: &str,
    message: &CreateImageResponse,
) -> Option<(String, Vec<(&'static str, i64)>)> {
    let Some(Event::Result(result)) = &message.event else {
        return None;
    };
    let usage = result.usage.as_ref()?;
    Some((
        model.to_owned(),
        vec![
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
        ],
    ))
}

impl Source for Upstream {
    type Message = CreateImageResponse;

    fn usage(&self, message: &CreateImageResponse) -> Option<(String, Vec<(&'static str, i64)>)> {
        usage_of(&self.model, message)
    }

    async fn next(&mut self) -> Step<CreateImageResponse> {
        loop {
            // Popping is synchronous, so a `next` dropped for a heartbeat loses nothing.
            if let Some(message) = self.pending.pop_front() {
                return if self.complete && self.pending.is_empty() {
                    Step::Last(message)
                } else {
                    Step::Send(message)
                };
            }
            if self.complete {
                return Step::End;
            }
            let converted = match self.events.next().await {
                Some(Ok(event)) => stream_event(&event.data, self.events.meta()),
                Some(Err(e)) => Err(e),
                None => Err(UpstreamError::Dropped {
                    message: "the upstream image stream closed before image_generation.completed"
                        .into(),
                    meta: self.events.meta().clone(),
                }),
            };
            match converted {
                Ok(Converted::Messages(messages, complete)) => {
                    self.pending.extend(messages);
                    self.complete = complete;
                }
                Ok(Converted::Skip) => {}
                Err(e) => return Step::Fail(status(&self.client, &e)),
            }
        }
    }

    /// A gateway heartbeat during a long silence (e.g. between previews).
    fn keepalive(&self) -> CreateImageResponse {
        CreateImageResponse {
            event: Some(Event::Keepalive(ImageKeepalive::default())),
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

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
    fn long_revised_prompt_keeps_the_first_message_small() {
        let image = Bytes::from(vec![1u8; 3 * CHUNK]);
        let chunks = image_chunks(2, &image, Some("x".repeat(100_000)));
        assert!(chunks.iter().all(|m| m.encoded_len() < 1024 * 1024));
        let Some(Event::ImageChunk(first)) = &chunks[0].event else {
            panic!()
        };
        assert!(first.revised_prompt.is_some());
        assert_eq!(first.data.len() % 3, 0);
    }

    #[test]
    fn body_has_only_set_fields() {
        let req = CreateImageRequest {
            prompt: "p".into(),
            model: Some("gpt-image-1".into()),
            n: Some(1),
            partial_images: Some(2),
            ..Default::default()
        };
        let body: Json = serde_json::from_slice(&request_body(&req, true)).unwrap();
        assert_eq!(
            body,
            json!({"prompt": "p", "model": "gpt-image-1", "n": 1, "partial_images": 2, "stream": true})
        );
    }
}
