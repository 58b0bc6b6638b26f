//! A fake OpenAI HTTP server on loopback: the gateway's `--demo` upstream and the test double of
//! the integration tests. It speaks only OpenAI's HTTP (as OpenAI's API reference documents it), never
//! gRPC.
//!
//! * [`FakeOpenAi::start`] binds `127.0.0.1:0` and serves HTTP/1.1 (and h2c) in a background
//!   task; dropping the handle stops it (in-flight bodies are aborted).
//! * Without queued scenarios every route behaves realistically: `POST /v1/responses` (JSON or
//!   SSE, text / tool call / refusal / reasoning transcripts; a prompt asking to be refused gets
//!   a refusal), `POST /v1/images/generations` (real PNGs), `POST /v1/audio/speech` (a real WAV
//!   sine tone, or SSE), and the Responses lifecycle and Conversations routes below; anything
//!   else is a 404 with OpenAI's error body. Every response carries OpenAI's headers
//!   (`x-request-id`, `openai-*`, `x-ratelimit-*`).
//! * [`FakeOpenAi::push`] queues a [`Scenario`] (error, raw bytes, custom events, odd framing,
//!   dropped or stalled connections); each request takes the next one.
//! * Every request is recorded ([`FakeOpenAi::requests`]), and every response body is tracked:
//!   [`FakeOpenAi::client_gone`], [`FakeOpenAi::finished`] and [`FakeOpenAi::sent_bytes`] tell
//!   whether the client read it all or went away.
//!
//! # Stored responses, background jobs, conversations
//!
//! The fake remembers what it created, like OpenAI (all under `/v1`; errors are OpenAI's
//! `{"error": {...}}` bodies):
//!
//! | Route | Behaviour |
//! |---|---|
//! | `POST /responses` | With `store` (default) keeps the final Response, its whole event transcript and its input items (given `msg_…` ids); an unknown `previous_response_id` is a 400 `previous_response_not_found`, an unknown `conversation` a 404; `background: true` runs it as a job (below) |
//! | `GET /responses/{id}` | The Response as of now; `?stream=true[&starting_after=N]` replays a background job's events after N, each when due (a foreground response: 400) |
//! | `DELETE /responses/{id}` | Forgets it |
//! | `POST /responses/{id}/cancel` | Cancels an unfinished background job (its streams stop); a finished one comes back unchanged |
//! | `GET /responses/{id}/input_items` | Its input items, paged (`limit` 1–100, default 20; `order` default `desc`; `after`) |
//! | `POST /responses/input_tokens` | `{"object":"response.input_tokens","input_tokens":N}`, the figure a create with that body reports |
//! | `POST /responses/compact` | The user messages kept plus one `compaction` item |
//! | `POST /conversations`, `GET`/`POST`/`DELETE /conversations/{id}` | Conversations with metadata (16 pairs, keys ≤ 64, values ≤ 512 chars) |
//! | `POST`/`GET /conversations/{id}/items`, `GET`/`DELETE /conversations/{id}/items/{item}` | Their items (a response created with `conversation` adds its input and output items when it finishes) |
//!
//! A create whose `metadata` holds `"demo_drop_after": "N"` has its connection dropped after N
//! events, so a demo user can watch the gateway resume a background stream.
//!
//! A background job advances with time: it is `queued` for 150 ms, then `in_progress`, then one
//! event becomes due every 25 ms until the terminal one ([`FakeOpenAi::set_background_pacing`]
//! changes both). Its transcript starts `response.created` (status `queued`),
//! `response.queued`, `response.in_progress`. A streamed background body (the create with
//! `stream: true`, or the GET) sends each event when it is due, never early, and closes after
//! the terminal event, or cleanly as soon as the job is cancelled; [`Scenario::drop_after`] and
//! friends count that body's events, so a test can cut a background stream and resume it with
//! `GET …?stream=true&starting_after=N`. At most 2048 responses and 1024 conversations are kept
//! (the oldest go first).
//!
//! Layout: this file holds the server, the public API, scenario planning and body tracking;
//! [`transcripts`] builds Responses event sequences; [`items`] holds one output item of each
//! type of OpenAI's spec; [`media`] encodes PNG and WAV; `routes` holds the default behaviour
//! of each route and the create; `lifecycle` the other Responses routes and the live body of
//! background streams; `conversations` the Conversations API; `store` the remembered state.

mod conversations;
pub mod items;
mod lifecycle;
pub mod media;
mod routes;
mod store;
pub mod transcripts;

