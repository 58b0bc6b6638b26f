//! The one call path every RPC runs through. A handler supplies only the request's own parts
//! (an [`Rpc`]: its validation, the upstream call, the conversion of what comes back); this
//! module does the rest, in this order:
//!
//! 1. the call's span and metrics start;
//! 2. validation: a malformed request lists all its field errors (INVALID_ARGUMENT) before any
//!    load shedding or profile choice;
//! 3. admission (load shedding); the profile and key ([`super::profiles`]): for an RPC on a
//!    stored object, the profile that created it, after checking that the caller owns it
//!    ([`crate::owners`]; another caller's id is NOT_FOUND with no upstream call), and the ids a
//!    request refers to are checked the same way; the caller's quotas ([`crate::quotas`]); the
//!    caller's deadline; the W3C trace context and the caller's `openai-beta` for the upstream
//!    request;
//! 4. the upstream call ([`Rpc::open`]), unless a shutdown's drain timeout ends it first; its
//!    HTTP status is checked before anything is returned, so a failure before any output is a
//!    Trailers-Only status that clients and a mesh can retry;
//! 5. either the ready message(s), or a stream pumped to the caller ([`super::pump`]); both with
//!    the same bookkeeping: the upstream request id and rate-limit headers as response
//!    metadata, token usage, the code, duration and overhead, and one `rpc finished` log line.
//!
//! [`CallContext::unary`] serves unary RPCs, [`CallContext::streaming`] server-streaming ones.

use std::{marker::PhantomData, pin::Pin, sync::Arc, time::Duration};

use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};
use tokio_stream::{Stream, StreamExt as _, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, codegen::http::HeaderMap};
use tracing::Instrument;

use super::{
    admission::{self, Admission, Permit},
    profiles::{PROFILE_HEADER, Upstreams},
    pump::{Pumped, Source, Step, pump},
};
use crate::{
    auth::Caller,
    config::Limits,
    error::{self, Violation},
    openai::{Accept, OpenAiClient, Origin, UpstreamError, UpstreamMeta, UpstreamResponse},
    owners::{ANONYMOUS, Kind, Owner, Owners, Unavailable},
    quotas::{Admitted, Quotas},
    telemetry::{Call, Metrics, continue_trace},
    usage::Usage,
};

/// Implements a tonic service trait on [`CallContext`]: each RPC, one line, runs its [`Rpc`]
/// through the call path. `stream method(Rpc) -> StreamType;` for server-streaming RPCs (the
/// trait's associated stream type), `unary method(Rpc);` for unary ones.
macro_rules! serve {
    ($service:ident {
        $(stream $s_method:ident($s_rpc:ident) -> $s_stream:ident;)*
        $(unary $u_method:ident($u_rpc:ident);)*
    }) => {
        #[tonic::async_trait]
        impl $service for $crate::api::call::CallContext {
            $(
                type $s_stream = $crate::api::call::ReplyStream<<$s_rpc as $crate::api::call::Rpc>::Message>;

                async fn $s_method(
                    &self,
                    request: tonic::Request<<$s_rpc as $crate::api::call::Rpc>::Request>,
                ) -> Result<tonic::Response<Self::$s_stream>, tonic::Status> {
                    self.streaming(&$s_rpc, request).await
                }
            )*
            $(
                async fn $u_method(
                    &self,
                    request: tonic::Request<<$u_rpc as $crate::api::call::Rpc>::Request>,
                ) -> Result<tonic::Response<<$u_rpc as $crate::api::call::Rpc>::Message>, tonic::Status> {
                    self.unary(&$u_rpc, request).await
                }
            )*
        }
    };
}
pub(crate) use serve;

/// The stream a server-streaming RPC returns.
pub type ReplyStream<M> = Pin<Box<dyn Stream<Item = Result<M, Status>> + Send + 'static>>;

/// A request message the call path checks before anything else (implemented next to each
/// request's validation rules).
pub trait Checked {
    /// The model the request names, for the span ("" when it names none).
    fn model(&self) -> &str {
        ""
    }
    /// Every problem with the request, found without any upstream call (OpenAI's stated
    /// constraints only: where the spec is silent, OpenAI decides).
    fn violations(&self) -> Vec<Violation>;
}

