//! The lifetime of one call, shared by every handler: admission (load shedding), the caller's
//! deadline, the shutdown signal, and the stream pump that forwards upstream events with
//! heartbeats.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch},
    time::Instant,
};
use tonic::{Request, Status};

use crate::{
    api::profiles::Upstreams,
    auth::Caller,
    config::Limits,
    error,
    openai::OpenAiClient,
    telemetry::{Call, Metrics, continue_trace},
};
use reqwest::header::HeaderName;

/// How long a caller turned away by load shedding is told to wait.
const SHED_RETRY: Duration = Duration::from_secs(1);

/// tonic ends the handler future itself with CANCELLED when the `grpc-timeout` passes, timed
/// from the moment the request headers arrived. The gateway times its deadline from the same
/// moment ([`Arrival`]) and fires this much earlier (two timer ticks), so the caller gets
/// DEADLINE_EXCEEDED with details instead.
const DEADLINE_MARGIN: Duration = Duration::from_millis(2);

/// When a request's headers arrived, stamped by [`stamp_arrival`] in the server's tower stack
/// (called synchronously right after tonic starts its own `grpc-timeout` timer).
#[derive(Debug, Clone, Copy)]
pub struct Arrival(pub Instant);

/// The tower layer function that stamps [`Arrival`] on every request.
pub fn stamp_arrival<B>(
    mut request: tonic::codegen::http::Request<B>,
) -> tonic::codegen::http::Request<B> {
    request.extensions_mut().insert(Arrival(Instant::now()));
    request
}

/// Everything a handler needs besides its upstream client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CallContext {
    admission: Admission,
    shutdown: watch::Receiver<bool>,
    /// Messages buffered per stream.
    pub stream_buffer: usize,
    /// Gateway keepalive interval on silent streams.
    pub heartbeat: Option<Duration>,
    /// Where calls are counted and timed.
    pub metrics: Metrics,
}

impl CallContext {
    /// A context with these limits; `shutdown` turns true when in-flight calls must end.
    pub fn new(
        limits: &Limits,
        stream_buffer: usize,
        heartbeat: Option<Duration>,
        shutdown: watch::Receiver<bool>,
        metrics: Metrics,
    ) -> Self {
        Self {
            admission: Admission::new(limits),
            shutdown,
            stream_buffer: stream_buffer.max(1),
            heartbeat,
            metrics,
        }
    }

    /// Admits a call or refuses it at once with RESOURCE_EXHAUSTED (never queues). Hold the
    /// returned permit for the life of the call.
    pub fn admit<T>(&self, request: &Request<T>) -> Result<Permit, Status> {
        self.admission.admit(request.remote_addr())
    }

    /// The caller's deadline from `grpc-timeout`, if it sent one, timed from the request's
    /// arrival.
    pub fn deadline<T>(&self, request: &Request<T>) -> Option<Instant> {
        let raw = request.metadata().get("grpc-timeout")?.to_str().ok()?;
        let timeout = parse_grpc_timeout(raw)?;
        let arrived = request
            .extensions()
            .get::<Arrival>()
            .map_or_else(Instant::now, |a| a.0);
        Some(arrived + timeout.saturating_sub(DEADLINE_MARGIN))
    }

    /// Resolves when a shutdown's drain timeout has passed and in-flight calls must end.
    pub async fn forced_shutdown(&self) {
        let mut rx = self.shutdown.clone();
        // An error means the sender is gone: the server has stopped; treat as forced.
        let _ = rx.wait_for(|forced| *forced).await;
    }