pub use items::{every_item_events, every_output_item_type};
pub use transcripts::{
    error_body, error_event, every_event_type, failed_events, incomplete_events, reasoning_events,
    refusal_events, split_json, split_text, text_events, tool_call_events,
};

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures_util::Stream;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Largest request body the fake reads (bigger bodies are cut).
const MAX_REQUEST_BODY: usize = 64 * 1024 * 1024;

/// Pause before [`Ending::Drop`] fails the body, so hyper has flushed the bytes before it.
const FLUSH_BEFORE_ABORT: Duration = Duration::from_millis(10);

/// A running fake OpenAI server. Dropping it stops the server: it stops accepting, and response
/// bodies still streaming (slow, stalled) end with an error so their connections close.
pub struct FakeOpenAi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path plus query, e.g. `/v1/responses` or `/v1/responses/resp_1?stream=true`.
    pub path: String,
    /// Headers in arrival order, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The HTTP version, e.g. `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// The raw request body.
    pub body: Bytes,
    /// The body parsed as JSON, if it was JSON.
    pub json: Option<Value>,
    /// When the request (head and body) had been received.
    pub received_at: Instant,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive), if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the fake does with the next request. Queue with [`FakeOpenAi::push`]; a request takes
/// the next queued scenario whatever its route (requests rejected with 401 by
/// [`FakeOpenAi::require_api_key`] take none).
#[derive(Debug, Clone)]
pub enum Scenario {
    /// Reply with this status, this JSON body and these extra headers (e.g. `("retry-after",
    /// "2")`); extra headers replace standard ones of the same name.
    Error {
        /// HTTP status code.
        status: u16,
        /// The JSON body, usually [`error_body`].
        body: Value,
        /// Extra response headers.
        headers: Vec<(String, String)>,
    },
    /// Reply 200 `text/event-stream` with exactly these bytes, sent as separate body chunks
    /// split at the given byte offsets.
    RawSse {
        /// The whole body.
        bytes: Vec<u8>,
        /// Offsets at which to cut the body into chunks (out-of-range ones are ignored).
        split_at: Vec<usize>,
    },
    /// Reply 200 `text/event-stream` with these event JSON objects, framed per `framing`, then
    /// end per `ending`. The SSE `event:` line is each object's `type`.
    Events {
        /// The events, e.g. from [`text_events`].
        events: Vec<Value>,
        /// How to write them.
        framing: Framing,
        /// How the body ends.
        ending: Ending,
    },
    /// The default realistic behaviour for the request, but framed/ended differently (e.g. slow,
    /// or stalls after k events). For non-SSE replies (JSON, audio) the "events" are the body
    /// chunks: a JSON body is one chunk, audio comes in 16 KiB chunks.
    Default {
        /// How to write the events.
        framing: Framing,
        /// How the body ends.
        ending: Ending,
    },
    /// Reply with a non-SSE body of the given content type, as chunks (e.g. an undecodable body,
    /// or audio).
    Body {
        /// HTTP status code.
        status: u16,
        /// `content-type` header value.
        content_type: String,
        /// The body chunks, each sent as a separate chunk.
        chunks: Vec<Bytes>,
        /// Pause before every chunk after the first.
        delay: Option<Duration>,
        /// Extra response headers.
        headers: Vec<(String, String)>,
    },
}

impl Scenario {
    /// The default behaviour, cut after `events` events: the connection stays open and silent.
    pub fn stall_after(events: usize) -> Self {
        Scenario::Default {
            framing: Framing {
                limit: Some(events),
                ..Default::default()
            },
            ending: Ending::Stall,
        }
    }

    /// The default behaviour, cut after `events` events by dropping the connection mid-event.
    pub fn drop_after(events: usize) -> Self {
        Scenario::Default {
            framing: Framing {
                limit: Some(events),
                ..Default::default()
            },
            ending: Ending::Drop,
        }
    }

    /// The default behaviour with a pause of `delay` between events.
    pub fn slow(delay: std::time::Duration) -> Self {
        Scenario::Default {
            framing: Framing {
                delay: Some(delay),
                ..Default::default()
            },
            ending: Ending::Close,
        }
    }

    /// A 429 rate limit (`rate_limit_exceeded`) whose `Retry-After` is `seconds`.
    pub fn rate_limited(seconds: u64) -> Self {
        Scenario::Error {
            status: 429,
            body: error_body(
                "Rate limit reached for requests",
                "requests",
                None,
                Some("rate_limit_exceeded"),
            ),
            headers: vec![("retry-after".into(), seconds.to_string())],
        }
    }

