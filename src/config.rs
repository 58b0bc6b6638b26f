//! Every setting of the gateway, documented once.
//!
//! Each setting is a command-line flag with an environment-variable fallback (the OpenAI SDKs'
//! names where one exists, `GATEWAY_*` otherwise). `--help` prints this documentation. Secrets are
//! never printed: [`ApiKey`] redacts itself in `Debug`, and clap is told to hide env values.
//!
//! Tests never parse the process environment: they build a [`Config`] in code with
//! [`Config::new`].

use std::{fmt, net::SocketAddr, str::FromStr, time::Duration};

use clap::Parser;
use reqwest::Url;

/// The default OpenAI API base URL (the SDKs' default).
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Exit code for bad configuration (`EX_USAGE` from sysexits.h).
pub const EXIT_CONFIG: i32 = 64;

/// An OpenAI API key. Its `Debug` and `Display` never show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key, rejecting values that cannot travel in an HTTP header.
    pub fn new(key: impl Into<String>) -> Result<Self, ConfigError> {
        let key = key.into();
        let trimmed = key.trim();
        if trimmed.is_empty() {
            return Err(ConfigError("the OpenAI API key is empty".into()));
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ConfigError(
                "the OpenAI API key contains whitespace or control characters; check for a stray quote or newline".into(),
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The secret itself. Only the HTTP client calls this, to build the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A configuration problem, reported before anything binds; the process exits with [`EXIT_CONFIG`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// How to reach OpenAI (or an OpenAI-compatible server).
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Base URL; request paths such as `/responses` are appended to it.
    pub base_url: Url,
    /// The key sent as `Authorization: Bearer <key>`; `None` sends no `Authorization` header.
    pub api_key: Option<ApiKey>,
    /// Sent as `OpenAI-Organization` when set (the seed's "Organization ID").
    pub organization: Option<String>,
    /// Sent as `OpenAI-Project` when set.
    pub project: Option<String>,
}

impl UpstreamConfig {
    /// An upstream at `base_url` with no credentials or scoping headers.
    pub fn new(base_url: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            base_url: parse_base_url(base_url)?,
            api_key: None,
            organization: None,
            project: None,
        })
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The whole configuration of one gateway process.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the gRPC server listens on.
    pub listen: SocketAddr,
    /// The upstream OpenAI endpoint and credentials.
    pub upstream: UpstreamConfig,
    /// Capacity, in messages, of the bounded channel between the upstream reader and one gRPC
    /// stream. A slow caller fills it and then the upstream read pauses (backpressure).
    pub stream_buffer: usize,
    /// When and how upstream calls are retried.
    pub retry: RetryPolicy,
    /// Upstream time limits.
    pub timeouts: Timeouts,
    /// Interval of gateway keepalive messages on a silent stream; `None` disables them.
    pub heartbeat: Option<Duration>,
    /// Load-shedding limits.
    pub limits: Limits,
    /// Graceful shutdown.
    pub drain: Drain,
    /// HTTP/2 and message-size settings of the gRPC server.
    pub http2: Http2,
    /// Caller authentication.
    pub auth: Auth,
    /// In-process TLS (for deployments without a mesh); `None` serves plaintext h2c.
    pub tls: Option<Tls>,
    /// Named credential profiles; empty means one profile, `default`, made of `upstream`.
    pub profiles: Profiles,
    /// Where to serve Prometheus metrics (`GET /metrics`); `None` serves none.
    pub metrics_listen: Option<SocketAddr>,
}

/// Named credential profiles (the seed's per-environment credentials: Editor, Staging,
/// Production). A caller picks one with the `x-openai-profile` metadata key.
#[derive(Debug, Clone, Default)]
pub struct Profiles {
    /// The profile used when a call names none.
    pub default: String,
    /// The profiles by name. Empty: the single profile `default` is [`Config::upstream`].
    pub named: std::collections::BTreeMap<String, Profile>,
    /// Whether callers may bring their own OpenAI key in `x-openai-api-key` metadata.
    pub allow_caller_keys: bool,
}

/// One credential profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Where and as whom to call OpenAI.
    pub upstream: UpstreamConfig,
    /// When set, only callers whose token has one of these names may use the profile.
    pub callers: Option<Vec<String>>,
}

/// The profiles file (`--profiles-file`), JSON:
/// `{"default": "production", "profiles": {"production": {"api_key_file": "...",
/// "organization": "org-...", "project": "proj_...", "base_url": "...", "callers": ["billing"]}}}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfilesFile {
    default: String,
    profiles: std::collections::BTreeMap<String, ProfileEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileEntry {
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    api_key_file: Option<std::path::PathBuf>,
    #[serde(default)]
    organization: Option<String>,
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    callers: Option<Vec<String>>,
}

impl fmt::Debug for ProfileEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProfileEntry")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("api_key_file", &self.api_key_file)
            .finish_non_exhaustive()
    }
}

