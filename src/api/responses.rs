//! `ResponsesService`: the request's own parts of each RPC; [`super::call`] runs them.
//!
//! `CreateResponse` streams (unless `stream: false`): each upstream event becomes one typed
//! message; an `error` or `response.failed` event is forwarded and then the stream ends with the
//! mapped status; a broken or truncated upstream ends it with UNAVAILABLE. When the caller goes
//! away the pump stops and drops the upstream request at once.

use tonic::{Request, Response, Status};

use super::{
    call::{CallContext, Failure, Opened, ReplyStream, Rpc, Upstream},
    pump::{Source, Step},
    validate,
};
use crate::{
    convert::responses::{self as convert, Outcome},
    error::Violation,
    openai::{Accept, EventStream, UpstreamError},
    pb::{
        CreateResponseRequest, CreateResponseResponse, responses_service_server::ResponsesService,
    },
    usage::Usage,
};

/// The `ResponsesService` implementation.
#[derive(Debug, Clone)]
pub struct ResponsesApi {
    ctx: CallContext,
}

impl ResponsesApi {
    /// The service, running its RPCs through `ctx`.
    pub fn new(ctx: CallContext) -> Self {
        Self { ctx }
    }
}

#[tonic::async_trait]
impl ResponsesService for ResponsesApi {
    type CreateResponseStream = ReplyStream<CreateResponseResponse>;

    async fn create_response(
        &self,
        request: Request<CreateResponseRequest>,
    ) -> Result<Response<Self::CreateResponseStream>, Status> {
        self.ctx.streaming(&CreateResponse, request).await
    }
}

/// `CreateResponse`: `POST /responses`, streamed or not.
struct CreateResponse;

impl Rpc for CreateResponse {
    type Request = CreateResponseRequest;
    type Message = CreateResponseResponse;
    type Source = Events;
    const METHOD: &'static str = "CreateResponse";

    fn model(request: &CreateResponseRequest) -> &str {
        &request.model
    }

    fn validate(request: &CreateResponseRequest) -> Vec<Violation> {
        validate::create_response(request)
    }

    async fn open(
        &self,
        upstream: Upstream,
        request: CreateResponseRequest,
    ) -> Result<Opened<CreateResponseResponse, Events>, Failure> {
        let stream = request.stream.unwrap_or(true);
        let body = convert::request_body(&request, stream);
        let accept = if stream {
            Accept::EventStream
        } else {
            Accept::Json
        };
        let response = upstream
            .client
            .post_json("/responses", body, accept, upstream.deadline)
            .await?;
        let headers = response.headers().clone();
        if stream {
            return Ok(Opened::stream(headers, Events(response.events()?)));
        }
        let meta = response.meta().clone();
        let single = convert::non_streamed(&response.body().await?, &meta)?;
        let usage = convert::usage(&single.message);
        let end = match single.outcome {
            Outcome::Failed(e) => Some(e.into()),
            Outcome::Continue | Outcome::Terminal => None,
        };
        Ok(Opened::ready_ending(
            headers,
            vec![single.message],
            usage,
            end,
        ))
    }
}

/// One upstream Responses stream as a [`Source`] of typed events.
struct Events(EventStream);

impl Source for Events {
    type Message = CreateResponseResponse;

    async fn next(&mut self) -> Step<CreateResponseResponse> {
        let events = &mut self.0;
        let data = match events.next().await {
            Some(Ok(event)) => event.data,
            Some(Err(e)) => return Step::Fail(e.into()),
            None => {
                return Step::Fail(
                    UpstreamError::Dropped {
                        message: "the upstream stream closed before a terminal event (response.completed, response.incomplete, response.failed or error)".into(),
                        meta: events.meta().clone(),
                    }
                    .into(),
                );
            }
        };
        match convert::event(&data, events.meta()) {
            Ok(event) => match event.outcome {
                Outcome::Continue => Step::Send(event.message),
                Outcome::Terminal => Step::Last(event.message),
                Outcome::Failed(e) => Step::SendThenFail(event.message, e.into()),
            },
            Err(e) => Step::Fail(e.into()),
        }
    }

    fn keepalive(&self) -> CreateResponseResponse {
        convert::keepalive()
    }

    fn usage(&self, message: &CreateResponseResponse) -> Option<Usage> {
        convert::usage(message)
    }
}