    /// [`Scenario::Error`] with no extra headers.
    pub fn error(status: u16, body: Value) -> Self {
        Scenario::Error {
            status,
            body,
            headers: Vec::new(),
        }
    }

    /// [`Scenario::Events`] with default framing, closed after the last event.
    pub fn events(events: Vec<Value>) -> Self {
        Scenario::Events {
            events,
            framing: Framing::default(),
            ending: Ending::Close,
        }
    }
}

/// How SSE events are written on the wire. The default is OpenAI's own framing:
/// `event: <type>\ndata: <one-line JSON>\n\n`, each event one body chunk, no pauses.
#[derive(Debug, Clone, Default)]
pub struct Framing {
    /// Line terminator: LF (default), CRLF or CR.
    pub line_ending: LineEnding,
    /// Insert `: comment` lines between and inside event blocks.
    pub comments: bool,
    /// Pretty-print the JSON and send one `data:` line per JSON line (valid: SSE joins them with
    /// `\n`).
    pub multiline_data: bool,
    /// Send only `data:` lines, no `event:` lines.
    pub omit_event_lines: bool,
    /// Append a `data: [DONE]` block after the last event.
    pub done_marker: bool,
    /// Re-split the body into chunks of N bytes (N = 1: one byte per chunk). Chunks span event
    /// boundaries where no pause separates the events.
    pub chunk_size: Option<usize>,
    /// Pause between events.
    pub delay: Option<Duration>,
    /// With [`Ending::Drop`] / [`Ending::Stall`]: how many events to send before dropping or
    /// stalling (default: all but the terminal one).
    pub limit: Option<usize>,
    /// With [`Ending::Close`]: a pause after the last event before the body ends (the end of
    /// the HTTP/2 stream, or HTTP/1.1's last chunk, then comes on its own, later).
    pub pause_before_end: Option<Duration>,
}

/// SSE line terminator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LineEnding {
    /// `\n` (what OpenAI sends).
    #[default]
    Lf,
    /// `\r\n`.
    CrLf,
    /// `\r` alone.
    Cr,
}

impl LineEnding {
    fn as_str(self) -> &'static str {
        match self {
            LineEnding::Lf => "\n",
            LineEnding::CrLf => "\r\n",
            LineEnding::Cr => "\r",
        }
    }
}

/// How a body ends.
#[derive(Debug, Clone, Default)]
pub enum Ending {
    /// Send everything, then end the body normally.
    #[default]
    Close,
    /// Abort the connection mid-body: after `limit` events, send half of the next event's bytes,
    /// then end the body with an error so hyper resets the connection. (Tracked as
    /// `finished == Some(false)`, but not as the client going away.)
    Drop,
    /// After `limit` events keep the connection open sending nothing, forever (until the client
    /// goes away or the fake is dropped).
    Stall,
}

/// Body steps produced as the body goes (see [`lifecycle::live_steps`]).
type LiveSteps = Pin<Box<dyn Stream<Item = Step> + Send>>;

/// One step of a planned response body.
#[derive(Debug)]
enum Step {
    Data(Bytes),
    Sleep(Duration),
    Stall,
    Abort,
}

/// A reply before framing: status, headers and the payload units.
pub(crate) struct Reply {
    status: u16,
    content_type: String,
    headers: Vec<(String, String)>,
    payload: Payload,
}

/// The body of a [`Reply`].
pub(crate) enum Payload {
    /// SSE events (rendered by [`render_event`]).
    Sse(Vec<Value>),
    /// Opaque body chunks.
    Chunks(Vec<Bytes>),
    /// The SSE events of a background job, each sent when it becomes due
    /// ([`lifecycle::live_steps`]).
    Live(lifecycle::LiveSpec),
}

impl Reply {
    /// A JSON reply.
    pub(crate) fn json(status: u16, body: &Value) -> Self {
        Reply {
            status,
            content_type: "application/json".into(),
            headers: Vec::new(),
            payload: Payload::Chunks(vec![Bytes::from(body.to_string())]),
        }
    }

    /// An OpenAI error reply (§7.1).
    pub(crate) fn error(
        status: u16,
        message: &str,
        error_type: &str,
        param: Option<&str>,
        code: Option<&str>,
    ) -> Self {
        Reply::json(status, &error_body(message, error_type, param, code))
    }