impl Profiles {
    /// Parses a profiles file. Keys come from `api_key` or, better, `api_key_file` (a mounted
    /// Kubernetes secret); every profile needs one unless `demo` is set.
    pub fn from_json(text: &str, demo: bool) -> Result<Self, ConfigError> {
        let file: ProfilesFile =
            serde_json::from_str(text).map_err(|e| ConfigError(format!("--profiles-file: {e}")))?;
        if !file.profiles.contains_key(&file.default) {
            return Err(ConfigError(format!(
                "--profiles-file: the default profile {:?} is not defined",
                file.default
            )));
        }
        let mut named = std::collections::BTreeMap::new();
        for (name, entry) in file.profiles {
            let at = |what: &str| format!("--profiles-file: profile {name:?}: {what}");
            let mut upstream =
                UpstreamConfig::new(entry.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL))
                    .map_err(|e| ConfigError(at(&e.0)))?;
            let key = match (entry.api_key, entry.api_key_file) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError(at("give api_key or api_key_file, not both")));
                }
                (Some(k), None) => Some(k),
                (None, Some(path)) => Some(
                    String::from_utf8(read_file(&path, &at("api_key_file"))?)
                        .map_err(|_| ConfigError(at("api_key_file is not UTF-8")))?,
                ),
                (None, None) if demo => None,
                (None, None) => return Err(ConfigError(at("needs api_key or api_key_file"))),
            };
            upstream.api_key = key
                .map(ApiKey::new)
                .transpose()
                .map_err(|e| ConfigError(at(&e.0)))?;
            upstream.organization = non_empty(entry.organization);
            upstream.project = non_empty(entry.project);
            named.insert(
                name,
                Profile {
                    upstream,
                    callers: entry.callers,
                },
            );
        }
        Ok(Self {
            default: file.default,
            named,
            allow_caller_keys: false,
        })
    }
}

/// Caller authentication. With no tokens, every caller is let in (run behind a mesh that
/// authenticates, or on loopback).
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// Accepted bearer tokens (as digests, with names).
    pub tokens: Vec<crate::auth::CallerToken>,
    /// Whether reflection also requires a token (health never does).
    pub protect_reflection: bool,
}

/// TLS material, read from files at start-up. `Debug` never shows the private key.
#[derive(Clone)]
pub struct Tls {
    /// The server certificate chain (PEM).
    pub cert_pem: Vec<u8>,
    /// The server private key (PEM).
    pub key_pem: Vec<u8>,
    /// When set, clients must present a certificate signed by this CA (mTLS).
    pub client_ca_pem: Option<Vec<u8>>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &format_args!("<redacted>"))
            .field("mtls", &self.client_ca_pem.is_some())
            .finish()
    }
}