/// One RPC's own parts: everything the shared call path cannot know.
pub trait Rpc: Send + Sync + 'static {
    /// The gRPC request message.
    type Request: Checked + Send + 'static;
    /// The gRPC reply message: the one message of a unary RPC, each message of a stream.
    type Message: Send + 'static;
    /// What a streamed answer reads from ([`NoStream`] for RPCs that never stream).
    type Source: Source<Message = Self::Message>;
    /// The RPC's name in metrics, spans and logs.
    const METHOD: &'static str;
    /// The stored object this RPC acts on, if any (`GetResponse`, the conversation RPCs...): it
    /// must belong to the caller, and the call goes to the profile that created it.
    fn target(_request: &Self::Request) -> Option<Stored<'_>> {
        None
    }
    /// The stored objects the request refers to (`previous_response_id`, `conversation`): each
    /// must belong to the caller and to the profile the call uses.
    fn references(_request: &Self::Request) -> Vec<Stored<'_>> {
        Vec::new()
    }
    /// Makes the upstream call and converts what comes back.
    fn open(
        &self,
        upstream: Upstream,
        request: Self::Request,
    ) -> impl Future<Output = Result<Opened<Self::Message, Self::Source>, Failure>> + Send;
}

/// A stored object named by id.
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    /// What it is.
    pub kind: Kind,
    /// Its id.
    pub id: &'a str,
}

impl<'a> Stored<'a> {
    /// A response id.
    pub fn response(id: &'a str) -> Self {
        Self {
            kind: Kind::Response,
            id,
        }
    }

    /// A conversation id.
    pub fn conversation(id: &'a str) -> Self {
        Self {
            kind: Kind::Conversation,
            id,
        }
    }
}

/// What [`Rpc::open`] gets to make its upstream call with.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The client of the call's profile (or the caller's own key), with the trace context.
    pub client: OpenAiClient,
    /// The caller's deadline, if it sent one.
    pub deadline: Option<Instant>,
    /// Who is calling, under which profile: what objects created by this call are bound to.
    pub owner: Owner,
    /// The bindings of stored objects.
    pub owners: Owners,
    /// The gateway's metrics (for counts an RPC keeps itself, such as stream resumes).
    pub metrics: Metrics,
}

impl Upstream {
    /// Binds a stored object this call created to its caller and profile.
    pub async fn bind(&self, kind: Kind, id: &str) {
        self.owners.bind(kind, id, &self.owner).await;
    }

    /// Reads the JSON answer of a call about stored object `id`: its headers, body and upstream
    /// facts. A failure is described as about the object (a 404 says it may not exist, may have
    /// been deleted or was not stored).
    pub async fn answer_about(
        &self,
        answer: Result<UpstreamResponse, UpstreamError>,
        kind: Kind,
        id: &str,
    ) -> Result<(HeaderMap, bytes::Bytes, UpstreamMeta), Failure> {
        let about = |e: UpstreamError| {
            Failure::Status(error::upstream_about(&e, self.client.origin(), kind, id))
        };
        let response = answer.map_err(about)?;
        let headers = response.headers().clone();
        let meta = response.meta().clone();
        let body = response.body().await.map_err(about)?;
        Ok((headers, body, meta))
    }

    /// Forgets a stored object this call deleted.
    pub async fn forget(&self, kind: Kind, id: &str) {
        self.owners.forget(kind, id).await;
    }

    /// POSTs a JSON `body` to `path` within the caller's deadline; the HTTP status is checked.
    pub async fn post(
        &self,
        path: &str,
        body: bytes::Bytes,
        accept: Accept,
    ) -> Result<UpstreamResponse, UpstreamError> {
        self.client
            .post_json(path, body, accept, self.deadline)
            .await
    }
}

/// Why a call failed: at the upstream (mapped to a status by [`crate::error::upstream`]), or
/// refused by the gateway with a status from [`crate::error`].
#[derive(Debug)]
pub enum Failure {
    /// The upstream call failed.
    Upstream(UpstreamError),
    /// The gateway refused the call.
    Status(Status),
}

impl Failure {
    /// The status for the caller; `origin` names the upstream and whose key it used.
    pub(crate) fn into_status(self, origin: &Origin) -> Status {
        match self {
            Self::Upstream(e) => error::upstream(&e, origin),
            Self::Status(s) => s,
        }
    }
}

impl From<UpstreamError> for Failure {
    fn from(e: UpstreamError) -> Self {
        Self::Upstream(e)
    }
}

impl From<Status> for Failure {
    fn from(s: Status) -> Self {
        Self::Status(s)
    }
}