    /// A 200 `text/event-stream` reply.
    pub(crate) fn sse(events: Vec<Value>) -> Self {
        Reply {
            status: 200,
            content_type: "text/event-stream; charset=utf-8".into(),
            headers: Vec::new(),
            payload: Payload::Sse(events),
        }
    }

    /// A 200 `text/event-stream` reply that follows a background job.
    pub(crate) fn live(spec: lifecycle::LiveSpec) -> Self {
        Reply {
            payload: Payload::Live(spec),
            ..Reply::sse(Vec::new())
        }
    }

    /// A 200 binary reply in chunks.
    pub(crate) fn chunks(content_type: &str, chunks: Vec<Bytes>) -> Self {
        Reply {
            status: 200,
            content_type: content_type.into(),
            headers: Vec::new(),
            payload: Payload::Chunks(chunks),
        }
    }
}

/// Serialises an event on one line with `type` and `sequence_number` first (as the 2025
/// recordings have them); other keys follow in map order.
fn event_json(event: &Value) -> String {
    let Value::Object(map) = event else {
        return event.to_string();
    };
    let mut out = String::from("{");
    let mut first = true;
    let mut push = |out: &mut String, k: &str, v: &Value| {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&Value::String(k.to_string()).to_string());
        out.push(':');
        out.push_str(&v.to_string());
    };
    for key in ["type", "sequence_number"] {
        if let Some(v) = map.get(key) {
            push(&mut out, key, v);
        }
    }
    for (k, v) in map {
        if k != "type" && k != "sequence_number" {
            push(&mut out, k, v);
        }
    }
    out.push('}');
    out
}

/// One SSE event block per `framing`.
fn render_event(event: &Value, framing: &Framing) -> Bytes {
    let nl = framing.line_ending.as_str();
    let mut out = String::new();
    if framing.comments {
        out.push_str(": fake-openai comment between events");
        out.push_str(nl);
    }
    if !framing.omit_event_lines
        && let Some(ty) = event.get("type").and_then(Value::as_str)
    {
        out.push_str("event: ");
        out.push_str(ty);
        out.push_str(nl);
    }
    if framing.comments {
        out.push_str(":inside the event block");
        out.push_str(nl);
    }
    if framing.multiline_data {
        let pretty = serde_json::to_string_pretty(event).unwrap_or_default();
        for line in pretty.lines() {
            out.push_str("data: ");
            out.push_str(line);
            out.push_str(nl);
        }
    } else {
        out.push_str("data: ");
        out.push_str(&event_json(event));
        out.push_str(nl);
    }
    out.push_str(nl);
    Bytes::from(out)
}

/// Turns a payload into body steps: framing, pauses, re-chunking and the ending.
fn plan_steps(payload: Payload, framing: &Framing, ending: &Ending) -> VecDeque<Step> {
    let (units, extra): (Vec<Bytes>, Option<Bytes>) = match payload {
        Payload::Sse(events) => {
            let units = events.iter().map(|e| render_event(e, framing)).collect();
            let done = framing.done_marker.then(|| {
                let nl = framing.line_ending.as_str();
                Bytes::from(format!("data: [DONE]{nl}{nl}"))
            });
            (units, done)
        }
        Payload::Chunks(chunks) => (chunks, None),
        // Live bodies make their own steps (`plan` takes them out before this).
        Payload::Live(_) => (Vec::new(), None),
    };
    let n = units.len();
    let cut = match ending {
        Ending::Close => None,
        Ending::Drop | Ending::Stall => Some(framing.limit.unwrap_or(n.saturating_sub(1))),
    };
    let mut steps = Vec::new();
    for (i, unit) in units.into_iter().enumerate() {
        if i > 0
            && let Some(d) = framing.delay
        {
            steps.push(Step::Sleep(d));
        }
        if cut == Some(i) {
            if matches!(ending, Ending::Drop) {
                steps.push(Step::Data(unit.slice(..unit.len() / 2)));
            }
            break;
        }
        steps.push(Step::Data(unit));
    }
    match (ending, cut) {
        (Ending::Close, _) => {
            if let Some(done) = extra {
                steps.push(Step::Data(done));
            }
            if let Some(d) = framing.pause_before_end {
                steps.push(Step::Sleep(d));
            }
        }
        (Ending::Drop, _) => {
            // Give hyper a moment to flush what was already handed over: it discards its write
            // buffer when a body fails, and the head and the half event must reach the client.
            steps.push(Step::Sleep(FLUSH_BEFORE_ABORT));
            steps.push(Step::Abort);
        }
        (Ending::Stall, _) => steps.push(Step::Stall),
    }
    rechunk(steps, framing.chunk_size)
}

