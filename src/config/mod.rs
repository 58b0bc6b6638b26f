//! Every setting of the gateway, documented once, with its default written once.
//!
//! Each setting is a command-line flag with an environment-variable fallback ([`flags`]: the
//! OpenAI SDKs' names where one exists, `GATEWAY_*` otherwise); `--help` prints this
//! documentation. Start-up is two steps: [`files::Files::read`] reads every file the flags name
//! (profiles, the key files the profiles name, caller tokens, TLS material), then
//! [`flags::Cli::into_settings`] turns flags and file contents into a [`Config`] without any IO.
//! Secrets are never printed: keys redact themselves in `Debug`, and clap hides env values.
//!
//! The upstream client's own settings ([`UpstreamConfig`], [`RetryPolicy`], [`Timeouts`]) are
//! defined with the client in [`crate::openai`]; this module builds them.
//!
//! Tests never parse the process environment: they build a [`Config`] in code with
//! [`Config::new`].

pub mod files;
pub mod flags;
pub mod limits;
pub mod profiles;

use std::{collections::BTreeMap, fmt, net::SocketAddr, time::Duration};

pub use crate::openai::{RetryPolicy, Timeouts, UpstreamConfig};
pub use files::Files;
pub use flags::{Cli, Settings, parse_duration};
pub use profiles::{Profile, Profiles};

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// The default number of messages buffered per stream.
pub const DEFAULT_STREAM_BUFFER: usize = 16;
/// The default interval of gateway keepalive messages on a silent stream.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);
/// Exit code for bad configuration (`EX_USAGE` from sysexits.h).
pub const EXIT_CONFIG: u8 = 64;

/// Why the gateway could not start. [`StartupError::exit_code`] tells `main` how to exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupError {
    /// A setting or a file it names is wrong: nothing was bound (exit code 64).
    Config(String),
    /// Serving failed or could not begin (a port taken, TLS material rejected): exit code 1.
    Runtime(String),
}

impl StartupError {
    /// A configuration problem.
    pub fn config(message: impl Into<String>) -> Self {
        Self::Config(message.into())
    }

    /// A failure to serve.
    pub fn runtime(message: impl fmt::Display) -> Self {
        Self::Runtime(message.to_string())
    }

    /// The process exit code: 64 for configuration, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => EXIT_CONFIG,
            Self::Runtime(_) => 1,
        }
    }
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(m) => write!(f, "configuration error: {m}"),
            Self::Runtime(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for StartupError {}

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
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Address the gRPC server listens on.
    pub listen: SocketAddr,
    /// The upstream OpenAI endpoint and credentials (the `default` profile when
    /// [`Config::profiles`] is empty).
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
    /// With caller authentication, accept response and conversation ids the gateway did not
    /// create (for migrations); they are then not isolated between callers.
    pub allow_foreign_ids: bool,
    /// Per-caller and per-profile quotas (`--limits-file`); `None`: no quotas.
    pub quotas: Option<limits::Quotas>,
    /// State shared with other replicas (quotas, key cooldowns, ownership bindings).
    pub shared: Shared,
    /// The browser side of the gRPC port: the built-in page and CORS (gRPC-Web itself is always
    /// on).
    pub web: Web,
}

impl Config {
    /// A configuration for `upstream` with every other setting at its default.
    pub fn new(upstream: UpstreamConfig) -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("valid default"),
            upstream,
            stream_buffer: DEFAULT_STREAM_BUFFER,
            retry: RetryPolicy::DEFAULT,
            timeouts: Timeouts::DEFAULT,
            heartbeat: Some(DEFAULT_HEARTBEAT),
            limits: Limits::DEFAULT,
            drain: Drain::DEFAULT,
            http2: Http2::DEFAULT,
            auth: Auth::default(),
            tls: None,
            profiles: Profiles::default(),
            metrics_listen: None,
            allow_foreign_ids: false,
            quotas: None,
            shared: Shared::default(),
            web: Web::DEFAULT,
        }
    }

    /// Every upstream the configuration names: the single upstream, or each named profile's.
    /// Demo mode points them all at the built-in fake.
    pub fn upstreams_mut(&mut self) -> impl Iterator<Item = &mut UpstreamConfig> {
        std::iter::once(&mut self.upstream)
            .chain(self.profiles.named.values_mut().map(|p| &mut p.upstream))
    }
}

/// Caller authentication. With no tokens, every caller is let in (run behind a mesh that
/// authenticates, or on loopback).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Auth {
    /// Accepted bearer tokens (as digests, with names).
    pub tokens: Vec<crate::auth::CallerToken>,
    /// Whether reflection also requires a token (health never does).
    pub protect_reflection: bool,
}

/// TLS material, read from files at start-up. `Debug` never shows the private key.
#[derive(Clone, PartialEq, Eq)]
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

/// Load shedding: beyond these, a call fails at once with RESOURCE_EXHAUSTED and RetryInfo;
/// nothing waits in an unbounded queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Upstream calls in flight across the whole gateway.
    pub max_in_flight: usize,
    /// Calls in flight on one client connection (HTTP/2 connection).
    pub max_streams_per_connection: usize,
}

