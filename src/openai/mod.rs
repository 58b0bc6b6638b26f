//! The OpenAI HTTP client: one pooled `reqwest` client, OpenAI's headers, status checks, and the
//! SSE body decoded into events. Speaks JSON and HTTP only; never imports tonic, so it could be
//! its own crate.

mod config;
mod error;
pub mod keys;
pub mod retry;
mod stream;

use std::time::Duration;

use bytes::Bytes;
use reqwest::{
    Method,
    header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue},
};
use tokio::time::Instant;

pub use config::{
    ApiKey, BadBaseUrl, BadKey, DEFAULT_BASE_URL, KeyOwner, RetryPolicy, Timeouts, UpstreamConfig,
    UpstreamProtocol,
};
pub use error::{
    ApiError, TimeLimit, UpstreamError, UpstreamMeta, retry_after, retry_hint_in_message,
};
pub use stream::{ByteStream, EventStream, StreamEvent};

/// Which upstream a client calls and with whose key: what an error message names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The base URL, without a trailing slash.
    pub base_url: String,
    /// Whose key the client sends.
    pub key: KeyOwner,
}

/// A client for one upstream (base URL + credentials). Cheap to clone: clones share the pool.
#[derive(Clone, Debug)]
pub struct OpenAiClient {
    http: reqwest::Client,
    /// The base URL, parsed once: a request's URL is this with its path extended (parsing the
    /// whole URL per call, host and all, was a visible share of a unary call's CPU).
    base: std::sync::Arc<reqwest::Url>,
    origin: std::sync::Arc<Origin>,
    retry: RetryPolicy,
    timeouts: Timeouts,
    /// Per-call headers: a caller-supplied key (see [`Self::with_key`]), trace context.
    request_headers: Vec<(HeaderName, HeaderValue)>,
    /// Told about every upstream response and retry (metrics), if set.
    observer: Option<std::sync::Arc<dyn Observer>>,
    /// The profile's keys when it has several; `None`: the one key in the default headers.
    pool: Option<std::sync::Arc<keys::KeyPool>>,
}

/// Receives upstream events for metrics, without this module knowing any metrics library.
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// An upstream attempt ended with this HTTP status, or with no response (`None`).
    fn response(&self, status: Option<u16>);
    /// A failed attempt is about to be retried.
    fn retry(&self);
    /// A pooled key cools down (`key` is its id, never the key) for `reason`.
    fn key_cooled(&self, _key: &str, _reason: keys::Reason) {}
}

/// The time limits of one call, fixed when it starts.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// The earliest hard end of the call (caller deadline or total timeout) and which it is.
    end: Option<(Instant, TimeLimit)>,
    /// Limit for the response headers and the first event, from the start of each attempt.
    first_event: Option<Duration>,
    /// Limit for silence between events.
    idle: Option<Duration>,
}

impl Budget {
    fn new(timeouts: &Timeouts, caller_deadline: Option<Instant>) -> Self {
        let total = timeouts
            .total
            .map(|t| (Instant::now() + t, TimeLimit::Total));
        let caller = caller_deadline.map(|d| (d, TimeLimit::CallerDeadline));
        let end = match (total, caller) {
            (Some(t), Some(c)) => Some(if c.0 <= t.0 { c } else { t }),
            (t, c) => t.or(c),
        };
        Self {
            end,
            first_event: timeouts.first_event,
            idle: timeouts.idle,
        }
    }

    /// The sooner of the call's hard end and `now + limit` (tagged `kind`).
    fn until(&self, limit: Option<Duration>, kind: TimeLimit) -> Option<(Instant, TimeLimit)> {
        let soft = limit.map(|l| (Instant::now() + l, kind));
        match (self.end, soft) {
            (Some(e), Some(s)) => Some(if e.0 <= s.0 { e } else { s }),
            (e, s) => e.or(s),
        }
    }
}

/// Runs `fut` until `limit` (if any); a timeout becomes [`UpstreamError::Timeout`].
async fn within<T>(
    limit: Option<(Instant, TimeLimit)>,
    fut: impl Future<Output = Result<T, UpstreamError>>,
) -> Result<T, UpstreamError> {
    match limit {
        None => fut.await,
        Some((at, limit)) => tokio::time::timeout_at(at, fut)
            .await
            .unwrap_or(Err(UpstreamError::Timeout { limit })),
    }
}

