//! The stream pump: forwards what one upstream call produces to the caller through a bounded
//! channel, with heartbeats during silences, until the stream ends, the caller goes away, or a
//! forced shutdown ends it.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use tokio::{sync::mpsc, time::Instant};
use tonic::Status;

use super::{admission::Permit, call::Failure};
use crate::{openai::Origin, telemetry::Call, usage::Usage};

/// One step of a stream, as a [`Source`] produces it.
#[derive(Debug)]
pub enum Step<M> {
    /// Send this message and continue.
    Send(M),
    /// Send this message, then end the stream normally.
    Last(M),
    /// Send this message, then end the stream with this failure's status.
    SendThenFail(M, Failure),
    /// End the stream with this failure's status.
    Fail(Failure),
    /// End the stream normally.
    End,
}

/// Where a stream pump gets its messages: one upstream call. Dropping it closes the upstream
/// request.
pub trait Source: Send + 'static {
    /// The gRPC message type.
    type Message: Send + 'static;
    /// The next step. Must be cancel-safe: it is dropped when a heartbeat is due.
    fn next(&mut self) -> impl Future<Output = Step<Self::Message>> + Send;
    /// A gateway keepalive message, sent during long silences.
    fn keepalive(&self) -> Self::Message;
    /// The token usage a final message reports, for metrics and the call's span.
    fn usage(&self, _message: &Self::Message) -> Option<Usage> {
        None
    }
    /// The caller cancelled or went away before the stream ended; the source is dropped right
    /// after (closing the upstream request). For work that must outlive the call (cancelling a
    /// background job), spawn it.
    fn caller_gone(&mut self) {}
    /// The stream ended normally and the caller has its last message: what is left to do with
    /// the upstream request (reading the rest of its body, so it ends without a reset). Runs
    /// after the caller's stream has ended, on its own task if it does not finish at once.
    fn finish(self) -> impl Future<Output = ()> + Send + 'static
    where
        Self: Sized,
    {
        std::future::ready(())
    }
}

/// Messages converted ahead of sending (one upstream event can become several messages),
/// handed out one at a time. Taking from it is synchronous, so a [`Source::next`] dropped for a
/// heartbeat loses nothing.
#[derive(Debug)]
pub struct Pending<M> {
    queue: VecDeque<M>,
    complete: bool,
}

impl<M> Pending<M> {
    /// A queue holding `first` (e.g. a start message).
    pub fn new(first: impl IntoIterator<Item = M>) -> Self {
        Self {
            queue: first.into_iter().collect(),
            complete: false,
        }
    }

    /// Queues messages to send.
    pub fn extend(&mut self, messages: impl IntoIterator<Item = M>) {
        self.queue.extend(messages);
    }

    /// The last queued message ends the stream.
    pub fn complete(&mut self) {
        self.complete = true;
    }

    /// The next step from what is queued, or `None` when the upstream must be read.
    pub fn take(&mut self) -> Option<Step<M>> {
        match self.queue.pop_front() {
            Some(m) if self.complete && self.queue.is_empty() => Some(Step::Last(m)),
            Some(m) => Some(Step::Send(m)),
            None => self.complete.then_some(Step::End),
        }
    }
}

/// What travels through a stream's channel: boxed, so that a channel slot is two pointers
/// wide. A message is as large as the largest event type (about a kilobyte inline), and tokio's
/// channel allocates its slots in blocks of 32 per stream, so unboxed every open stream held a
/// 35 KiB block (BENCHMARKS.md, "Memory per stream").
pub(crate) type Item<M> = Result<Box<M>, Box<Status>>;

/// What a pump needs besides its source and the caller's channel.
#[derive(Debug)]
pub(crate) struct Pumped {
    /// The call's metrics and span.
    pub(crate) call: Call,
    /// The admission slot, freed when the pump ends.
    pub(crate) permit: Permit,
    /// The call's quota subjects and leases (freed when the pump ends), if quotas are on.
    pub(crate) quota: Option<crate::quotas::Admitted>,
    /// The upstream, for error messages.
    pub(crate) origin: Arc<Origin>,
    /// Heartbeat interval, if any.
    pub(crate) heartbeat: Option<Duration>,
}