/// An upstream call whose HTTP status was checked: its headers and what to send.
#[derive(Debug)]
pub struct Opened<M, S> {
    /// The upstream response headers (request id and rate limits go back as metadata).
    pub headers: HeaderMap,
    /// What the caller gets.
    pub answer: Answer<M, S>,
}

/// What the caller gets from an upstream call.
#[derive(Debug)]
pub enum Answer<M, S> {
    /// Messages converted before anything was sent (a unary RPC has exactly one), the token
    /// usage they report, and a failure that ends the stream after them (e.g. a non-streamed
    /// Response with `status: failed`).
    Ready {
        /// The messages, in order.
        messages: Vec<M>,
        /// Their token usage, if any.
        usage: Option<Usage>,
        /// A failure to end with after the messages.
        end: Option<Failure>,
    },
    /// A stream to pump to the caller.
    Stream(S),
}

impl<M, S> Opened<M, S> {
    /// Ready messages that end the call normally.
    pub fn ready(headers: HeaderMap, messages: Vec<M>, usage: Option<Usage>) -> Self {
        Self::ready_ending(headers, messages, usage, None)
    }

    /// Ready messages, then `end` (if any) ends the stream with its status.
    pub fn ready_ending(
        headers: HeaderMap,
        messages: Vec<M>,
        usage: Option<Usage>,
        end: Option<Failure>,
    ) -> Self {
        Self {
            headers,
            answer: Answer::Ready {
                messages,
                usage,
                end,
            },
        }
    }

    /// A stream to pump.
    pub fn stream(headers: HeaderMap, source: S) -> Self {
        Self {
            headers,
            answer: Answer::Stream(source),
        }
    }
}

/// The [`Rpc::Source`] of RPCs that never stream: it cannot be built.
#[derive(Debug)]
pub enum NoStream<M> {
    #[doc(hidden)]
    Never(std::convert::Infallible, PhantomData<fn() -> M>),
}

