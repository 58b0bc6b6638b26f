//! `ResponsesService`: the request's own parts of each RPC; [`super::call`] runs them.
//!
//! `CreateResponse` streams (unless `stream: false`): each upstream event becomes one typed
//! message; an `error` or `response.failed` event is forwarded and then the stream ends with the
//! mapped status; a broken or truncated upstream ends it with UNAVAILABLE. When the caller goes
//! away the pump stops and drops the upstream request at once.

use super::{
    call::{Failure, Opened, Rpc, Upstream, serve},
    pump::{Source, Step},
};
use crate::{
    convert::responses::{self as convert, Outcome},
    openai::{Accept, EventStream, UpstreamError},
    pb::{
        CreateResponseRequest, CreateResponseResponse, responses_service_server::ResponsesService,
    },
    usage::Usage,
};

serve!(ResponsesService {
    stream create_response(CreateResponse) -> CreateResponseStream;
});

/// `CreateResponse`: `POST /responses`, streamed or not.
pub struct CreateResponse;

impl Rpc for CreateResponse {
    type Request = CreateResponseRequest;
    type Message = CreateResponseResponse;
    type Source = Events;
    const METHOD: &'static str = "CreateResponse";

    async fn open(
        &self,
        upstream: Upstream,
        request: CreateResponseRequest,
    ) -> Result<Opened<CreateResponseResponse, Events>, Failure> {
        let stream = request.stream.unwrap_or(true);
        let body = convert::request_body(&request, stream);
        let response = upstream
            .post("/responses", body, Accept::stream_if(stream))
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
pub struct Events(EventStream);

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