    /// Starts a call: counts it, opens its span, admits it (load shedding), reads its deadline,
    /// and picks its upstream (profile, caller key, trace context). A refusal is returned as
    /// the status to send, already recorded.
    pub fn begin<T>(
        &self,
        request: &Request<T>,
        upstreams: &Upstreams,
        method: &'static str,
        model: &str,
    ) -> Result<Begun, Status> {
        let profile = request
            .metadata()
            .get(crate::api::profiles::PROFILE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let span = crate::rpc_span!(method, model, profile);
        if let Some(caller) = request.extensions().get::<Caller>() {
            span.record("caller", caller.0.as_str());
        }
        let call = self.metrics.start(method, span.clone());
        let refuse = |call: Call, status: Status| {
            call.finish(status.code());
            status
        };
        let permit = match self.admit(request) {
            Ok(p) => p,
            Err(status) => return Err(refuse(call, status)),
        };
        let mut client = match upstreams.select(request) {
            Ok(selected) => selected.client,
            Err(status) => return Err(refuse(call, status)),
        };
        if let Some((traceparent, tracestate, trace_id)) = continue_trace(&span, request.metadata())
        {
            span.record("trace_id", trace_id.as_str());
            for (name, value) in [
                ("traceparent", Some(traceparent)),
                ("tracestate", tracestate),
            ] {
                if let Some(value) = value.and_then(|v| v.parse().ok()) {
                    client = client.with_header(HeaderName::from_static(name), value);
                }
            }
        }
        Ok(Begun {
            deadline: self.deadline(request),
            permit,
            client,
            call,
        })
    }

    /// Runs the pre-stream phase of a call (`fut`) unless the drain timeout ends it first.
    pub async fn unless_shutdown<T>(
        &self,
        fut: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        tokio::select! {
            result = fut => result,
            () = self.forced_shutdown() => Err(error::shutting_down()),
        }
    }
}

/// The upstream response headers a caller may want, returned as gRPC response metadata under
/// the same names: OpenAI's request id (quote it to OpenAI support), its processing time, and
/// the rate-limit state, so a caller can see its remaining quota.
pub const FORWARDED_HEADERS: [&str; 8] = [
    "x-request-id",
    "openai-processing-ms",
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
];

/// Wraps `body` in a response carrying [`FORWARDED_HEADERS`] from the upstream `headers`.
pub fn with_upstream_metadata<T>(
    body: T,
    headers: &tonic::codegen::http::HeaderMap,
) -> tonic::Response<T> {
    let mut response = tonic::Response::new(body);
    for name in FORWARDED_HEADERS {
        if let Some(value) = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
        {
            response.metadata_mut().insert(name, value);
        }
    }
    response
}

/// The status for a failed upstream call through `client` (whose base URL names the upstream).
pub fn upstream_status(client: &OpenAiClient, e: &crate::openai::UpstreamError) -> Status {
    error::upstream(e, client.base_url())
}

/// A call that was admitted, with what it needs to go on.
#[derive(Debug)]
pub struct Begun {
    /// The admission slot; hold it for the life of the call.
    pub permit: Permit,
    /// The caller's deadline, if any.
    pub deadline: Option<Instant>,
    /// The upstream client for this call (profile, key, trace context applied).
    pub client: OpenAiClient,
    /// The call's metrics and span.
    pub call: Call,
}

impl Begun {
    /// Ends the call with `status` (recorded) before any message was sent.
    pub fn fail(self, status: Status) -> Status {
        self.call.finish(status.code());
        status
    }
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(raw: &str) -> Option<Duration> {
    let (digits, unit) = raw.split_at(raw.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Calls in flight per client connection.
type ConnectionCounts = Arc<Mutex<HashMap<SocketAddr, usize>>>;

/// Load shedding: a global cap on calls in flight and a cap per client connection.
#[derive(Debug, Clone)]
struct Admission {
    global: Arc<Semaphore>,
    per_connection: ConnectionCounts,
    max_per_connection: usize,
}

/// Proof of admission; dropping it frees the slots.
#[derive(Debug)]
pub struct Permit {
    _global: OwnedSemaphorePermit,
    connection: Option<(SocketAddr, ConnectionCounts)>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some((addr, map)) = &self.connection {
            let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(count) = map.get_mut(addr) {
                *count -= 1;
                if *count == 0 {
                    map.remove(addr);
                }
            }
        }
    }
}

impl Admission {
    fn new(limits: &Limits) -> Self {
        Self {
            global: Arc::new(Semaphore::new(limits.max_in_flight)),
            per_connection: Arc::default(),
            max_per_connection: limits.max_streams_per_connection,
        }
    }

    fn admit(&self, remote: Option<SocketAddr>) -> Result<Permit, Status> {
        let global =
            self.global.clone().try_acquire_owned().map_err(|_| {
                error::overloaded("OVERLOADED", "upstream calls in flight", SHED_RETRY)
            })?;
        let connection = match remote {
            Some(addr) => {
                let mut map = self
                    .per_connection
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let count = map.entry(addr).or_insert(0);
                if *count >= self.max_per_connection {
                    return Err(error::overloaded(
                        "TOO_MANY_STREAMS_ON_CONNECTION",
                        "calls on one connection (open another connection)",
                        SHED_RETRY,
                    ));
                }
                *count += 1;
                Some((addr, self.per_connection.clone()))
            }
            None => None,
        };
        Ok(Permit {
            _global: global,
            connection,
        })
    }
}

/// One step of a stream pump, as seen by [`pump`].
pub enum Step<M> {
    /// Send this message and continue.
    Send(M),
    /// Send this message, then end the stream normally.
    Last(M),
    /// Send this message, then end the stream with this status.
    SendThenFail(M, Status),
    /// End the stream with this status.
    Fail(Status),
    /// End the stream normally.
    End,
}

/// Where a stream pump gets its messages: one upstream call.
pub trait Source: Send {
    /// The gRPC message type.
    type Message: Send;
    /// The next step. Must be cancel-safe: it is dropped when a heartbeat is due.
    fn next(&mut self) -> impl Future<Output = Step<Self::Message>> + Send;
    /// A gateway keepalive message, sent during long silences.
    fn keepalive(&self) -> Self::Message;
    /// The model and token usage a final message reports, for metrics and the call's span.
    fn usage(&self, _message: &Self::Message) -> Option<(String, Vec<(&'static str, i64)>)> {
        None
    }
}

/// Forwards what `source` produces into `tx` until the stream ends, the caller goes away (then
/// it returns at once, dropping `source`, which aborts the upstream request), or a forced
/// shutdown ends it with UNAVAILABLE. During silences longer than the heartbeat interval it
/// sends a keepalive so mesh idle timeouts do not cut a live stream.
pub async fn pump<S: Source>(
    ctx: &CallContext,
    tx: mpsc::Sender<Result<S::Message, Status>>,
    mut source: S,
    mut call: Call,
) {
    // Built once per stream, not per event: the caller-gone and shutdown futures, and one
    // heartbeat timer that is re-armed only when it fires (a per-event timer-wheel insert and
    // remove was a measurable share of the gateway's CPU per event; BENCHMARKS.md).
    let closed = tx.closed();
    let forced = ctx.forced_shutdown();
    let interval = ctx.heartbeat;
    let mut last_sent = Instant::now();
    let heartbeat = tokio::time::sleep_until(last_sent + interval.unwrap_or(NEVER));
    tokio::pin!(closed, forced, heartbeat);
    loop {
        let waiting_since = Instant::now();
        let step = tokio::select! {
            biased;
            () = &mut closed => return call.finish(tonic::Code::Cancelled),
            () = &mut forced => Step::Fail(error::shutting_down()),
            step = source.next() => step,
            () = &mut heartbeat, if interval.is_some() => {
                let due = last_sent + interval.unwrap_or(NEVER);
                if Instant::now() >= due {
                    if send(&tx, Ok(source.keepalive()), &mut call).await.is_err() {
                        return call.finish(tonic::Code::Cancelled);
                    }
                    last_sent = Instant::now();
                }
                heartbeat.as_mut().reset(last_sent + interval.unwrap_or(NEVER));
                continue;
            }
        };
        call.waited(waiting_since.elapsed());
        let (message, end) = match step {
            Step::Send(m) => (Some(m), None),
            Step::Last(m) => (Some(m), Some(Ok(()))),
            Step::SendThenFail(m, status) => (Some(m), Some(Err(status))),
            Step::Fail(status) => (None, Some(Err(status))),
            Step::End => (None, Some(Ok(()))),
        };
        if let Some(m) = message {
            if end.is_some()
                && let Some((model, usage)) = source.usage(&m)
            {
                call.usage(&model, &usage);
            }
            // A full channel waits here: the upstream is not read while the caller is behind.
            if send(&tx, Ok(m), &mut call).await.is_err() {
                return call.finish(tonic::Code::Cancelled);
            }
            last_sent = Instant::now();
        }
        match end {
            None => {}
            Some(Ok(())) => return call.finish(tonic::Code::Ok),
            Some(Err(status)) => {
                let code = status.code();
                let _ = send(&tx, Err(status), &mut call).await;
                return call.finish(code);
            }
        }
    }
}

/// "No heartbeat": far enough away never to fire.
const NEVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// Sends one item, counting the time blocked on a slow caller as waiting (not overhead).
async fn send<M>(
    tx: &mpsc::Sender<Result<M, Status>>,
    item: Result<M, Status>,
    call: &mut Call,
) -> Result<(), ()> {
    let first = item.is_ok();
    let since = Instant::now();
    let sent = tx.send(item).await.map_err(|_| ());
    call.waited(since.elapsed());
    if first && sent.is_ok() {
        call.first_event();
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units() {
        assert_eq!(parse_grpc_timeout("300m"), Some(Duration::from_millis(300)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
    }

    #[test]
    fn admission_caps_global_and_per_connection() {
        let a = Admission::new(&Limits {
            max_in_flight: 2,
            max_streams_per_connection: 1,
        });
        let one: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let two: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let p1 = a.admit(Some(one)).unwrap();
        let e = a.admit(Some(one)).unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        let _p2 = a.admit(Some(two)).unwrap();
        assert_eq!(
            a.admit(None).unwrap_err().code(),
            tonic::Code::ResourceExhausted
        );
        drop(p1);
        assert!(a.admit(Some(one)).is_ok(), "slots are freed on drop");
    }
}