impl<M: Send + 'static> Source for NoStream<M> {
    type Message = M;

    async fn next(&mut self) -> Step<M> {
        match *self {
            Self::Never(never, _) => match never {},
        }
    }

    fn keepalive(&self) -> M {
        match *self {
            Self::Never(never, _) => match never {},
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

/// The caller metadata key (and upstream header) that turns on OpenAI beta features, e.g.
/// `openai-beta: responses_multi_agent=v1`. Passed through unchanged.
pub const BETA_HEADER: &str = "openai-beta";

/// The `OpenAI-Beta` header for the caller's `openai-beta` metadata: its values joined with
/// `,` (the header is a comma-separated list), or `None` when the caller sent none.
fn beta_header(metadata: &tonic::metadata::MetadataMap) -> Option<reqwest::header::HeaderValue> {
    let values: Vec<&str> = metadata
        .get_all(BETA_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return None;
    }
    values.join(",").parse().ok()
}

/// Wraps `body` in a response carrying [`FORWARDED_HEADERS`] from the upstream `headers`.
fn with_upstream_metadata<T>(body: T, headers: &HeaderMap) -> Response<T> {
    let mut response = Response::new(body);
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

/// Everything the call path shares across calls. Cheap to clone. It is also what serves every
/// gRPC service: each service file implements its tonic trait on it, one line per RPC.
#[derive(Debug, Clone)]
pub struct CallContext {
    admission: Admission,
    upstreams: Upstreams,
    owners: Ownership,
    quotas: Option<Quotas>,
    shutdown: watch::Receiver<bool>,
    stream_buffer: usize,
    heartbeat: Option<Duration>,
    metrics: Metrics,
}

/// How stored objects are guarded.
#[derive(Debug, Clone)]
pub struct Ownership {
    /// The bindings.
    pub owners: Owners,
    /// Caller authentication is on: a binding's caller must match, and ids the gateway did not
    /// create are refused (unless `allow_foreign_ids`). Off, there is one caller and nothing to
    /// isolate: bindings only route lifecycle calls to the right profile.
    pub enforce: bool,
    /// Accept ids the gateway did not create (`--allow-foreign-ids`, for migrations).
    pub allow_foreign_ids: bool,
}

/// A call that passed every gateway check and whose upstream call answered.
struct Started<R: Rpc> {
    call: Call,
    permit: Permit,
    quota: Option<Admitted>,
    origin: Arc<Origin>,
    opened: Opened<R::Message, R::Source>,
}

impl CallContext {
    /// A context with these limits and upstreams; `shutdown` turns true when in-flight calls
    /// must end.
    pub fn new(
        limits: &Limits,
        upstreams: Upstreams,
        owners: Ownership,
        stream_buffer: usize,
        heartbeat: Option<Duration>,
        shutdown: watch::Receiver<bool>,
        metrics: Metrics,
    ) -> Self {
        Self {
            admission: Admission::new(limits),
            upstreams,
            owners,
            quotas: None,
            shutdown,
            stream_buffer: stream_buffer.max(1),
            heartbeat,
            metrics,
        }
    }

    /// The same context, checking calls against `quotas` (`--limits-file`).
    pub fn with_quotas(self, quotas: Option<Quotas>) -> Self {
        Self { quotas, ..self }
    }

    /// Resolves when a shutdown's drain timeout has passed and in-flight calls must end.
    async fn forced_shutdown(mut shutdown: watch::Receiver<bool>) {
        // An error means the sender is gone: the server has stopped; treat as forced.
        let _ = shutdown.wait_for(|forced| *forced).await;
    }

    /// Runs a unary RPC.
    pub async fn unary<R: Rpc>(
        &self,
        rpc: &R,
        request: Request<R::Request>,
    ) -> Result<Response<R::Message>, Status> {
        let Started {
            mut call,
            opened,
            origin,
            quota,
            ..
        } = self.start(rpc, request, false).await?;
        let Answer::Ready {
            mut messages,
            usage,
            end,
        } = opened.answer
        else {
            return Err(call.refuse(error::internal("a unary RPC produced a stream")));
        };
        if let Some(end) = end {
            return Err(call.refuse(end.into_status(&origin)));
        }
        let (Some(message), true) = (messages.pop(), messages.is_empty()) else {
            return Err(call.refuse(error::internal("a unary RPC produced no single message")));
        };
        call.first_event();
        if let Some(usage) = &usage {
            call.usage(usage);
            if let Some(quota) = &quota {
                quota.record(usage).await;
            }
        }
        call.finish(tonic::Code::Ok);
        Ok(with_upstream_metadata(message, &opened.headers))
    }

    /// Runs a server-streaming RPC.
    pub async fn streaming<R: Rpc>(
        &self,
        rpc: &R,
        request: Request<R::Request>,
    ) -> Result<Response<ReplyStream<R::Message>>, Status> {
        let Started {
            mut call,
            permit,
            quota,
            origin,
            opened,
        } = self.start(rpc, request, true).await?;
        let stream: ReplyStream<R::Message> = match opened.answer {
            Answer::Ready {
                messages,
                usage,
                end,
            } => {
                call.first_event();
                if let Some(usage) = &usage {
                    call.usage(usage);
                    if let Some(quota) = &quota {
                        quota.record(usage).await;
                    }
                }
                let end = end.map(|f| f.into_status(&origin));
                call.finish(end.as_ref().map_or(tonic::Code::Ok, Status::code));
                Box::pin(tokio_stream::iter(
                    messages.into_iter().map(Ok).chain(end.map(Err)),
                ))
            }
            Answer::Stream(source) => {
                let (tx, rx) = mpsc::channel(self.stream_buffer);
                let span = call.span().clone();
                let pumped = Pumped {
                    call,
                    permit,
                    quota,
                    origin,
                    heartbeat: self.heartbeat,
                };
                let forced = Self::forced_shutdown(self.shutdown.clone());
                tokio::spawn(pump(tx, source, pumped, forced).instrument(span));
                Box::pin(
                    ReceiverStream::new(rx).map(|item: super::pump::Item<R::Message>| {
                        item.map(|m| *m).map_err(|s| *s)
                    }),
                )
            }
        };
        Ok(with_upstream_metadata(stream, &opened.headers))
    }

    /// The upstream for a call: the profile of the stored object it acts on (which must be the
    /// caller's), else the one the call names.
    async fn select<T>(
        &self,
        target: Option<Stored<'_>>,
        caller: &str,
        request: &Request<T>,
    ) -> Result<super::profiles::Selected, Status> {
        let Some(target) = target else {
            return self.upstreams.select(request);
        };
        match self.owners.owners.owner(target.kind, target.id).await {
            Ok(Some(owner)) if !self.owners.enforce || owner.caller == caller => {
                self.upstreams.select_named(owner.profile, request)
            }
            Ok(Some(_)) => Err(error::not_found(target.kind, target.id)),
            Ok(None) if self.owners.enforce && !self.owners.allow_foreign_ids => {
                Err(error::not_found(target.kind, target.id))
            }
            Err(Unavailable) if self.owners.enforce => {
                Err(error::ownership_unavailable(target.kind, target.id))
            }
            Ok(None) | Err(Unavailable) => self.upstreams.select(request),
        }
    }

    /// With caller authentication, a stored object a request refers to must be the caller's and
    /// under the call's profile (a response stored under one project's key is not visible to
    /// another's).
    async fn check_reference(
        &self,
        reference: Stored<'_>,
        caller: &str,
        profile: &str,
    ) -> Result<(), Status> {
        if !self.owners.enforce {
            return Ok(());
        }
        match self.owners.owners.owner(reference.kind, reference.id).await {
            Ok(Some(owner)) if owner.caller == caller && owner.profile == profile => Ok(()),
            Ok(None) if self.owners.allow_foreign_ids => Ok(()),
            Err(Unavailable) => Err(error::ownership_unavailable(reference.kind, reference.id)),
            _ => Err(error::not_found(reference.kind, reference.id)),
        }
    }

    /// Steps 1-4 of the call path (module docs): a refusal or upstream failure is returned as
    /// the status to send, already recorded.
    async fn start<R: Rpc>(
        &self,
        rpc: &R,
        request: Request<R::Request>,
        streaming: bool,
    ) -> Result<Started<R>, Status> {
        let profile = request
            .metadata()
            .get(PROFILE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let span = crate::rpc_span!(R::METHOD, request.get_ref().model(), profile);
        let caller = request.extensions().get::<Caller>().map(|c| c.0.clone());
        if let Some(caller) = &caller {
            span.record("caller", caller.as_str());
        }
        let call = self.metrics.start(R::METHOD, span.clone());
        let violations = request.get_ref().violations();
        if !violations.is_empty() {
            return Err(call.refuse(error::invalid_argument(&violations)));
        }
        let permit = match self.admission.admit(request.remote_addr()) {
            Ok(p) => p,
            Err(status) => return Err(call.refuse(status)),
        };
        let owner_name = caller.clone().unwrap_or_else(|| ANONYMOUS.to_owned());
        // The store and quota steps are boxed: their futures (Redis round trips) are large, and
        // a call's future is held for every call that is still opening (BENCHMARKS.md, "Memory
        // per stream").
        let selected = match Box::pin(self.select(
            R::target(request.get_ref()),
            &owner_name,
            &request,
        ))
        .await
        {
            Ok(selected) => selected,
            Err(status) => return Err(call.refuse(status)),
        };
        for reference in R::references(request.get_ref()) {
            if let Err(status) =
                Box::pin(self.check_reference(reference, &owner_name, &selected.profile)).await
            {
                return Err(call.refuse(status));
            }
        }
        let quota = match &self.quotas {
            Some(quotas) => {
                match Box::pin(quotas.admit(&owner_name, &selected.profile, streaming)).await {
                    Ok(admitted) => Some(admitted),
                    Err(status) => return Err(call.refuse(status)),
                }
            }
            None => None,
        };
        let mut client = selected.client;
        if let Some((traceparent, tracestate, trace_id)) = continue_trace(&span, request.metadata())
        {
            span.record("trace_id", trace_id.as_str());
            for (name, value) in [
                ("traceparent", Some(traceparent)),
                ("tracestate", tracestate),
            ] {
                if let Some(value) = value.and_then(|v| v.parse().ok()) {
                    client =
                        client.with_header(reqwest::header::HeaderName::from_static(name), value);
                }
            }
        }
        if let Some(beta) = beta_header(request.metadata()) {
            client =
                client.with_header(reqwest::header::HeaderName::from_static(BETA_HEADER), beta);
        }
        let origin = client.origin().clone();
        let upstream = Upstream {
            client,
            deadline: admission::deadline(&request),
            owner: Owner {
                caller: owner_name,
                profile: selected.profile,
            },
            owners: self.owners.owners.clone(),
            metrics: self.metrics.clone(),
        };
        let opened = async {
            tokio::select! {
                opened = rpc.open(upstream, request.into_inner()) => opened,
                () = Self::forced_shutdown(self.shutdown.clone()) => {
                    Err(Failure::Status(error::shutting_down()))
                }
            }
        }
        .instrument(span.clone())
        .await;
        let opened = match opened {
            Ok(opened) => opened,
            Err(failure) => return Err(call.refuse(failure.into_status(&origin))),
        };
        if let Some(id) = opened
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
        {
            span.record("upstream_request_id", id);
        }
        Ok(Started {
            call,
            permit,
            quota,
            origin,
            opened,
        })
    }
}