impl Limits {
    /// The defaults: 1024 calls in flight, 256 per connection.
    pub const DEFAULT: Self = Self {
        max_in_flight: 1024,
        max_streams_per_connection: 256,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
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

impl Drain {
    /// The defaults: 5 s delay, 30 s timeout.
    pub const DEFAULT: Self = Self {
        delay: Duration::from_secs(5),
        timeout: Duration::from_secs(30),
    };
}

impl Default for Drain {
    fn default() -> Self {
        Self::DEFAULT
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

impl Http2 {
    /// The defaults: PINGs every 30 s answered within 20 s, no connection age limit, 1024
    /// streams per connection, 16 MiB requests, 64 MiB responses.
    pub const DEFAULT: Self = Self {
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_timeout: Duration::from_secs(20),
        max_connection_age: None,
        max_concurrent_streams: 1024,
        max_request_bytes: 16 * 1024 * 1024,
        max_response_bytes: 64 * 1024 * 1024,
    };
}

impl Default for Http2 {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The browser side of the gRPC port. gRPC-Web (`application/grpc-web` and `-text`, over
/// HTTP/1.1 and HTTP/2) is always served; these settings say what else a browser gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Web {
    /// Serve the built-in web page at `/` (`--no-web` turns it off).
    pub page: bool,
    /// Which other origins' pages may call the gateway (CORS). The built-in page is served from
    /// the gateway's own origin and needs none.
    pub cors: Cors,
}

impl Web {
    /// The defaults: the page on, CORS off.
    pub const DEFAULT: Self = Self {
        page: true,
        cors: Cors::Off,
    };
}

impl Default for Web {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Where replicas share their state, and what happens when it cannot be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    /// Redis (`--redis-url`); `None`: every replica keeps its state in its own memory.
    pub redis: Option<RedisUrl>,
    /// Prefix of every key the gateway writes to Redis.
    pub key_prefix: String,
    /// Refuse calls that a quota would check while Redis is unreachable (default: serve them).
    pub fail_closed: bool,
}

/// The default prefix of the gateway's Redis keys.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "openai-gateway:";

impl Default for Shared {
    fn default() -> Self {
        Self {
            redis: None,
            key_prefix: DEFAULT_REDIS_KEY_PREFIX.to_owned(),
            fail_closed: false,
        }
    }
}

/// A Redis URL (`redis://[user:password@]host:port[/db]`). It may hold a password, so `Debug`
/// and `Display` show only its host and port.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// Checks the URL's form (`redis://` or `rediss://` with a host).
    pub fn new(raw: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(raw.trim()).map_err(|_| "is not a URL".to_owned())?;
        if !matches!(url.scheme(), "redis" | "rediss") || url.host_str().is_none() {
            return Err("must be redis://HOST[:PORT][/DB] or rediss://...".into());
        }
        Ok(Self(raw.trim().to_owned()))
    }

    /// The URL itself, for the Redis client only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `host:port`, safe to log.
    pub fn host(&self) -> String {
        reqwest::Url::parse(&self.0)
            .ok()
            .map(|u| {
                format!(
                    "{}:{}",
                    u.host_str().unwrap_or("?"),
                    u.port().unwrap_or(6379)
                )
            })
            .unwrap_or_default()
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({})", self.host())
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redis://{}", self.host())
    }
}

/// Cross-origin calls from browsers (`--cors-allow-origin`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cors {
    /// No CORS headers: only same-origin pages (such as the built-in one) can call.
    #[default]
    Off,
    /// Any origin (`*`), only when asked for explicitly.
    AnyOrigin,
    /// These origins (`scheme://host[:port]`, as browsers send them in `Origin`).
    Origins(Vec<String>),
}

impl Cors {
    /// Parses a comma-separated list of origins, or `*` alone. Each origin is an `http` or
    /// `https` URL with nothing after the host and port (a trailing `/` is dropped), written
    /// the way browsers send it in the `Origin` header.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let items: Vec<&str> = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if items.is_empty() {
            return Ok(Self::Off);
        }
        if items.contains(&"*") {
            return if items.len() == 1 {
                Ok(Self::AnyOrigin)
            } else {
                Err("`*` allows every origin and cannot be combined with others".into())
            };
        }
        let mut origins = Vec::with_capacity(items.len());
        for item in items {
            let url = reqwest::Url::parse(item).map_err(|e| {
                format!("{item:?} is not an origin like https://app.example.com ({e})")
            })?;
            let bare = url.path() == "/"
                && url.query().is_none()
                && url.fragment().is_none()
                && url.username().is_empty()
                && url.password().is_none();
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || !bare {
                return Err(format!(
                    "{item:?} is not an origin: give scheme://host[:port] (http or https), nothing after it"
                ));
            }
            let origin = url.origin().ascii_serialization();
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(Self::Origins(origins))
    }
}

/// The profiles by name (ordered, so listings are stable).
pub type NamedProfiles = BTreeMap<String, Profile>;
