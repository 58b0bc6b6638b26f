//! An upstream `text/event-stream` body as a sequence of events.

use bytes::Bytes;

use tokio::time::Instant;

use super::{Budget, TimeLimit, UpstreamError, UpstreamMeta, describe};
use crate::sse::SseDecoder;

/// One event of an upstream stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    /// The SSE `event:` name, if the server sent one (OpenAI sends the JSON `type` again).
    pub event: Option<String>,
    /// The `data:` payload: one JSON document for OpenAI.
    pub data: Bytes,
}

/// Reads an upstream SSE body. Dropping it closes the upstream request.
#[derive(Debug)]
pub struct EventStream {
    response: reqwest::Response,
    decoder: SseDecoder,
    meta: UpstreamMeta,
    done: bool,
    budget: Budget,
    /// When the current wait for an event gives up, and which limit that is: the first-event
    /// timeout until the first event, then the idle timeout, always capped by the call's end.
    wait_until: Option<(Instant, TimeLimit)>,
}

impl EventStream {
    pub(super) fn new(response: reqwest::Response, meta: UpstreamMeta, budget: Budget) -> Self {
        Self {
            response,
            decoder: SseDecoder::new(),
            meta,
            done: false,
            wait_until: budget.until(budget.first_event, TimeLimit::FirstEvent),
            budget,
        }
    }

    /// The upstream request id and hints.
    pub fn meta(&self) -> &UpstreamMeta {
        &self.meta
    }

    /// The next event; `None` at a clean end of the body (or after `data: [DONE]`, which OpenAI's
    /// Responses API never sends but some compatible servers do). A body that breaks off, or ends
    /// in the middle of an event, is an [`UpstreamError::Dropped`]; a limit that passes is an
    /// [`UpstreamError::Timeout`]. Cancel-safe: dropping the future loses no data.
    pub async fn next(&mut self) -> Option<Result<StreamEvent, UpstreamError>> {
        let Some((at, limit)) = self.wait_until else {
            return self.next_untimed().await;
        };
        match tokio::time::timeout_at(at, self.next_untimed()).await {
            Ok(result) => result,
            Err(_) => {
                self.done = true;
                Some(Err(UpstreamError::Timeout { limit }))
            }
        }
    }

    async fn next_untimed(&mut self) -> Option<Result<StreamEvent, UpstreamError>> {
        loop {
            if self.done {
                return None;
            }
            match self.decoder.next_event() {
                Ok(Some(ev)) => {
                    if ev.data.starts_with(b"[DONE]") {
                        self.done = true;
                        return None;
                    }
                    self.wait_until = self.budget.until(self.budget.idle, TimeLimit::Idle);
                    return Some(Ok(StreamEvent {
                        event: ev.event,
                        data: ev.data,
                    }));
                }
                Ok(None) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(UpstreamError::Decode {
                        message: e.to_string(),
                        meta: self.meta.clone(),
                    }));
                }
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.decoder.feed(&chunk),
                Ok(None) => {
                    self.done = true;
                    if self.decoder.finish() {
                        return Some(Err(UpstreamError::Dropped {
                            message: "the upstream body ended in the middle of an event".into(),
                            meta: self.meta.clone(),
                        }));
                    }
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(UpstreamError::Dropped {
                        message: describe(&e),
                        meta: self.meta.clone(),
                    }));
                }
            }
        }
    }
}

/// Reads a raw upstream body (such as audio) chunk by chunk, as the server sends it, under the
/// call's time limits: the first-event timeout until the first chunk, then the idle timeout
/// between chunks, always capped by the call's end. Dropping it closes the upstream request.
#[derive(Debug)]
pub struct ByteStream {
    response: reqwest::Response,
    meta: UpstreamMeta,
    budget: Budget,
    wait_until: Option<(Instant, TimeLimit)>,
    done: bool,
}

impl ByteStream {
    pub(super) fn new(response: reqwest::Response, meta: UpstreamMeta, budget: Budget) -> Self {
        Self {
            response,
            meta,
            wait_until: budget.until(budget.first_event, TimeLimit::FirstEvent),
            budget,
            done: false,
        }
    }

    /// The upstream request id and hints.
    pub fn meta(&self) -> &UpstreamMeta {
        &self.meta
    }

    /// The next chunk; `None` at the end of the body. Cancel-safe.
    pub async fn next(&mut self) -> Option<Result<Bytes, UpstreamError>> {
        if self.done {
            return None;
        }
        let wait_until = self.wait_until;
        let read = self.response.chunk();
        let result = match wait_until {
            None => read.await,
            Some((at, limit)) => match tokio::time::timeout_at(at, read).await {
                Ok(result) => result,
                Err(_) => {
                    self.done = true;
                    return Some(Err(UpstreamError::Timeout { limit }));
                }
            },
        };
        match result {
            Ok(Some(chunk)) => {
                self.wait_until = self.budget.until(self.budget.idle, TimeLimit::Idle);
                Some(Ok(chunk))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(UpstreamError::Dropped {
                    message: format!("reading the body failed: {}", describe(&e)),
                    meta: self.meta.clone(),
                }))
            }
        }
    }
}