/// Coalesces runs of adjacent data steps and cuts them into `size`-byte chunks.
fn rechunk(steps: Vec<Step>, size: Option<usize>) -> VecDeque<Step> {
    let Some(size) = size.filter(|s| *s > 0) else {
        return steps
            .into_iter()
            .filter(|s| !matches!(s, Step::Data(b) if b.is_empty()))
            .collect();
    };
    let mut out = VecDeque::new();
    let mut run: Vec<u8> = Vec::new();
    let flush = |run: &mut Vec<u8>, out: &mut VecDeque<Step>| {
        let all = Bytes::from(std::mem::take(run));
        let mut at = 0;
        while at < all.len() {
            let end = (at + size).min(all.len());
            out.push_back(Step::Data(all.slice(at..end)));
            at = end;
        }
    };
    for step in steps {
        match step {
            Step::Data(b) => run.extend_from_slice(&b),
            other => {
                flush(&mut run, &mut out);
                out.push_back(other);
            }
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Cuts `bytes` at the given offsets.
fn split_raw(bytes: Vec<u8>, split_at: &[usize]) -> VecDeque<Step> {
    let all = Bytes::from(bytes);
    let mut cuts: Vec<usize> = split_at
        .iter()
        .copied()
        .filter(|&c| c > 0 && c < all.len())
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut steps = VecDeque::new();
    let mut at = 0;
    for c in cuts.into_iter().chain(std::iter::once(all.len())) {
        if c > at {
            steps.push_back(Step::Data(all.slice(at..c)));
        }
        at = c;
    }
    steps
}

/// Tracking state of one request's response body.
#[derive(Debug)]
struct Entry {
    request: RecordedRequest,
    finished: Option<bool>,
    gone_at: Option<Instant>,
    sent: u64,
}

#[derive(Default)]
struct Inner {
    entries: Vec<Entry>,
    scenarios: VecDeque<Scenario>,
    api_key: Option<String>,
    /// Keys answered with a fixed error (see [`FakeOpenAi::refuse_key`]).
    refused_keys: Vec<(String, Scenario)>,
    /// Stored responses, background jobs, conversations.
    store: store::Store,
}

/// State shared by the handle, the handler and the bodies.
struct Shared {
    inner: Mutex<Inner>,
    /// Bumped on every change that a waiter may care about.
    changed: watch::Sender<()>,
    /// Resolves (true, or sender dropped) when the fake is shut down.
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self) {
        self.changed.send_replace(());
    }

    /// Waits until `check` returns Some.
    async fn wait<T>(&self, mut check: impl FnMut(&Inner) -> Option<T>) -> T {
        let mut rx = self.changed.subscribe();
        loop {
            if let Some(v) = check(&self.lock()) {
                return v;
            }
            // The sender lives in `self`, so this cannot fail while we hold `&self`.
            let _ = rx.changed().await;
        }
    }
}

/// Accepts connections until `stop` turns true, then waits for the open ones to end (response
/// bodies end themselves at shutdown). Each connection speaks HTTP/1.1 or h2c (prior
/// knowledge), whichever the client starts with; HTTP/2 connections take any number of
/// concurrent streams.
async fn serve(listener: TcpListener, app: Router, mut stop: watch::Receiver<bool>) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http2().max_concurrent_streams(None);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let tcp = match accepted {
                    Ok((tcp, _)) => tcp,
                    // Out of file descriptors, say: back off instead of spinning.
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                let connection = builder
                    .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                    .into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            () = &mut stopped => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

impl FakeOpenAi {
    /// Binds `127.0.0.1:0` and serves in a background tokio task.
    pub async fn start() -> io::Result<FakeOpenAi> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        Self::start_on(listener).await
    }

    /// Serves on an already bound listener, in a background tokio task.
    pub async fn start_on(listener: TcpListener) -> io::Result<FakeOpenAi> {
        let addr = listener.local_addr()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            changed: watch::channel(()).0,
            shutdown: shutdown_rx.clone(),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        tokio::spawn(serve(listener, app, shutdown_rx));
        Ok(FakeOpenAi {
            addr,
            shared,
            shutdown,
        })
    }

    /// The address the fake listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/v1`, the base URL to give an OpenAI client.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// From now on, a request whose `Authorization: Bearer <key>` differs from `key` (or is
    /// missing) gets 401 `invalid_api_key` with OpenAI's body, and takes no scenario.
    pub fn require_api_key(&self, key: &str) {
        self.shared.lock().api_key = Some(key.to_string());
    }

    /// From now on, every request presenting `key` as its bearer token gets `scenario` (e.g. a
    /// 429 with reset headers, for a key pool), and takes no queued scenario.
    pub fn refuse_key(&self, key: &str, scenario: Scenario) {
        self.shared
            .lock()
            .refused_keys
            .push((key.to_owned(), scenario));
    }

    /// Queues a scenario (FIFO): each incoming request takes the next one; with none queued it
    /// gets the default realistic behaviour.
    pub fn push(&self, scenario: Scenario) {
        self.shared.lock().scenarios.push_back(scenario);
    }

    /// Sets how background responses created from now on advance: `queued` for `queued`, then
    /// one event every `per_event` (defaults 150 ms and 25 ms). Zero durations make a job finish
    /// at once; long ones keep it running for a test to cancel or resume.
    pub fn set_background_pacing(&self, queued: Duration, per_event: Duration) {
        self.shared.lock().store.pacing = store::Pacing { queued, per_event };
    }

    /// Every request received so far, in arrival order (index = request index).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .entries
            .iter()
            .map(|e| e.request.clone())
            .collect()
    }

    /// Resolves once at least `n` requests have arrived; returns all of them.
    pub async fn wait_requests(&self, n: usize) -> Vec<RecordedRequest> {
        self.shared
            .wait(|inner| {
                (inner.entries.len() >= n)
                    .then(|| inner.entries.iter().map(|e| e.request.clone()).collect())
            })
            .await
    }

    /// Resolves when the response body of request `request_index` was dropped before it was
    /// fully sent because the client went away (connection closed or request cancelled);
    /// returns when that happened. Never resolves for bodies that completed, or that the fake
    /// itself aborted ([`Ending::Drop`]).
    pub async fn client_gone(&self, request_index: usize) -> Instant {
        self.shared
            .wait(|inner| inner.entries.get(request_index).and_then(|e| e.gone_at))
            .await
    }

    /// `Some(true)`: the body of request `request_index` was fully handed to hyper;
    /// `Some(false)`: it was dropped early (client gone, [`Ending::Drop`], or shutdown);
    /// `None`: still running, or no such request.
    pub fn finished(&self, request_index: usize) -> Option<bool> {
        self.shared
            .lock()
            .entries
            .get(request_index)
            .and_then(|e| e.finished)
    }

    /// Resolves when the body of request `request_index` has ended: `true` when it ran to its
    /// end (hyper was told it ended), `false` when it was dropped before that.
    pub async fn body_ended(&self, request_index: usize) -> bool {
        self.shared
            .wait(|inner| inner.entries.get(request_index).and_then(|e| e.finished))
            .await
    }

    /// Body bytes of request `request_index` handed to hyper so far (hyper only asks for more
    /// when it can write, so this shows backpressure).
    pub fn sent_bytes(&self, request_index: usize) -> u64 {
        self.shared
            .lock()
            .entries
            .get(request_index)
            .map_or(0, |e| e.sent)
    }
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

impl std::fmt::Debug for FakeOpenAi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeOpenAi")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// A response body that follows a step plan and records what happened to it.
struct TrackedBody {
    steps: VecDeque<Step>,
    /// Where further steps come from once `steps` runs out (a background stream).
    live: Option<LiveSteps>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
    shared: Arc<Shared>,
    index: usize,
    /// The plan ran out (fully sent) or aborted: nothing more to record.
    done: bool,
}

impl TrackedBody {
    fn new(
        steps: VecDeque<Step>,
        live: Option<LiveSteps>,
        shared: Arc<Shared>,
        index: usize,
    ) -> Self {
        let mut rx = shared.shutdown.clone();
        let shutdown = Box::pin(async move {
            let _ = rx.wait_for(|s| *s).await;
        });
        TrackedBody {
            steps,
            live,
            sleep: None,
            shutdown,
            shared,
            index,
            done: false,
        }
    }

    fn record(&self, f: impl FnOnce(&mut Entry)) {
        if let Some(e) = self.shared.lock().entries.get_mut(self.index) {
            f(e);
        }
        self.shared.notify();
    }

    fn abort(&mut self, why: &str) -> Poll<Option<io::Result<Bytes>>> {
        self.done = true;
        self.steps.clear();
        self.record(|e| e.finished = Some(false));
        Poll::Ready(Some(Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            why.to_string(),
        ))))
    }
}