impl Config {
    /// A configuration for `upstream` with every other setting at its default.
    pub fn new(upstream: UpstreamConfig) -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("valid default"),
            upstream,
            stream_buffer: 16,
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
            heartbeat: Some(Duration::from_secs(15)),
            limits: Limits::default(),
            drain: Drain::default(),
            http2: Http2::default(),
            auth: Auth::default(),
            tls: None,
            profiles: Profiles::default(),
            metrics_listen: None,
        }
    }
}

/// Retries of upstream calls. Only calls that have not sent anything to the caller yet are
/// retried, so a retried stream can never duplicate or reorder events; never past the caller's
/// deadline. Retried: connection failures, HTTP 408, 429 rate limits (never `insufficient_quota`),
/// 500, 502, 503 and 504.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: u32,
    /// First backoff; doubled per retry, with 0-25 % jitter taken off (as the OpenAI SDKs do).
    pub initial_backoff: Duration,
    /// Upper bound of the exponential backoff.
    pub max_backoff: Duration,
    /// The longest server-requested wait (`retry-after-ms` / `Retry-After`) the gateway honours;
    /// a longer one is not waited for: the caller gets the error with its RetryInfo at once.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// Upstream time limits; `None` means no limit. Each ends the call with DEADLINE_EXCEEDED and
/// closes the upstream request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the TCP (and TLS) connection.
    pub connect: Option<Duration>,
    /// From sending the request to the response headers and, for streams, the first event.
    pub first_event: Option<Duration>,
    /// The longest silence between two upstream events of a stream.
    pub idle: Option<Duration>,
    /// The whole upstream call, stream included.
    pub total: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Some(Duration::from_secs(10)),
            first_event: Some(Duration::from_secs(120)),
            idle: Some(Duration::from_secs(300)),
            total: Some(Duration::from_secs(1800)),
        }
    }
}

/// Load shedding: beyond these, a call fails at once with RESOURCE_EXHAUSTED and RetryInfo;
/// nothing waits in an unbounded queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Upstream calls in flight across the whole gateway.
    pub max_in_flight: usize,
    /// Calls in flight on one client connection (HTTP/2 connection).
    pub max_streams_per_connection: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_in_flight: 1024,
            max_streams_per_connection: 256,
        }
    }
}

/// Graceful shutdown on SIGTERM / SIGINT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drain {
    /// After health turns NOT_SERVING, keep serving this long so load balancers and the mesh
    /// stop sending new calls.
    pub delay: Duration,
    /// Then stop accepting connections and give in-flight calls this long to finish; what is
    /// left ends with UNAVAILABLE "server shutting down".
    pub timeout: Duration,
}

impl Default for Drain {
    fn default() -> Self {
        Self {
            delay: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
        }
    }
}

/// HTTP/2 and message-size settings of the gRPC server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http2 {
    /// Interval of HTTP/2 PING keepalives to clients; `None` disables them.
    pub keepalive_interval: Option<Duration>,
    /// How long to wait for a PING acknowledgement before closing the connection.
    pub keepalive_timeout: Duration,
    /// Close connections older than this (with GOAWAY), so clients rebalance; `None` disables.
    pub max_connection_age: Option<Duration>,
    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection.
    pub max_concurrent_streams: u32,
    /// Largest request message accepted, in bytes.
    pub max_request_bytes: usize,
    /// Largest response message sent, in bytes (image and audio messages stay under 1 MiB; a
    /// `completed` event repeats the whole output).
    pub max_response_bytes: usize,
}

