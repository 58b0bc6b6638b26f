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
use tonic::{Request, Response, Status};

use super::{
    call::{CallContext, Permit, Source, Step, pump},
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
    client: OpenAiClient,
    ctx: CallContext,
}

impl ResponsesApi {
    /// A handler calling OpenAI through `client`, with the shared per-call context.
    pub fn new(client: OpenAiClient, ctx: CallContext) -> Self {
        Self { client, ctx }
    }

    fn status(&self, e: &UpstreamError) -> Status {
        error::upstream(e, self.client.base_url())
    }
}

#[tonic::async_trait]
impl ResponsesService for ResponsesApi {
    type CreateResponseStream = Pin<Box<dyn Stream<Item = EventResult> + Send + 'static>>;

    async fn create_response(
        &self,
        request: Request<CreateResponseRequest>,
    ) -> Result<Response<Self::CreateResponseStream>, Status> {
        let permit = self.ctx.admit(&request)?;
        let deadline = self.ctx.deadline(&request);
        let request = request.into_inner();
        let violations = validate::create_response(&request);
        if !violations.is_empty() {
            return Err(error::invalid_argument(&violations));
        }
        let stream = request.stream.unwrap_or(true);
        let body = convert::request_body(&request, stream);
        let accept = if stream {
            Accept::EventStream
        } else {
            Accept::Json
        };
        let opened = async {
            let upstream = self
                .client
                .post_json("/responses", body, accept, deadline)
                .await
                .map_err(|e| self.status(&e))?;
            if stream {
                let events = upstream.events().map_err(|e| self.status(&e))?;
                return Ok(Opened::Stream(events));
            }
            let meta = upstream.meta().clone();
            let json = upstream.json().await.map_err(|e| self.status(&e))?;
            let event = convert::non_streamed(json, &meta).map_err(|e| self.status(&e))?;
            Ok(Opened::Single(event))
        };
        let events = match self.ctx.unless_shutdown(opened).await? {
            Opened::Single(single) => {
                let mut items = vec![Ok(single.message)];
                if let Outcome::Failed(e) = &single.outcome {
                    items.push(Err(self.status(e)));
                }
                return Ok(Response::new(Box::pin(tokio_stream::iter(items))));
            }
            Opened::Stream(events) => events,
        };
        let (tx, rx) = mpsc::channel(self.ctx.stream_buffer);
        let source = Upstream {
            events,
            api: self.clone(),
            _permit: permit,
        };
        let ctx = self.ctx.clone();
        tokio::spawn(async move { pump(&ctx, tx, source).await });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// An upstream call whose HTTP status was checked.
enum Opened {
    /// `stream: false`: the finished Response, as its one message.
    Single(convert::Event),
    /// `stream: true`: the event stream, not read yet.
    Stream(EventStream),
}

/// One upstream Responses stream as a [`Source`] of typed events. Dropping it closes the upstream
/// request and frees the call's admission slot.
struct Upstream {
    events: EventStream,
    api: ResponsesApi,
    _permit: Permit,
}

impl Source for Upstream {
    type Message = CreateResponseResponse;

    async fn next(&mut self) -> Step<CreateResponseResponse> {
        let data = match self.events.next().await {
            Some(Ok(event)) => event.data,
            Some(Err(e)) => return Step::Fail(self.api.status(&e)),
            None => {
                let e = UpstreamError::Dropped {
                    message: "the upstream stream closed before a terminal event (response.completed, response.incomplete, response.failed or error)".into(),
                    meta: self.events.meta().clone(),
                };
                return Step::Fail(self.api.status(&e));
            }
        };
        match convert::event(&data, self.events.meta()) {
            Ok(event) => match event.outcome {
                Outcome::Continue => Step::Send(event.message),
                Outcome::Terminal => Step::Last(event.message),
                Outcome::Failed(e) => Step::SendThenFail(event.message, self.api.status(&e)),
            },
            Err(e) => Step::Fail(self.api.status(&e)),
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
}