impl Stream for TrackedBody {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if this.shutdown.as_mut().poll(cx).is_ready() {
            return this.abort("fake OpenAI server shut down");
        }
        loop {
            if let Some(sleep) = this.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep = None;
            }
            match this.steps.pop_front() {
                None => {
                    if let Some(live) = this.live.as_mut() {
                        match live.as_mut().poll_next(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(Some(step)) => this.steps.push_back(step),
                            Poll::Ready(None) => this.live = None,
                        }
                        continue;
                    }
                    this.done = true;
                    this.record(|e| e.finished = Some(true));
                    return Poll::Ready(None);
                }
                Some(Step::Data(bytes)) => {
                    let len = bytes.len() as u64;
                    let last = this.steps.is_empty() && this.live.is_none();
                    this.done = last;
                    this.record(|e| {
                        e.sent += len;
                        if last {
                            e.finished = Some(true);
                        }
                    });
                    return Poll::Ready(Some(Ok(bytes)));
                }
                Some(Step::Sleep(d)) => this.sleep = Some(Box::pin(tokio::time::sleep(d))),
                Some(Step::Stall) => {
                    // Pending forever; the shutdown future above holds our waker. hyper notices
                    // a peer that closes the connection (EOF on read) and drops this body.
                    this.steps.push_front(Step::Stall);
                    return Poll::Pending;
                }
                Some(Step::Abort) => {
                    return this.abort("fake OpenAI aborted the body (Ending::Drop)");
                }
            }
        }
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        if !self.done {
            let now = Instant::now();
            self.record(|e| {
                e.finished = Some(false);
                e.gone_at = Some(now);
            });
        }
    }
}