impl Default for Http2 {
    fn default() -> Self {
        Self {
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_timeout: Duration::from_secs(20),
            max_connection_age: None,
            max_concurrent_streams: 1024,
            max_request_bytes: 16 * 1024 * 1024,
            max_response_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Parses durations such as `500ms`, `15s`, `2m`, `1h` or a bare number of seconds; `0` means
/// "off" where a setting allows it.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration like 500ms, 15s, 2m or 1h"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "{raw:?}: unknown unit {other:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{raw:?} is out of range"))
}

fn off_if_zero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// Command-line flags. Every flag has an environment fallback; flags win.
#[derive(Debug, Parser)]
#[command(
    name = "openai-grpc-gateway",
    version,
    about = "OpenAI's Responses, Images and Speech APIs behind typed, streaming gRPC.",
    after_help = "Run without an OpenAI key: openai-grpc-gateway --demo (an in-process fake OpenAI on loopback).\nExit codes: 0 clean shutdown, 64 bad configuration, 1 runtime failure."
)]
pub struct Cli {
    /// Address to serve gRPC on.
    #[arg(long, env = "GATEWAY_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: String,

    /// OpenAI API key. Prefer the environment variable: a flag is visible in the process list.
    #[arg(long = "api-key", env = "OPENAI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// OpenAI API base URL (any OpenAI-compatible server works).
    #[arg(long = "base-url", env = "OPENAI_BASE_URL", default_value = DEFAULT_BASE_URL)]
    pub base_url: String,

    /// OpenAI organization id, sent as the `OpenAI-Organization` header.
    #[arg(long = "org-id", env = "OPENAI_ORG_ID")]
    pub org_id: Option<String>,

    /// OpenAI project id, sent as the `OpenAI-Project` header.
    #[arg(long = "project-id", env = "OPENAI_PROJECT_ID")]
    pub project_id: Option<String>,

    /// Serve against a built-in fake OpenAI on loopback: no key and no network needed.
    /// Ignores the base URL and key.
    #[arg(long, env = "GATEWAY_DEMO")]
    pub demo: bool,

