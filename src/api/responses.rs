//! `ResponsesService`: validate -> convert -> call OpenAI -> stream typed events back.
//!
//! Streaming rules: the upstream request is opened and its HTTP status checked before the gRPC
//! stream is returned, so a failure before any output is a Trailers-Only status that clients and
//! the mesh can retry. Afterwards a bounded channel carries events from one reader task to the
//! caller (a slow caller slows the upstream read); an `error` or `response.failed` event is
//! forwarded and then the stream ends with the mapped status; a broken or truncated upstream ends
//! it with UNAVAILABLE. When the caller goes away the reader stops and drops the upstream request
//! at once.

use std::pin::Pin;

use tokio::sync::mpsc;
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::codegen::http::HeaderMap;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::{
    call::{
        Begun, CallContext, Permit, Source, Step, pump, upstream_status as status,
        with_upstream_metadata,
    },
    profiles::Upstreams,
    validate,
};
use crate::{
    convert::responses::{self as convert, Outcome},
    error,
    openai::{Accept, EventStream, OpenAiClient, UpstreamError},
    pb::{
        CreateResponseRequest, CreateResponseResponse, KeepaliveEvent,
        create_response_response::Event, responses_service_server::ResponsesService,
    },
};

type EventResult = Result<CreateResponseResponse, Status>;

/// The `ResponsesService` implementation.
#[derive(Debug, Clone)]
pub struct ResponsesApi {
    upstreams: Upstreams,
    ctx: CallContext,
}

impl ResponsesApi {
    /// A handler calling OpenAI through the profile each call selects, with the shared per-call
    /// context.
    pub fn new(upstreams: Upstreams, ctx: CallContext) -> Self {
        Self { upstreams, ctx }
    }
}

#[tonic::async_trait]
impl ResponsesService for ResponsesApi {
    type CreateResponseStream = Pin<Box<dyn Stream<Item = EventResult> + Send + 'static>>;

    async fn create_response(
        &self,
        request: Request<CreateResponseRequest>,
    ) -> Result<Response<Self::CreateResponseStream>, Status> {
        let model = request.get_ref().model.clone();
        let begun = self
            .ctx
            .begin(&request, &self.upstreams, "CreateResponse", &model)?;
        let span = begun.call.span().clone();
        let request = request.into_inner();
        let violations = validate::create_response(&request);
        if !violations.is_empty() {
            return Err(begun.fail(error::invalid_argument(&violations)));
        }
        let client = begun.client.clone();
        let opened = self
            .ctx
            .unless_shutdown(open(&client, &request, begun.deadline))
            .instrument(span.clone())
            .await;
        let (headers, opened) = match opened {
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
            Opened::Single(single) => {
                call.first_event();
                if let Some((model, usage)) = usage_of(&single.message) {
                    call.usage(&model, &usage);
                }
                let mut items = vec![Ok(single.message)];
                let code = match &single.outcome {
                    Outcome::Failed(e) => {
                        let failed = status(&client, e);
                        let code = failed.code();
                        items.push(Err(failed));
                        code
                    }
                    _ => tonic::Code::Ok,
                };
                call.finish(code);
                let stream: Self::CreateResponseStream = Box::pin(tokio_stream::iter(items));
                return Ok(with_upstream_metadata(stream, &headers));
            }
            Opened::Stream(events) => events,
        };
        let (tx, rx) = mpsc::channel(self.ctx.stream_buffer);
        let source = Upstream {
            events: *events,
            client,
            _permit: permit,
        };
        let ctx = self.ctx.clone();
        tokio::spawn(async move { pump(&ctx, tx, source, call).await }.instrument(span));
        let stream: Self::CreateResponseStream = Box::pin(ReceiverStream::new(rx));
        Ok(with_upstream_metadata(stream, &headers))
    }
}