/// Masks a key the way OpenAI's 401 message does: `sk-ab***…***wxyz`.
fn mask_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 10 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

fn unauthorized(presented: Option<&str>) -> Reply {
    let message = match presented {
        None | Some("") => "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.".to_string(),
        Some(key) => format!(
            "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
            mask_key(key)
        ),
    };
    Reply::error(
        401,
        &message,
        "invalid_request_error",
        None,
        Some("invalid_api_key"),
    )
}

/// The single handler: records the request, picks scenario or default reply, builds the response.
async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_REQUEST_BODY)
        .await
        .unwrap_or_default();
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path_and_query().map_or_else(
            || parts.uri.path().to_string(),
            |pq| pq.as_str().to_string(),
        ),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        version: format!("{:?}", parts.version),
        json: if body.is_empty() {
            None
        } else {
            serde_json::from_slice(&body).ok()
        },
        body,
        received_at: Instant::now(),
    };
    let presented = recorded
        .header("authorization")
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim().to_string());

    let (index, decision) = {
        let mut inner = shared.lock();
        let index = inner.entries.len();
        inner.entries.push(Entry {
            request: recorded.clone(),
            finished: None,
            gone_at: None,
            sent: 0,
        });
        let authorized = match &inner.api_key {
            Some(key) => presented.as_deref() == Some(key.as_str()),
            None => true,
        };
        let refused = inner
            .refused_keys
            .iter()
            .find(|(key, _)| presented.as_deref() == Some(key.as_str()))
            .map(|(_, scenario)| scenario.clone());
        let decision = match (authorized, refused) {
            (false, _) => Err(()),
            (true, Some(scenario)) => Ok(Some(scenario)),
            (true, None) => Ok(inner.scenarios.pop_front()),
        };
        (index, decision)
    };
    shared.notify();

    let (reply, framing, ending) = match decision {
        Err(()) => (
            unauthorized(presented.as_deref()),
            Framing::default(),
            Ending::Close,
        ),
        Ok(None) => {
            let (framing, ending) = demo_drop(&recorded).unwrap_or_default();
            (routes::default_reply(&recorded, &shared), framing, ending)
        }
        Ok(Some(Scenario::Default { framing, ending })) => {
            (routes::default_reply(&recorded, &shared), framing, ending)
        }
        Ok(Some(Scenario::Error {
            status,
            body,
            headers,
        })) => {
            let mut reply = Reply::json(status, &body);
            reply.headers = headers;
            (reply, Framing::default(), Ending::Close)
        }
        Ok(Some(Scenario::Events {
            events,
            framing,
            ending,
        })) => (Reply::sse(events), framing, ending),
        Ok(Some(Scenario::RawSse { bytes, split_at })) => {
            let steps = split_raw(bytes, &split_at);
            return build_response(shared, index, Reply::sse(Vec::new()), steps, None, started);
        }
        Ok(Some(Scenario::Body {
            status,
            content_type,
            chunks,
            delay,
            headers,
        })) => {
            let mut reply = Reply::chunks(&content_type, chunks);
            reply.status = status;
            reply.headers = headers;
            let framing = Framing {
                delay,
                ..Framing::default()
            };
            (reply, framing, Ending::Close)
        }
    };
    let (reply, steps, live) = plan(reply, &framing, &ending);
    let live = live.map(|spec| lifecycle::live_steps(shared.clone(), spec, framing, ending));
    build_response(shared, index, reply, steps, live, started)
}