/// Forwards what `source` produces into `tx` until the stream ends, the caller goes away (then
/// it returns at once, dropping `source`, which aborts the upstream request), or `forced`
/// (a shutdown's drain timeout) ends it with UNAVAILABLE. During silences longer than the
/// heartbeat interval it sends a keepalive so mesh idle timeouts do not cut a live stream.
pub(crate) async fn pump<S: Source>(
    tx: mpsc::Sender<Item<S::Message>>,
    mut source: S,
    pumped: Pumped,
    forced: impl Future<Output = ()>,
) {
    let Pumped {
        mut call,
        permit,
        quota,
        origin,
        heartbeat: interval,
    } = pumped;
    let _permit = permit;
    let fail = |failure: Failure| failure.into_status(&origin);
    // Built once per stream, not per event: the caller-gone and shutdown futures, and one
    // heartbeat timer that is re-armed only when it fires (a per-event timer-wheel insert and
    // remove was a measurable share of the gateway's CPU per event; BENCHMARKS.md).
    let closed = tx.closed();
    let mut last_sent = Instant::now();
    let heartbeat = tokio::time::sleep_until(last_sent + interval.unwrap_or(NEVER));
    tokio::pin!(closed, forced, heartbeat);
    loop {
        let waiting_since = Instant::now();
        let step = tokio::select! {
            biased;
            () = &mut closed => {
                source.caller_gone();
                return call.finish(tonic::Code::Cancelled);
            }
            () = &mut forced => Step::Fail(Failure::Status(crate::error::shutting_down())),
            step = source.next() => step,
            () = &mut heartbeat, if interval.is_some() => {
                let due = last_sent + interval.unwrap_or(NEVER);
                if Instant::now() >= due {
                    if send(&tx, Ok(Box::new(source.keepalive())), &mut call)
                        .await
                        .is_err()
                    {
                        source.caller_gone();
                        return call.finish(tonic::Code::Cancelled);
                    }
                    last_sent = Instant::now();
                }
                heartbeat.as_mut().reset(last_sent + interval.unwrap_or(NEVER));
                continue;
            }
        };
        call.waited(waiting_since.elapsed());
        // The upstream sent its terminal event (the stream's end, or OpenAI's own failure
        // event): its request is finished rather than dropped. Not so for a broken stream or a
        // shutdown.
        let upstream_done = matches!(step, Step::Last(_) | Step::SendThenFail(..) | Step::End);
        let (message, end) = match step {
            Step::Send(m) => (Some(m), None),
            Step::Last(m) => (Some(m), Some(Ok(()))),
            Step::SendThenFail(m, failure) => (Some(m), Some(Err(fail(failure)))),
            Step::Fail(failure) => (None, Some(Err(fail(failure)))),
            Step::End => (None, Some(Ok(()))),
        };
        if let Some(m) = message {
            let usage = if end.is_some() {
                source.usage(&m)
            } else {
                None
            };
            // A full channel waits here: the upstream is not read while the caller is behind.
            let sent = send(&tx, Ok(Box::new(m)), &mut call).await;
            // The final message goes out first; its tokens are charged after (a quota update
            // may be a Redis round trip), and also when the caller left at the last moment:
            // they were spent either way.
            if let Some(usage) = usage {
                call.usage(&usage);
                if let Some(quota) = &quota {
                    // Boxed: a Redis round trip is a large future, awaited once per stream.
                    Box::pin(quota.record(&usage)).await;
                }
            }
            if sent.is_err() {
                source.caller_gone();
                return call.finish(tonic::Code::Cancelled);
            }
            last_sent = Instant::now();
        }
        match end {
            None => {}
            Some(Ok(())) => {
                call.finish(tonic::Code::Ok);
                return finish(source);
            }
            Some(Err(status)) => {
                let code = status.code();
                let _ = send(&tx, Err(Box::new(status)), &mut call).await;
                call.finish(code);
                if upstream_done {
                    finish(source);
                }
                return;
            }
        }
    }
}

/// Runs [`Source::finish`]: at once when it has nothing to wait for (the upstream body had
/// already ended, the usual case), else on a task of its own, so that the caller's stream ends
/// now (the pump's return drops the channel's sender).
fn finish<S: Source>(source: S) {
    let mut rest = Box::pin(source.finish());
    let waker = std::task::Waker::noop();
    if rest
        .as_mut()
        .poll(&mut std::task::Context::from_waker(waker))
        .is_pending()
    {
        tokio::spawn(rest);
    }
}

/// "No heartbeat": far enough away never to fire.
const NEVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// Sends one item, counting the time blocked on a slow caller as waiting (not overhead). The
/// item comes boxed, so the pump's future does not hold a message inline while it waits.
async fn send<M>(tx: &mpsc::Sender<Item<M>>, item: Item<M>, call: &mut Call) -> Result<(), ()> {
    let first = item.is_ok();
    let since = Instant::now();
    let sent = tx.send(item).await.map_err(|_| ());
    call.waited(since.elapsed());
    if first && sent.is_ok() {
        call.first_event();
    }
    sent
}