    /// Messages buffered per stream between the upstream reader and the caller (1-1024).
    #[arg(
        long = "stream-buffer",
        env = "GATEWAY_STREAM_BUFFER",
        default_value_t = 16
    )]
    pub stream_buffer: usize,

    /// Upstream retries after the first attempt (connect errors, 408, 429 rate limits, 5xx; only
    /// before anything was sent to the caller). 0 disables.
    #[arg(long = "max-retries", env = "GATEWAY_MAX_RETRIES", default_value_t = 2)]
    pub max_retries: u32,

    /// Longest upstream Retry-After the gateway waits for before retrying; longer ones are
    /// returned to the caller at once.
    #[arg(long = "max-retry-after", env = "GATEWAY_MAX_RETRY_AFTER", default_value = "60s", value_parser = parse_duration)]
    pub max_retry_after: Duration,

    /// Upstream connect timeout (0 = none).
    #[arg(long = "connect-timeout", env = "GATEWAY_CONNECT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Upstream time to response headers and first stream event (0 = none).
    #[arg(long = "first-event-timeout", env = "GATEWAY_FIRST_EVENT_TIMEOUT", default_value = "120s", value_parser = parse_duration)]
    pub first_event_timeout: Duration,

    /// Longest upstream silence between two stream events (0 = none).
    #[arg(long = "idle-timeout", env = "GATEWAY_IDLE_TIMEOUT", default_value = "300s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Upstream total time per call, stream included (0 = none).
    #[arg(long = "total-timeout", env = "GATEWAY_TOTAL_TIMEOUT", default_value = "30m", value_parser = parse_duration)]
    pub total_timeout: Duration,

    /// Send a keepalive message on a stream silent this long, so mesh idle timeouts do not cut
    /// it (0 = off).
    #[arg(long = "heartbeat", env = "GATEWAY_HEARTBEAT", default_value = "15s", value_parser = parse_duration)]
    pub heartbeat: Duration,

    /// Upstream calls in flight across the gateway; beyond it, RESOURCE_EXHAUSTED at once.
    #[arg(
        long = "max-in-flight",
        env = "GATEWAY_MAX_IN_FLIGHT",
        default_value_t = 1024
    )]
    pub max_in_flight: usize,

    /// Calls in flight per client connection; beyond it, RESOURCE_EXHAUSTED at once.
    #[arg(
        long = "max-streams-per-connection",
        env = "GATEWAY_MAX_STREAMS_PER_CONNECTION",
        default_value_t = 256
    )]
    pub max_streams_per_connection: usize,

    /// On SIGTERM: keep serving this long after health turns NOT_SERVING.
    #[arg(long = "drain-delay", env = "GATEWAY_DRAIN_DELAY", default_value = "5s", value_parser = parse_duration)]
    pub drain_delay: Duration,

    /// On SIGTERM: then give in-flight calls this long before ending them with UNAVAILABLE.
    #[arg(long = "drain-timeout", env = "GATEWAY_DRAIN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// HTTP/2 PING interval to clients (0 = off).
    #[arg(long = "http2-keepalive-interval", env = "GATEWAY_HTTP2_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub http2_keepalive_interval: Duration,

    /// HTTP/2 PING acknowledgement timeout.
    #[arg(long = "http2-keepalive-timeout", env = "GATEWAY_HTTP2_KEEPALIVE_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub http2_keepalive_timeout: Duration,

    /// Close client connections older than this with GOAWAY (0 = never).
    #[arg(long = "max-connection-age", env = "GATEWAY_MAX_CONNECTION_AGE", default_value = "0", value_parser = parse_duration)]
    pub max_connection_age: Duration,

    /// HTTP/2 max concurrent streams per client connection.
    #[arg(
        long = "max-concurrent-streams",
        env = "GATEWAY_MAX_CONCURRENT_STREAMS",
        default_value_t = 1024
    )]
    pub max_concurrent_streams: u32,

    /// Largest request message accepted, in bytes.
    #[arg(long = "max-request-bytes", env = "GATEWAY_MAX_REQUEST_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_request_bytes: usize,

    /// Largest response message sent, in bytes.
    #[arg(long = "max-response-bytes", env = "GATEWAY_MAX_RESPONSE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_response_bytes: usize,

    /// Credential profiles (JSON file: default profile name, and per profile api_key_file,
    /// organization, project, base_url, callers). Replaces the single key/org/project/base-URL
    /// flags.
    #[arg(long = "profiles-file", env = "GATEWAY_PROFILES_FILE")]
    pub profiles_file: Option<std::path::PathBuf>,

    /// Let callers send their own OpenAI key in `x-openai-api-key` metadata (off by default).
    #[arg(long = "allow-caller-keys", env = "GATEWAY_ALLOW_CALLER_KEYS")]
    pub allow_caller_keys: bool,

    /// Caller tokens required in `authorization: Bearer <token>` (comma-separated `name=token`
    /// or `token`, each at least 16 characters). Unset: no caller authentication.
    #[arg(
        long = "auth-tokens",
        env = "GATEWAY_AUTH_TOKENS",
        hide_env_values = true
    )]
    pub auth_tokens: Option<String>,

    /// File with caller tokens, one `name=token` per line (e.g. a mounted Kubernetes secret).
    #[arg(long = "auth-tokens-file", env = "GATEWAY_AUTH_TOKENS_FILE")]
    pub auth_tokens_file: Option<std::path::PathBuf>,

    /// Require a caller token for reflection too (health never requires one).
    #[arg(long = "auth-reflection", env = "GATEWAY_AUTH_REFLECTION")]
    pub auth_reflection: bool,

    /// Serve TLS with this certificate chain (PEM file); needs --tls-key.
    #[arg(long = "tls-cert", env = "GATEWAY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The TLS private key (PEM file).
    #[arg(long = "tls-key", env = "GATEWAY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Require client certificates signed by this CA (PEM file): mutual TLS.
    #[arg(
        long = "tls-client-ca",
        env = "GATEWAY_TLS_CLIENT_CA",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<std::path::PathBuf>,

    /// Serve Prometheus metrics at http://ADDRESS/metrics (e.g. 0.0.0.0:9464). Unset: no metrics
    /// endpoint.
    #[arg(long = "metrics-listen", env = "GATEWAY_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,

    /// Export traces over OTLP/HTTP (protobuf) to this collector, e.g. http://otel-collector:4318
    /// (spans go to /v1/traces). Unset: no export.
    #[arg(long = "otlp-endpoint", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// The service name reported in exported traces.
    #[arg(
        long = "otel-service-name",
        env = "OTEL_SERVICE_NAME",
        default_value = "openai-grpc-gateway"
    )]
    pub otel_service_name: String,

    /// Log format.
    #[arg(long = "log-format", env = "GATEWAY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter (tracing-subscriber EnvFilter syntax), e.g. `info` or `openai_grpc_gateway=debug`.
    #[arg(long = "log", env = "GATEWAY_LOG", default_value = "info")]
    pub log: String,
}

