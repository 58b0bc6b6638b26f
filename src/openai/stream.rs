//! An upstream `text/event-stream` body as a sequence of events.

use bytes::Bytes;

use futures_util::{Stream, StreamExt as _};
use tokio::time::{Instant, Sleep};

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

/// The body of an upstream response without its head: the headers were read into
/// [`UpstreamMeta`] already, and an open stream should not keep them (about a kilobyte each).
type Body = std::pin::Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Reads an upstream SSE body. Dropping it closes the upstream request.
pub struct EventStream {
    reader: Reader,
    budget: Budget,
    /// When the current wait for an event gives up, and which limit that is: the first-event
    /// timeout until the first event, then the idle timeout, always capped by the call's end.
    wait_until: Option<(Instant, TimeLimit)>,
    /// One timer for the whole stream, re-armed only when it fires: it may be set earlier than
    /// `wait_until` (which moves with every event), never later. A new timer per event was a
    /// timer-wheel insert and remove on the hot path (BENCHMARKS.md).
    timer: std::pin::Pin<Box<Sleep>>,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("meta", &self.reader.meta)
            .field("done", &self.reader.done)
            .field("wait_until", &self.wait_until)
            .finish_non_exhaustive()
    }
}

/// How long [`EventStream::drain`] waits for the end of a body after its terminal event, and how
/// many more bytes it reads, before it gives up and drops the body (resetting the request).
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);
const DRAIN_BYTES: usize = 64 * 1024;

/// The body and its decoder, apart from the timer so that both can be awaited at once.
struct Reader {
    body: Body,
    decoder: SseDecoder,
    meta: UpstreamMeta,
    done: bool,
}

impl EventStream {
    pub(super) fn new(response: reqwest::Response, meta: UpstreamMeta, budget: Budget) -> Self {
        let wait_until = budget.until(budget.first_event, TimeLimit::FirstEvent);
        let far = Instant::now() + std::time::Duration::from_secs(365 * 24 * 3600);
        Self {
            reader: Reader {
                body: Box::pin(response.bytes_stream()),
                decoder: SseDecoder::new(),
                meta,
                done: false,
            },
            timer: Box::pin(tokio::time::sleep_until(
                wait_until.map_or(far, |(at, _)| at),
            )),
            wait_until,
            budget,
        }
    }

    /// The upstream request id and hints.
    pub fn meta(&self) -> &UpstreamMeta {
        &self.reader.meta
    }

    /// The next event; `None` at a clean end of the body (or after `data: [DONE]`, which OpenAI's
    /// Responses API never sends but some compatible servers do). A body that breaks off, or ends
    /// in the middle of an event, is an [`UpstreamError::Dropped`]; a limit that passes is an
    /// [`UpstreamError::Timeout`]. Cancel-safe: dropping the future loses no data.
    pub async fn next(&mut self) -> Option<Result<StreamEvent, UpstreamError>> {
        loop {
            let Some((at, limit)) = self.wait_until else {
                return self.reader.next().await;
            };
            if self.timer.deadline() > at {
                self.timer.as_mut().reset(at);
            }
            tokio::select! {
                biased;
                read = self.reader.next() => {
                    if let Some(Ok(_)) = &read {
                        self.wait_until = self.budget.until(self.budget.idle, TimeLimit::Idle);
                    }
                    return read;
                }
                () = self.timer.as_mut() => {
                    if Instant::now() >= at {
                        self.reader.done = true;
                        return Some(Err(UpstreamError::Timeout { limit }));
                    }
                    // Set for an earlier limit: wait on for the current one.
                    self.timer.as_mut().reset(at);
                }
            }
        }
    }

    /// After the terminal event: reads the rest of the body (normally nothing but its end), so
    /// that the upstream request ends cleanly instead of being reset. Over HTTP/2 a reset
    /// stream whose end arrives after the client forgot it (h2 remembers at most 50 reset
    /// streams, for 1 s) costs the connection one of its 1,024 "local error resets", after which
    /// the client closes the shared connection and fails every stream on it (BENCHMARKS.md,
    /// "HTTP/2: ending streams cleanly"); over HTTP/1.1 a body read to its end lets the
    /// connection go back to the pool. Bounded by [`DRAIN_TIME`] and [`DRAIN_BYTES`].
    pub async fn drain(mut self) {
        let rest = async {
            let mut left = DRAIN_BYTES;
            while let Some(Ok(chunk)) = self.reader.body.next().await {
                left = match left.checked_sub(chunk.len()) {
                    Some(left) => left,
                    None => return,
                };
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, rest).await;
    }
}

impl Reader {
    async fn next(&mut self) -> Option<Result<StreamEvent, UpstreamError>> {
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
            match self.body.next().await {
                Some(Ok(chunk)) => self.decoder.feed(&chunk),
                None => {
                    self.done = true;
                    if self.decoder.finish() {
                        return Some(Err(UpstreamError::Dropped {
                            message: "the upstream body ended in the middle of an event".into(),
                            meta: self.meta.clone(),
                        }));
                    }
                    return None;
                }
                Some(Err(e)) => {
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
