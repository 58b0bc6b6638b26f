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

use super::validate;
use crate::{
    convert::responses::{self as convert, Outcome},
    error,
    openai::{Accept, EventStream, OpenAiClient, UpstreamError},
    pb::{
        CreateResponseRequest, CreateResponseResponse, responses_service_server::ResponsesService,
    },
};

type EventResult = Result<CreateResponseResponse, Status>;

/// The `ResponsesService` implementation.
#[derive(Debug, Clone)]
pub struct ResponsesApi {
    client: OpenAiClient,
    stream_buffer: usize,
}

impl ResponsesApi {
    /// A handler calling OpenAI through `client`, buffering at most `stream_buffer` messages per
    /// stream.
    pub fn new(client: OpenAiClient, stream_buffer: usize) -> Self {
        Self {
            client,
            stream_buffer: stream_buffer.max(1),
        }
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
        let upstream = self
            .client
            .post_json("/responses", body, accept)
            .await
            .map_err(|e| self.status(&e))?;

        if !stream {
            let meta = upstream.meta().clone();
            let json = upstream.json().await.map_err(|e| self.status(&e))?;
            let event = convert::non_streamed(json, &meta).map_err(|e| self.status(&e))?;
            let mut items = vec![Ok(event.message)];
            if let Outcome::Failed(e) = &event.outcome {
                items.push(Err(self.status(e)));
            }
            return Ok(Response::new(Box::pin(tokio_stream::iter(items))));
        }

        let events = upstream.events().map_err(|e| self.status(&e))?;
        let (tx, rx) = mpsc::channel(self.stream_buffer);
        tokio::spawn(pump(events, tx, self.clone()));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Reads upstream events and forwards them, one typed message per event, until the terminal
/// event, an error, or the caller going away. Returning drops `events`, which aborts the
/// upstream request if it is still open.
async fn pump(mut events: EventStream, tx: mpsc::Sender<EventResult>, api: ResponsesApi) {
    loop {
        let next = tokio::select! {
            biased;
            // The caller cancelled or disconnected: stop now, even if the upstream is silent.
            () = tx.closed() => return,
            next = events.next() => next,
        };
        let data = match next {
            Some(Ok(event)) => event.data,
            Some(Err(e)) => {
                let _ = tx.send(Err(api.status(&e))).await;
                return;
            }
            None => {
                let e = UpstreamError::Dropped {
                    message: "the upstream stream closed before a terminal event (response.completed, response.incomplete, response.failed or error)".into(),
                    meta: events.meta().clone(),
                };
                let _ = tx.send(Err(api.status(&e))).await;
                return;
            }
        };
        let event = match convert::event(&data, events.meta()) {
            Ok(event) => event,
            Err(e) => {
                let _ = tx.send(Err(api.status(&e))).await;
                return;
            }
        };
        // A full channel waits here: the upstream is not read while the caller is behind.
        if tx.send(Ok(event.message)).await.is_err() {
            return;
        }
        match event.outcome {
            Outcome::Continue => {}
            Outcome::Terminal => return,
            Outcome::Failed(e) => {
                let _ = tx.send(Err(api.status(&e))).await;
                return;
            }
        }
    }
}