/// What `main` should do once the flags are read.
#[derive(Debug)]
pub struct Settings {
    /// The validated configuration. In demo mode its upstream is replaced at start-up.
    pub config: Config,
    /// Whether to start the built-in fake upstream.
    pub demo: bool,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log: String,
    /// OTLP/HTTP collector base URL for trace export, if any.
    pub otlp_endpoint: Option<Url>,
    /// Service name for exported traces.
    pub otel_service_name: String,
}

impl Cli {
    /// Validates the flags into [`Settings`]; every problem is a [`ConfigError`] naming the flag.
    pub fn into_settings(self) -> Result<Settings, ConfigError> {
        let listen = SocketAddr::from_str(self.listen.trim()).map_err(|e| {
            ConfigError(format!(
                "--listen / GATEWAY_LISTEN: {:?} is not a socket address like 127.0.0.1:50051 ({e})",
                self.listen
            ))
        })?;
        if !(1..=1024).contains(&self.stream_buffer) {
            return Err(ConfigError(format!(
                "--stream-buffer / GATEWAY_STREAM_BUFFER: {} is outside 1-1024",
                self.stream_buffer
            )));
        }
        let mut upstream = UpstreamConfig::new(&self.base_url)?;
        upstream.organization = non_empty(self.org_id);
        upstream.project = non_empty(self.project_id);
        upstream.api_key = match non_empty(self.api_key) {
            Some(key) => Some(ApiKey::new(key)?),
            None if self.demo || self.profiles_file.is_some() => None,
            None => {
                return Err(ConfigError(
                    "no OpenAI API key: set OPENAI_API_KEY (or --api-key), or start with --demo to use the built-in fake upstream".into(),
                ));
            }
        };
        for (flag, value) in [
            ("--max-in-flight", self.max_in_flight),
            (
                "--max-streams-per-connection",
                self.max_streams_per_connection,
            ),
            (
                "--max-concurrent-streams",
                self.max_concurrent_streams as usize,
            ),
            ("--max-request-bytes", self.max_request_bytes),
            ("--max-response-bytes", self.max_response_bytes),
        ] {
            if value == 0 {
                return Err(ConfigError(format!("{flag}: must be at least 1")));
            }
        }
        if self.http2_keepalive_timeout.is_zero() {
            return Err(ConfigError(
                "--http2-keepalive-timeout: must be more than 0".into(),
            ));
        }
        let mut tokens = match &self.auth_tokens {
            Some(text) => crate::auth::parse_tokens(text, "--auth-tokens / GATEWAY_AUTH_TOKENS")?,
            None => Vec::new(),
        };
        if let Some(path) = &self.auth_tokens_file {
            let text = read_file(path, "--auth-tokens-file / GATEWAY_AUTH_TOKENS_FILE")?;
            tokens.extend(crate::auth::parse_tokens(
                &String::from_utf8_lossy(&text),
                "--auth-tokens-file",
            )?);
        }
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(Tls {
                cert_pem: read_file(cert, "--tls-cert / GATEWAY_TLS_CERT")?,
                key_pem: read_file(key, "--tls-key / GATEWAY_TLS_KEY")?,
                client_ca_pem: self
                    .tls_client_ca
                    .as_ref()
                    .map(|ca| read_file(ca, "--tls-client-ca / GATEWAY_TLS_CLIENT_CA"))
                    .transpose()?,
            }),
            _ => None,
        };
        let mut profiles = match &self.profiles_file {
            Some(path) => Profiles::from_json(
                &String::from_utf8_lossy(&read_file(
                    path,
                    "--profiles-file / GATEWAY_PROFILES_FILE",
                )?),
                self.demo,
            )?,
            None => Profiles::default(),
        };
        profiles.allow_caller_keys = self.allow_caller_keys;
        let metrics_listen = self
            .metrics_listen
            .as_deref()
            .map(|a| {
                SocketAddr::from_str(a.trim()).map_err(|e| {
                    ConfigError(format!(
                        "--metrics-listen / GATEWAY_METRICS_LISTEN: {a:?} is not a socket address ({e})"
                    ))
                })
            })
            .transpose()?;
        let mut config = Config::new(upstream);
        config.metrics_listen = metrics_listen;
        config.profiles = profiles;
        config.listen = listen;
        config.auth = Auth {
            tokens,
            protect_reflection: self.auth_reflection,
        };
        config.tls = tls;
        config.stream_buffer = self.stream_buffer;
        config.retry.max_retries = self.max_retries;
        config.retry.max_retry_after = self.max_retry_after;
        config.timeouts = Timeouts {
            connect: off_if_zero(self.connect_timeout),
            first_event: off_if_zero(self.first_event_timeout),
            idle: off_if_zero(self.idle_timeout),
            total: off_if_zero(self.total_timeout),
        };
        config.heartbeat = off_if_zero(self.heartbeat);
        config.limits = Limits {
            max_in_flight: self.max_in_flight,
            max_streams_per_connection: self.max_streams_per_connection,
        };
        config.drain = Drain {
            delay: self.drain_delay,
            timeout: self.drain_timeout,
        };
        config.http2 = Http2 {
            keepalive_interval: off_if_zero(self.http2_keepalive_interval),
            keepalive_timeout: self.http2_keepalive_timeout,
            max_connection_age: off_if_zero(self.max_connection_age),
            max_concurrent_streams: self.max_concurrent_streams,
            max_request_bytes: self.max_request_bytes,
            max_response_bytes: self.max_response_bytes,
        };
        let otlp_endpoint = non_empty(self.otlp_endpoint)
            .map(|raw| {
                Url::parse(&raw)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| {
                        ConfigError(format!(
                            "--otlp-endpoint / OTEL_EXPORTER_OTLP_ENDPOINT: {raw:?} is not an http(s) URL"
                        ))
                    })
            })
            .transpose()?;
        Ok(Settings {
            config,
            demo: self.demo,
            log_format: self.log_format,
            log: self.log,
            otlp_endpoint,
            otel_service_name: self.otel_service_name,
        })
    }
}