/// The demo upstream's way to show a broken stream without test code: a `POST /v1/responses`
/// whose `metadata` holds `"demo_drop_after": "N"` has its connection dropped after N events
/// (the gateway then resumes a background stream by itself; see the README).
fn demo_drop(request: &RecordedRequest) -> Option<(Framing, Ending)> {
    if request.method != "POST" || request.path != "/v1/responses" {
        return None;
    }
    let n = request
        .json
        .as_ref()?
        .get("metadata")?
        .get("demo_drop_after")?
        .as_str()?
        .parse()
        .ok()?;
    Some((
        Framing {
            limit: Some(n),
            ..Framing::default()
        },
        Ending::Drop,
    ))
}

/// Splits a reply into its head and the planned body steps (or, for a background stream, what
/// its live body follows).
fn plan(
    mut reply: Reply,
    framing: &Framing,
    ending: &Ending,
) -> (Reply, VecDeque<Step>, Option<lifecycle::LiveSpec>) {
    let payload = std::mem::replace(&mut reply.payload, Payload::Chunks(Vec::new()));
    match payload {
        Payload::Live(spec) => (reply, VecDeque::new(), Some(spec)),
        payload => {
            let steps = plan_steps(payload, framing, ending);
            (reply, steps, None)
        }
    }
}

fn build_response(
    shared: Arc<Shared>,
    index: usize,
    reply: Reply,
    steps: VecDeque<Step>,
    live: Option<LiveSteps>,
    started: Instant,
) -> Response {
    // JSON bodies that are sent whole get a content-length, like OpenAI's; streams are chunked.
    let whole_json = reply.content_type == "application/json"
        && live.is_none()
        && steps.iter().all(|s| matches!(s, Step::Data(_)));
    let content_length: u64 = steps
        .iter()
        .map(|s| match s {
            Step::Data(b) => b.len() as u64,
            _ => 0,
        })
        .sum();

    let tokens_used = (content_length / 4).min(29_000);
    let mut headers: Vec<(String, String)> = vec![
        ("content-type".into(), reply.content_type.clone()),
        (
            "x-request-id".into(),
            format!("req_{}", transcripts::random_hex(32)),
        ),
        ("openai-organization".into(), "fake-openai-org".into()),
        (
            "openai-project".into(),
            "proj_FakeOpenAiUpstream0000".into(),
        ),
        (
            "openai-processing-ms".into(),
            started.elapsed().as_millis().max(1).to_string(),
        ),
        ("openai-version".into(), "2020-10-01".into()),
        ("x-ratelimit-limit-requests".into(), "500".into()),
        (
            "x-ratelimit-remaining-requests".into(),
            (499 - (index % 500)).to_string(),
        ),
        ("x-ratelimit-reset-requests".into(), "120ms".into()),
        ("x-ratelimit-limit-tokens".into(), "30000".into()),
        (
            "x-ratelimit-remaining-tokens".into(),
            (30_000 - tokens_used).to_string(),
        ),
        ("x-ratelimit-reset-tokens".into(), "6ms".into()),
        (
            "access-control-expose-headers".into(),
            "X-Request-ID".into(),
        ),
    ];
    if whole_json {
        headers.push(("content-length".into(), content_length.to_string()));
    }
    let body = TrackedBody::new(steps, live, shared, index);
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let map = response.headers_mut();
    let parse = |(name, value): (String, String)| {
        Some((
            HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok()?,
            HeaderValue::from_str(&value).ok()?,
        ))
    };
    for (name, value) in headers.into_iter().filter_map(parse) {
        map.insert(name, value);
    }
    // Extra headers replace standard ones of the same name; repeated extras are all sent.
    let mut replaced = Vec::new();
    for (name, value) in reply.headers.into_iter().filter_map(parse) {
        if replaced.contains(&name) {
            map.append(name, value);
        } else {
            map.insert(name.clone(), value);
            replaced.push(name);
        }
    }
    response
}

#[cfg(test)]
mod tests;