/// Opens the upstream call and checks its status: the stream not read yet, or the finished
/// Response of a non-streamed call.
async fn open(
    client: &OpenAiClient,
    request: &CreateResponseRequest,
    deadline: Option<tokio::time::Instant>,
) -> Result<(HeaderMap, Opened), Status> {
    let stream = request.stream.unwrap_or(true);
    let body = convert::request_body(request, stream);
    let accept = if stream {
        Accept::EventStream
    } else {
        Accept::Json
    };
    let upstream = client
        .post_json("/responses", body, accept, deadline)
        .await
        .map_err(|e| status(client, &e))?;
    let headers = upstream.headers().clone();
    if stream {
        let events = upstream.events().map_err(|e| status(client, &e))?;
        return Ok((headers, Opened::Stream(Box::new(events))));
    }
    let meta = upstream.meta().clone();
    let json = upstream.json().await.map_err(|e| status(client, &e))?;
    let event = convert::non_streamed(json, &meta).map_err(|e| status(client, &e))?;
    Ok((headers, Opened::Single(Box::new(event))))
}

/// The model and token usage of a lifecycle message that carries a Response with usage.
fn usage_of(message: &CreateResponseResponse) -> Option<(String, Vec<(&'static str, i64)>)> {
    let response = match message.event.as_ref()? {
        Event::Completed(e) | Event::Incomplete(e) | Event::Failed(e) => e.response.as_ref()?,
        _ => return None,
    };
    let usage = response.usage.as_ref()?;
    let mut tokens = vec![
        ("input", usage.input_tokens.unwrap_or(0)),
        ("output", usage.output_tokens.unwrap_or(0)),
    ];
    if let Some(cached) = usage
        .input_tokens_details
        .as_ref()
        .and_then(|d| d.cached_tokens)
    {
        tokens.push(("cached_input", cached));
    }
    if let Some(reasoning) = usage
        .output_tokens_details
        .as_ref()
        .and_then(|d| d.reasoning_tokens)
    {
        tokens.push(("reasoning", reasoning));
    }
    Some((response.model.clone().unwrap_or_default(), tokens))
}

/// An upstream call whose HTTP status was checked.
enum Opened {
    /// `stream: false`: the finished Response, as its one message.
    Single(Box<convert::Event>),
    /// `stream: true`: the event stream, not read yet.
    Stream(Box<EventStream>),
}

/// One upstream Responses stream as a [`Source`] of typed events. Dropping it closes the upstream
/// request and frees the call's admission slot.
struct Upstream {
    events: EventStream,
    client: OpenAiClient,
    _permit: Permit,
}

impl Source for Upstream {
    type Message = CreateResponseResponse;

    async fn next(&mut self) -> Step<CreateResponseResponse> {
        let data = match self.events.next().await {
            Some(Ok(event)) => event.data,
            Some(Err(e)) => return Step::Fail(status(&self.client, &e)),
            None => {
                let e = UpstreamError::Dropped {
                    message: "the upstream stream closed before a terminal event (response.completed, response.incomplete, response.failed or error)".into(),
                    meta: self.events.meta().clone(),
                };
                return Step::Fail(status(&self.client, &e));
            }
        };
        match convert::event(&data, self.events.meta()) {
            Ok(event) => match event.outcome {
                Outcome::Continue => Step::Send(event.message),
                Outcome::Terminal => Step::Last(event.message),
                Outcome::Failed(e) => Step::SendThenFail(event.message, status(&self.client, &e)),
            },
            Err(e) => Step::Fail(status(&self.client, &e)),
        }
    }

    /// A gateway heartbeat: the `keepalive` variant without a `sequence_number` (OpenAI's own
    /// keepalive events carry one).
    fn keepalive(&self) -> CreateResponseResponse {
        CreateResponseResponse {
            sequence_number: None,
            event: Some(Event::Keepalive(KeepaliveEvent::default())),
        }
    }

    fn usage(
        &self,
        message: &CreateResponseResponse,
    ) -> Option<(String, Vec<(&'static str, i64)>)> {
        usage_of(message)
    }
}