/// What to ask for in `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// `application/json`: a single JSON body.
    Json,
    /// `text/event-stream`: an SSE stream.
    EventStream,
    /// `*/*`: binary bodies such as audio.
    Any,
}

impl Accept {
    /// [`Accept::EventStream`] for a streamed call, else [`Accept::Json`].
    pub fn stream_if(stream: bool) -> Self {
        if stream {
            Self::EventStream
        } else {
            Self::Json
        }
    }
}

impl OpenAiClient {
    /// Builds the client. Fails only on header values that cannot be sent (reported at start-up).
    pub fn new(
        config: &UpstreamConfig,
        retry: &RetryPolicy,
        timeouts: &Timeouts,
    ) -> Result<Self, String> {
        let mut headers = HeaderMap::new();
        let pool = if config.extra_keys.is_empty() {
            None
        } else {
            let profile = match &config.key_owner {
                KeyOwner::Profile(name) => name.as_str(),
                KeyOwner::Gateway | KeyOwner::Caller => "default",
            };
            let all: Vec<ApiKey> = config
                .api_key
                .iter()
                .chain(&config.extra_keys)
                .cloned()
                .collect();
            Some(std::sync::Arc::new(keys::KeyPool::new(profile, &all)?))
        };
        if let (Some(key), None) = (&config.api_key, &pool) {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                .map_err(|_| "the OpenAI API key is not a valid header value".to_owned())?;
            // Marks the value sensitive so HTTP/2 HPACK never indexes it and Debug hides it.
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        for (name, value) in [
            ("openai-organization", &config.organization),
            ("openai-project", &config.project),
        ] {
            if let Some(v) = value {
                let v = HeaderValue::from_str(v)
                    .map_err(|_| format!("{name} {v:?} is not a valid header value"))?;
                headers.insert(HeaderName::from_static(name), v);
            }
        }
        // One pooled client for the process: HTTP/2 when the server offers it (ALPN), TCP
        // keepalive so dead peers are noticed, bounded idle pool.
        let mut http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("openai-grpc-gateway/", env!("CARGO_PKG_VERSION")))
            .tcp_nodelay(true)
            .tcp_keepalive(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64);
        if let Some(connect) = timeouts.connect {
            http = http.connect_timeout(connect);
        }
        if config.protocol == UpstreamProtocol::Http2 {
            http = http.http2_prior_knowledge();
        }
        let http = http
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            http,
            base: std::sync::Arc::new(config.base_url.clone()),
            origin: std::sync::Arc::new(Origin {
                base_url: config.base_url.as_str().trim_end_matches('/').to_owned(),
                key: config.key_owner.clone(),
            }),
            retry: retry.clone(),
            timeouts: timeouts.clone(),
            request_headers: Vec::new(),
            observer: None,
            pool,
        })
    }

    /// Shares the cooldowns of this client's key pool (if it has one) with other replicas.
    pub fn share_cooldowns(&self, store: std::sync::Arc<dyn keys::SharedCooldowns>) {
        if let Some(pool) = &self.pool {
            pool.share(store);
        }
    }

    /// The same client reporting to `observer`.
    pub fn observed(self, observer: std::sync::Arc<dyn Observer>) -> Self {
        Self {
            observer: Some(observer),
            ..self
        }
    }

    /// The same client (same pool) sending the caller's own `key` as its bearer token. `None`
    /// when the key cannot be a header value.
    pub fn with_caller_key(&self, key: &ApiKey) -> Option<Self> {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose())).ok()?;
        value.set_sensitive(true);
        let mut client = self.with_header(AUTHORIZATION, value);
        client.pool = None;
        client.origin = std::sync::Arc::new(Origin {
            base_url: self.origin.base_url.clone(),
            key: KeyOwner::Caller,
        });
        Some(client)
    }

    /// The same client (same pool) adding `name: value` to its requests.
    pub fn with_header(&self, name: HeaderName, value: HeaderValue) -> Self {
        let mut client = self.clone();
        client.request_headers.retain(|(n, _)| *n != name);
        client.request_headers.push((name, value));
        client
    }

    /// The base URL (without a trailing slash) and whose key this client sends.
    pub fn origin(&self) -> &std::sync::Arc<Origin> {
        &self.origin
    }

    /// POSTs a JSON body to `path` (e.g. `/responses`) and checks the status before returning, so
    /// a failure before any output is reported as an error, never as a stream. Transient failures
    /// are retried per the [`RetryPolicy`] (nothing has reached the caller yet, so a retry cannot
    /// duplicate output), never past `caller_deadline` or the total timeout.
    pub async fn post_json(
        &self,
        path: &str,
        body: Bytes,
        accept: Accept,
        caller_deadline: Option<Instant>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let request = Request {
            method: Method::POST,
            path,
            query: &[],
            body: Some(body),
            accept,
        };
        self.send(&request, caller_deadline).await
    }

    /// POSTs a JSON body to `path` with `query` parameters, like [`Self::post_json`].
    pub async fn post_json_with_query(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: Bytes,
        caller_deadline: Option<Instant>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let request = Request {
            method: Method::POST,
            path,
            query,
            body: Some(body),
            accept: Accept::Json,
        };
        self.send(&request, caller_deadline).await
    }

    /// GETs `path` with `query` parameters (URL-encoded here; repeat a name for an array, e.g.
    /// `include[]`), like [`Self::post_json`] otherwise.
    pub async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
        accept: Accept,
        caller_deadline: Option<Instant>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let request = Request {
            method: Method::GET,
            path,
            query,
            body: None,
            accept,
        };
        self.send(&request, caller_deadline).await
    }

    /// DELETEs `path`, like [`Self::post_json`] otherwise.
    pub async fn delete(
        &self,
        path: &str,
        caller_deadline: Option<Instant>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let request = Request {
            method: Method::DELETE,
            path,
            query: &[],
            body: None,
            accept: Accept::Json,
        };
        self.send(&request, caller_deadline).await
    }

    /// POSTs to `path` without a body (e.g. `/responses/{id}/cancel`).
    pub async fn post_empty(
        &self,
        path: &str,
        caller_deadline: Option<Instant>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let request = Request {
            method: Method::POST,
            path,
            query: &[],
            body: None,
            accept: Accept::Json,
        };
        self.send(&request, caller_deadline).await
    }

    /// Sends `request`, retrying transient failures (see [`Self::post_json`]).
    async fn send(
        &self,
        request: &Request<'_>,
        caller_deadline: Option<Instant>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let budget = Budget::new(&self.timeouts, caller_deadline);
        let mut retries = 0;
        // Keys of the pool that cooled down during this call: the next healthy one is tried at
        // once, without counting as a retry.
        let mut cooled: Vec<usize> = Vec::new();
        loop {
            let key = match &self.pool {
                // Boxed: with shared cooldowns this is a Redis round trip, a large future.
                Some(pool) => Some(Box::pin(pool.pick(&cooled)).await),
                None => None,
            };
            let attempt = within(
                budget.until(budget.first_event, TimeLimit::FirstEvent),
                self.send_once(request, retries, key.as_ref().map(|(_, header)| header)),
            );
            let err = match attempt.await {
                Ok(mut response) => {
                    self.observe(Some(response.response.status().as_u16()));
                    response.budget = budget;
                    return Ok(response);
                }
                Err(e) => e,
            };
            self.observe(e_status(&err));
            if let (Some(pool), Some((index, _))) = (&self.pool, &key)
                && let Some((reason, id)) = Box::pin(pool.report(*index, &err)).await
            {
                if let Some(o) = &self.observer {
                    o.key_cooled(id, reason);
                }
                cooled.push(*index);
                if cooled.len() < pool.len() {
                    continue;
                }
            }
            let Some(delay) = retry::delay(&self.retry, retries, &err) else {
                return Err(err);
            };
            if budget
                .end
                .is_some_and(|(end, _)| Instant::now() + delay >= end)
            {
                return Err(err);
            }
            retries += 1;
            if let Some(o) = &self.observer {
                o.retry();
            }
            tracing::info!(retry = retries, delay_ms = delay.as_millis() as u64, error = %err, "retrying the upstream call");
            tokio::time::sleep(delay).await;
        }
    }

    async fn send_once(
        &self,
        request: &Request<'_>,
        retries: u32,
        key: Option<&HeaderValue>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let accept = match request.accept {
            Accept::Json => "application/json",
            Accept::EventStream => "text/event-stream",
            Accept::Any => "*/*",
        };
        let mut url = reqwest::Url::clone(&self.base);
        url.set_path(&[self.base.path().trim_end_matches('/'), request.path].concat());
        let mut builder = self.http.request(request.method.clone(), url);
        if !request.query.is_empty() {
            builder = builder.query(request.query);
        }
        if let Some(key) = key {
            builder = builder.header(AUTHORIZATION, key.clone());
        }
        for (name, value) in &self.request_headers {
            builder = builder.header(name.clone(), value.clone());
        }
        if let Some(body) = &request.body {
            builder = builder
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let response = builder
            .header(ACCEPT, accept)
            .header("x-stainless-retry-count", retries)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let meta = meta_of(response.headers());
        let status = response.status();
        if status.is_success() {
            return Ok(UpstreamResponse {
                response,
                meta,
                budget: Budget::new(&Timeouts::default(), None),
            });
        }
        // Error bodies are small JSON objects; a huge or never-ending one is cut off.
        let body = read_capped(response, 64 * 1024).await;
        Err(UpstreamError::Status {
            status: status.as_u16(),
            error: ApiError::from_body(&body).map(Box::new),
            meta,
        })
    }
}

