//! What happened: one tracing span per RPC with its outcome, Prometheus metrics served on a
//! separate HTTP port, and W3C trace context carried from the caller to OpenAI.
//!
//! Metric names (the OpenTelemetry GenAI semantic conventions where they exist, mapped to
//! Prometheus: dots become underscores, units become suffixes):
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `gateway_rpc_requests_total` | counter | `method`, `code` |
//! | `gateway_rpc_duration_seconds` | histogram | `method`, `code` |
//! | `gateway_time_to_first_event_seconds` | histogram | `method` |
//! | `gateway_streams_in_flight` | gauge | `method` |
//! | `gateway_overhead_seconds` | histogram | `method` (duration minus time waiting on OpenAI or on the caller) |
//! | `gateway_upstream_responses_total` | counter | `profile`, `status` (HTTP status, or `error`) |
//! | `gateway_upstream_retries_total` | counter | `profile` |
//! | `gateway_stream_resumes_total` | counter | `method`, `outcome` (`resumed`, `gave_up`) |
//! | `gateway_quota_refusals_total` | counter | `subject` (`caller:NAME`, `profile:NAME`), `limit` |
//! | `gateway_quota_usage` | gauge | `subject`, `limit` (requests or tokens in use this minute, as last seen) |
//! | `gateway_quota_streams` | gauge | `subject` (streaming calls this replica holds) |
//! | `gateway_key_cooldowns_total` | counter | `key` (profile#index:hash, never the key), `reason` |
//! | `gateway_redis_errors_total` | counter | — |
//! | `gateway_redis_up` | gauge | — (0 during an outage) |
//! | `gen_ai_client_token_usage` | histogram | `gen_ai_response_model`, `gen_ai_token_type` (`input`, `output`, `cached_input`, `reasoning`) |
//!
//! Labels never carry secrets: methods, codes, model ids, profile names and statuses only.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use tonic::Code;

use crate::usage::Usage;

/// Labels of per-RPC metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    method: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    profile: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProfileLabels {
    profile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuotaLabels {
    subject: String,
    limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubjectLabels {
    subject: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    key: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResumeLabels {
    method: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    gen_ai_response_model: String,
    gen_ai_token_type: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~4.4 min, doubling: fits both gateway overhead and long streams.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0005, 2.0, 20,
    ))
}

fn token_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        1.0, 4.0, 12,
    ))
}