fn read_file(path: &std::path::Path, flag: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path)
        .map_err(|e| ConfigError(format!("{flag}: cannot read {}: {e}", path.display())))
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn parse_base_url(raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw.trim()).map_err(|e| {
        ConfigError(format!(
            "--base-url / OPENAI_BASE_URL: {raw:?} is not a URL ({e})"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError(format!(
            "--base-url / OPENAI_BASE_URL: {raw:?} must start with http:// or https://"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError(format!(
            "--base-url / OPENAI_BASE_URL: {raw:?} must not have a query or fragment"
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Result<Settings, ConfigError> {
        // `try_parse_from` still reads env fallbacks; tests only use names the test runner never
        // sets, and each assertion below passes explicit flags for what it checks.
        let mut argv = vec!["openai-grpc-gateway"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
            .expect("flags parse")
            .into_settings()
    }

    #[test]
    fn api_key_debug_is_redacted() {
        let key = ApiKey::new("sk-secret-123").unwrap();
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
        assert_eq!(format!("{key}"), "<redacted>");
        let mut up = UpstreamConfig::new(DEFAULT_BASE_URL).unwrap();
        up.api_key = Some(key);
        assert!(!format!("{:?}", Config::new(up)).contains("sk-secret"));
    }

    #[test]
    fn key_with_newline_is_rejected_and_trimmed_key_accepted() {
        assert!(ApiKey::new("sk-a\nb").is_err());
        assert!(ApiKey::new("  ").is_err());
        assert_eq!(ApiKey::new(" sk-x \n").unwrap().expose(), "sk-x");
    }

    #[test]
    fn demo_needs_no_key() {
        let s = cli(&["--demo", "--api-key", ""]).unwrap();
        assert!(s.demo);
        assert!(s.config.upstream.api_key.is_none());
    }

    #[test]
    fn bad_values_name_their_flag() {
        let e = cli(&["--demo", "--listen", "nope"]).unwrap_err();
        assert!(e.0.contains("--listen"), "{e}");
        let e = cli(&["--demo", "--base-url", "ftp://x"]).unwrap_err();
        assert!(e.0.contains("--base-url"), "{e}");
        let e = cli(&["--demo", "--stream-buffer", "0"]).unwrap_err();
        assert!(e.0.contains("--stream-buffer"), "{e}");
    }

    #[test]
    fn durations_parse_and_zero_turns_limits_off() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 days").is_err());
        let s = cli(&[
            "--demo",
            "--idle-timeout",
            "0",
            "--heartbeat",
            "250ms",
            "--max-retries",
            "0",
        ])
        .unwrap();
        assert_eq!(s.config.timeouts.idle, None);
        assert_eq!(s.config.heartbeat, Some(Duration::from_millis(250)));
        assert_eq!(s.config.retry.max_retries, 0);
        assert!(cli(&["--demo", "--max-in-flight", "0"]).is_err());
    }

    #[test]
    fn profiles_file_parses_and_redacts() {
        let p = Profiles::from_json(
            r#"{"default":"production","profiles":{
                "production":{"api_key":"sk-prod","organization":"org-p","callers":["billing"]},
                "staging":{"api_key":"sk-stage","base_url":"http://127.0.0.1:9/v1","project":"proj_s"}}}"#,
            false,
        )
        .unwrap();
        assert_eq!(p.default, "production");
        assert_eq!(
            p.named["staging"].upstream.base_url.as_str(),
            "http://127.0.0.1:9/v1"
        );
        assert_eq!(
            p.named["production"].callers.as_deref(),
            Some(&["billing".to_owned()][..])
        );
        assert!(!format!("{p:?}").contains("sk-prod"));
        let missing =
            Profiles::from_json(r#"{"default":"x","profiles":{"y":{"api_key":"k"}}}"#, false);
        assert!(missing.unwrap_err().0.contains("default profile"));
        let keyless = Profiles::from_json(r#"{"default":"y","profiles":{"y":{}}}"#, false);
        assert!(keyless.unwrap_err().0.contains("api_key"));
        let typo = Profiles::from_json(r#"{"default":"y","profiles":{"y":{"apikey":"k"}}}"#, false);
        assert!(typo.is_err());
    }

    #[test]
    fn headers_come_from_flags() {
        let s = cli(&[
            "--api-key",
            "sk-1",
            "--org-id",
            "org-1",
            "--project-id",
            "proj_1",
            "--base-url",
            "http://127.0.0.1:9/v1",
        ])
        .unwrap();
        assert_eq!(s.config.upstream.organization.as_deref(), Some("org-1"));
        assert_eq!(s.config.upstream.project.as_deref(), Some("proj_1"));
        assert_eq!(s.config.upstream.base_url.as_str(), "http://127.0.0.1:9/v1");
    }
}