/// One upstream request, as retried by [`OpenAiClient::send`].
struct Request<'a> {
    method: Method,
    path: &'a str,
    query: &'a [(&'a str, String)],
    body: Option<Bytes>,
    accept: Accept,
}

impl OpenAiClient {
    fn observe(&self, status: Option<u16>) {
        if let Some(o) = &self.observer {
            o.response(status);
        }
    }
}

/// The HTTP status of a failed attempt, if there was a response.
fn e_status(err: &UpstreamError) -> Option<u16> {
    match err {
        UpstreamError::Status { status, .. } => Some(*status),
        _ => None,
    }
}

/// A successful (2xx) upstream response whose body has not been read yet. Dropping it closes the
/// upstream request at once.
#[derive(Debug)]
pub struct UpstreamResponse {
    response: reqwest::Response,
    meta: UpstreamMeta,
    budget: Budget,
}

impl UpstreamResponse {
    /// The upstream request id and hints.
    pub fn meta(&self) -> &UpstreamMeta {
        &self.meta
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        self.response.headers()
    }

    /// Reads the whole body, within the call's hard end (caller deadline or total timeout).
    pub async fn body(self) -> Result<Bytes, UpstreamError> {
        let meta = self.meta;
        let read = async {
            self.response
                .bytes()
                .await
                .map_err(|e| UpstreamError::Dropped {
                    message: format!("reading the body failed: {}", describe(&e)),
                    meta: meta.clone(),
                })
        };
        within(self.budget.end, read).await
    }