/// The gateway's metrics. Cheap to clone (shared registry).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: Family<RpcLabels, Counter>,
    duration: Family<RpcLabels, Histogram, fn() -> Histogram>,
    first_event: Family<MethodLabels, Histogram, fn() -> Histogram>,
    in_flight: Family<MethodLabels, Gauge>,
    overhead: Family<MethodLabels, Histogram, fn() -> Histogram>,
    upstream: Family<UpstreamLabels, Counter>,
    retries: Family<ProfileLabels, Counter>,
    resumes: Family<ResumeLabels, Counter>,
    quota_refusals: Family<QuotaLabels, Counter>,
    quota_usage: Family<QuotaLabels, Gauge>,
    quota_streams: Family<SubjectLabels, Gauge>,
    key_cooldowns: Family<KeyLabels, Counter>,
    redis_errors: Counter,
    redis_up: Gauge,
    tokens: Family<TokenLabels, Histogram, fn() -> Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RpcLabels, Counter>::default();
        let duration = Family::<RpcLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let first_event =
            Family::<MethodLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let in_flight = Family::<MethodLabels, Gauge>::default();
        let overhead = Family::<MethodLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let upstream = Family::<UpstreamLabels, Counter>::default();
        let retries = Family::<ProfileLabels, Counter>::default();
        let resumes = Family::<ResumeLabels, Counter>::default();
        let quota_refusals = Family::<QuotaLabels, Counter>::default();
        let quota_usage = Family::<QuotaLabels, Gauge>::default();
        let quota_streams = Family::<SubjectLabels, Gauge>::default();
        let key_cooldowns = Family::<KeyLabels, Counter>::default();
        let redis_errors = Counter::default();
        let redis_up = Gauge::default();
        redis_up.set(1);
        let tokens = Family::<TokenLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            token_histogram,
        );
        registry.register(
            "gateway_rpc_requests",
            "RPCs handled, by method and gRPC code",
            requests.clone(),
        );
        registry.register(
            "gateway_rpc_duration_seconds",
            "RPC duration, by method and gRPC code",
            duration.clone(),
        );
        registry.register(
            "gateway_time_to_first_event_seconds",
            "Time from the RPC's start to its first message",
            first_event.clone(),
        );
        registry.register(
            "gateway_streams_in_flight",
            "RPCs in progress",
            in_flight.clone(),
        );
        registry.register(
            "gateway_overhead_seconds",
            "RPC duration minus the time spent waiting on OpenAI or on the caller",
            overhead.clone(),
        );
        registry.register(
            "gateway_upstream_responses",
            "Upstream responses by HTTP status (error: no response)",
            upstream.clone(),
        );
        registry.register(
            "gateway_upstream_retries",
            "Upstream calls retried",
            retries.clone(),
        );
        registry.register(
            "gateway_stream_resumes",
            "Background streams the gateway re-opened after the upstream connection broke (resumed), or stopped re-opening (gave_up)",
            resumes.clone(),
        );
        registry.register(
            "gateway_quota_refusals",
            "Calls refused for a quota, by subject and limit",
            quota_refusals.clone(),
        );
        registry.register(
            "gateway_quota_usage",
            "Requests or tokens of a subject's per-minute allowance in use, as last seen",
            quota_usage.clone(),
        );
        registry.register(
            "gateway_quota_streams",
            "Streaming calls of a subject held by this replica",
            quota_streams.clone(),
        );
        registry.register(
            "gateway_key_cooldowns",
            "API keys of a pool set aside, by key id (never the key) and reason",
            key_cooldowns.clone(),
        );
        registry.register(
            "gateway_redis_errors",
            "Redis operations that failed or timed out",
            redis_errors.clone(),
        );
        registry.register(
            "gateway_redis_up",
            "1 while Redis answers (or is not used), 0 during an outage",
            redis_up.clone(),
        );
        registry.register(
            "gen_ai_client_token_usage",
            "Tokens used per response (OpenTelemetry gen_ai.client.token.usage)",
            tokens.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                requests,
                duration,
                first_event,
                in_flight,
                overhead,
                upstream,
                retries,
                resumes,
                quota_refusals,
                quota_usage,
                quota_streams,
                key_cooldowns,
                redis_errors,
                redis_up,
                tokens,
            }),
        }
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.inner.registry).expect("writing to a String cannot fail");
        out
    }

    /// Counts one upstream response (`None`: no response at all).
    pub fn upstream_response(&self, profile: &str, status: Option<u16>) {
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        self.inner
            .upstream
            .get_or_create(&UpstreamLabels {
                profile: profile.to_owned(),
                status,
            })
            .inc();
    }

    /// Counts one upstream retry.
    pub fn upstream_retry(&self, profile: &str) {
        self.inner
            .retries
            .get_or_create(&ProfileLabels {
                profile: profile.to_owned(),
            })
            .inc();
    }

    /// Counts a call refused for `limit` of `subject`.
    pub fn quota_refused(&self, subject: &str, limit: &str) {
        self.inner
            .quota_refusals
            .get_or_create(&QuotaLabels {
                subject: subject.to_owned(),
                limit: limit.to_owned(),
            })
            .inc();
    }

    /// Sets how much of `subject`'s per-minute `limit` is in use.
    pub fn quota_usage(&self, subject: &str, limit: &str, in_use: u64) {
        self.inner
            .quota_usage
            .get_or_create(&QuotaLabels {
                subject: subject.to_owned(),
                limit: limit.to_owned(),
            })
            .set(i64::try_from(in_use).unwrap_or(i64::MAX));
    }

    /// Adds `delta` to the streaming calls of `subject` this replica holds.
    pub fn quota_streams(&self, subject: &str, delta: i64) {
        self.inner
            .quota_streams
            .get_or_create(&SubjectLabels {
                subject: subject.to_owned(),
            })
            .inc_by(delta);
    }

    /// Counts a pooled key set aside.
    pub fn key_cooled(&self, key: &str, reason: &str) {
        self.inner
            .key_cooldowns
            .get_or_create(&KeyLabels {
                key: key.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a failed Redis operation.
    pub fn redis_error(&self) {
        self.inner.redis_errors.inc();
    }

    /// Redis answers again (`true`) or not (`false`).
    pub fn redis_up(&self, up: bool) {
        self.inner.redis_up.set(i64::from(up));
    }

    /// Counts one resume of a broken background stream (`resumed`) or the end of the attempts
    /// (`gave_up`).
    pub fn stream_resume(&self, method: &str, resumed: bool) {
        self.inner
            .resumes
            .get_or_create(&ResumeLabels {
                method: method.to_owned(),
                outcome: if resumed { "resumed" } else { "gave_up" }.to_owned(),
            })
            .inc();
    }

    /// Starts observing one RPC, whose fields are recorded in `span`; finish it with
    /// [`Call::finish`].
    pub fn start(&self, method: &'static str, span: tracing::Span) -> Call {
        self.inner
            .in_flight
            .get_or_create(&MethodLabels {
                method: method.to_owned(),
            })
            .inc();
        Call {
            metrics: self.clone(),
            span,
            method,
            started: Instant::now(),
            first_event: None,
            waiting: Duration::ZERO,
            finished: false,
        }
    }
}

/// One RPC being observed. Dropping it unfinished records it as CANCELLED.
#[derive(Debug)]
pub struct Call {
    metrics: Metrics,
    span: tracing::Span,
    method: &'static str,
    started: Instant,
    first_event: Option<Duration>,
    /// Time spent waiting on OpenAI or on the caller (not the gateway's own work).
    waiting: Duration,
    finished: bool,
}

impl Call {
    /// The RPC's span.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Adds time spent waiting on something outside the gateway.
    pub fn waited(&mut self, d: Duration) {
        self.waiting += d;
    }

    /// Marks the first message sent to the caller (once).
    pub fn first_event(&mut self) {
        if self.first_event.is_none() {
            let at = self.started.elapsed();
            self.first_event = Some(at);
            self.metrics
                .inner
                .first_event
                .get_or_create(&MethodLabels {
                    method: self.method.to_owned(),
                })
                .observe(at.as_secs_f64());
            self.span.record("ttfe_ms", at.as_secs_f64() * 1000.0);
        }
    }

    /// Records a response's token usage under its model.
    pub fn usage(&self, usage: &Usage) {
        let span = &self.span;
        span.record("response_model", usage.model.as_str());
        span.record("input_tokens", usage.input_tokens);
        span.record("output_tokens", usage.output_tokens);
        for (kind, n) in usage.counts() {
            self.metrics
                .inner
                .tokens
                .get_or_create(&TokenLabels {
                    gen_ai_response_model: usage.model.clone(),
                    gen_ai_token_type: kind.to_owned(),
                })
                .observe(n as f64);
        }
    }

    /// Ends a call that sends `status` instead of any message (recorded), and returns it.
    pub fn refuse(self, status: tonic::Status) -> tonic::Status {
        self.finish(status.code());
        status
    }

    /// Records the outcome: the RPC's code, duration and overhead.
    pub fn finish(mut self, code: Code) {
        self.record(code);
    }

    fn record(&mut self, code: Code) {
        if self.finished {
            return;
        }
        self.finished = true;
        let elapsed = self.started.elapsed();
        let labels = RpcLabels {
            method: self.method.to_owned(),
            code: format!("{code:?}"),
        };
        let inner = &self.metrics.inner;
        inner.requests.get_or_create(&labels).inc();
        inner
            .duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        let method = MethodLabels {
            method: self.method.to_owned(),
        };
        inner.in_flight.get_or_create(&method).dec();
        inner
            .overhead
            .get_or_create(&method)
            .observe(elapsed.saturating_sub(self.waiting).as_secs_f64());
        self.span.record("code", format!("{code:?}"));
        self.span
            .record("duration_ms", elapsed.as_secs_f64() * 1000.0);
        self.span.in_scope(|| tracing::info!("rpc finished"));
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.record(Code::Cancelled);
    }
}

/// The span of one RPC. Its fields are filled as the call goes on.
#[macro_export]
macro_rules! rpc_span {
    ($method:expr, $model:expr, $profile:expr) => {
        tracing::info_span!(
            "rpc",
            method = $method,
            model = %$model,
            profile = %$profile,
            caller = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            upstream_request_id = tracing::field::Empty,
            code = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
            ttfe_ms = tracing::field::Empty,
            response_model = tracing::field::Empty,
            input_tokens = tracing::field::Empty,
            output_tokens = tracing::field::Empty,
        )
    };
}

/// W3C trace context: continues the caller's trace into the upstream request. Returns the
/// `traceparent` to send upstream (same trace, a new span id for the gateway's hop) and the
/// trace id, or `None` when the caller sent none or an invalid one.
pub fn child_traceparent(incoming: Option<&str>) -> Option<(String, String)> {
    let parts: Vec<&str> = incoming?.trim().split('-').collect();
    let [version, trace_id, parent_id, flags] = parts[..] else {
        return None;
    };
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex(version, 2)
        || version == "ff"
        || !hex(trace_id, 32)
        || !hex(parent_id, 16)
        || !hex(flags, 2)
    {
        return None;
    }
    if trace_id.bytes().all(|b| b == b'0') || parent_id.bytes().all(|b| b == b'0') {
        return None;
    }
    let span_id: u64 = rand::random::<u64>() | 1;
    Some((
        format!(
            "00-{}-{span_id:016x}-{}",
            trace_id.to_ascii_lowercase(),
            flags
        ),
        trace_id.to_ascii_lowercase(),
    ))
}

/// Serves `GET /metrics` on `listener` until the process ends.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
) -> std::io::Result<()> {
    use axum::{Router, http::header, routing::get};
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }
        }),
    );
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_continued_with_a_new_span() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (out, trace) = child_traceparent(Some(incoming)).unwrap();
        assert_eq!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(out.ends_with("-01"));
        assert_ne!(&out[36..52], "00f067aa0ba902b7");
        for bad in [
            "",
            "junk",
            "00-000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(child_traceparent(Some(bad)).is_none(), "{bad}");
        }
    }

    #[test]
    fn calls_are_counted_with_their_code() {
        let m = Metrics::new();
        let c = m.start("CreateResponse", tracing::Span::none());
        c.usage(&Usage {
            model: "gpt-4.1".into(),
            input_tokens: 9,
            output_tokens: 4,
            ..Usage::default()
        });
        c.finish(Code::Ok);
        drop(m.start("CreateResponse", tracing::Span::none())); // dropped unfinished: cancelled
        m.upstream_response("default", Some(429));
        m.upstream_retry("default");
        let text = m.render();
        assert!(
            text.contains(r#"gateway_rpc_requests_total{method="CreateResponse",code="Ok"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"gateway_rpc_requests_total{method="CreateResponse",code="Cancelled"} 1"#
            )
        );
        assert!(text.contains(r#"gen_ai_client_token_usage_sum{gen_ai_response_model="gpt-4.1",gen_ai_token_type="input"} 9.0"#), "{text}");
        assert!(
            text.contains(r#"gateway_upstream_responses_total{profile="default",status="429"} 1"#)
        );
        assert!(text.contains(r#"gateway_upstream_retries_total{profile="default"} 1"#));
        assert!(text.contains(r#"gateway_streams_in_flight{method="CreateResponse"} 0"#));
    }
}

/// Keeps trace export running; dropping it flushes the spans still queued.
#[derive(Debug, Default)]
pub struct TracingGuard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TracingGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("openai-grpc-gateway: flushing traces failed: {e}");
        }
    }
}

/// Installs the process-wide subscriber: logs in `format` filtered by `filter`, plus OTLP/HTTP
/// trace export to `otlp` (a collector base URL; spans go to `/v1/traces`) when given. Call
/// once, from `main`, inside the tokio runtime.
pub fn init_tracing(
    format: crate::config::LogFormat,
    filter: tracing_subscriber::EnvFilter,
    otlp: Option<&reqwest::Url>,
    service_name: &str,
) -> Result<TracingGuard, String> {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;
    use tracing_subscriber::{Layer as _, layer::SubscriberExt as _, util::SubscriberInitExt as _};

    let fmt = match format {
        crate::config::LogFormat::Text => tracing_subscriber::fmt::layer().boxed(),
        crate::config::LogFormat::Json => tracing_subscriber::fmt::layer().json().boxed(),
    };
    let mut guard = TracingGuard::default();
    let otel = match otlp {
        None => None,
        Some(base) => {
            let endpoint = format!("{}/v1/traces", base.as_str().trim_end_matches('/'));
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(endpoint)
                .build()
                .map_err(|e| format!("cannot set up OTLP export: {e}"))?;
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name(service_name.to_owned())
                .build();
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource)
                .build();
            let tracer = provider.tracer("openai-grpc-gateway");
            guard.provider = Some(provider);
            // Only the per-RPC spans are exported, not every library's internals.
            let only_rpc = tracing_subscriber::filter::filter_fn(|m| m.name() == "rpc");
            Some(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(only_rpc),
            )
        }
    };
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init()
        .map_err(|e| format!("cannot install the log subscriber: {e}"))?;
    Ok(guard)
}

/// Makes `span` a child of the caller's W3C trace context (when trace export is on), and returns
/// the `traceparent` / `tracestate` to send upstream plus the trace id: the exported span's own
/// context when export is on, else the caller's trace with a fresh span id for the gateway's hop.
pub fn continue_trace(
    span: &tracing::Span,
    metadata: &tonic::metadata::MetadataMap,
) -> Option<(String, Option<String>, String)> {
    use opentelemetry::propagation::TextMapPropagator as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    let get = |name: &str| metadata.get(name).and_then(|v| v.to_str().ok());
    let propagator = opentelemetry_sdk::propagation::TraceContextPropagator::new();
    let carrier: std::collections::HashMap<String, String> = ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|k| get(k).map(|v| (k.to_owned(), v.to_owned())))
        .collect();
    let _ = span.set_parent(propagator.extract(&carrier));
    let mut injected = std::collections::HashMap::new();
    propagator.inject_context(&span.context(), &mut injected);
    if let Some(traceparent) = injected.remove("traceparent") {
        let trace_id = traceparent.split('-').nth(1).unwrap_or_default().to_owned();
        return Some((traceparent, injected.remove("tracestate"), trace_id));
    }
    let (traceparent, trace_id) = child_traceparent(get("traceparent"))?;
    Some((traceparent, get("tracestate").map(str::to_owned), trace_id))
}