    /// Decodes the body as server-sent events. Fails at once if the server did not answer with
    /// `text/event-stream` (e.g. an OpenAI-compatible server that ignored `stream: true`).
    pub fn events(self) -> Result<EventStream, UpstreamError> {
        let content_type = self
            .response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.starts_with("text/event-stream") {
            return Err(UpstreamError::Decode {
                message: format!(
                    "expected a text/event-stream body, got content-type {content_type:?}"
                ),
                meta: self.meta,
            });
        }
        Ok(EventStream::new(self.response, self.meta, self.budget))
    }

    /// The raw body, chunk by chunk as the server sends it (binary payloads such as audio),
    /// under the call's time limits.
    pub fn bytes(self) -> ByteStream {
        ByteStream::new(self.response, self.meta, self.budget)
    }
}

fn meta_of(headers: &HeaderMap) -> UpstreamMeta {
    UpstreamMeta {
        request_id: headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        retry_after: retry_after(headers),
        rate_limit_reset: error::rate_limit_reset(headers),
    }
}

async fn read_capped(mut response: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= cap {
            body.truncate(cap);
            break;
        }
    }
    body
}

/// A transport failure as an [`UpstreamError`]. Timeouts stay distinguishable (reqwest's only
/// own timeout here is the connect timeout).
fn transport_error(e: &reqwest::Error) -> UpstreamError {
    if e.is_timeout() {
        UpstreamError::Timeout {
            limit: TimeLimit::Connect,
        }
    } else {
        UpstreamError::Connect {
            message: describe(e),
        }
    }
}

/// A transport error with its chain of causes (reqwest's own Display stops at the top). It
/// names the configured base URL, never the key, which travels only in a header.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}
