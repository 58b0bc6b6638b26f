//! The command line: every flag with its environment fallback (flags win), and the pure step
//! from flags plus file contents ([`Files`]) to [`Settings`]. Defaults are not spelled here:
//! each comes from the constant next to the type it configures, so `--help` and
//! [`super::Config::new`] cannot disagree (a test checks it).

use std::{fmt, net::SocketAddr, str::FromStr, time::Duration};

use clap::Parser;
use reqwest::Url;

use super::{
    Auth, Config, Cors, DEFAULT_HEARTBEAT, DEFAULT_LISTEN, DEFAULT_STREAM_BUFFER, Drain, Files,
    Http2, Limits, LogFormat, Profiles, StartupError, Tls, Web,
};
use crate::openai::{
    ApiKey, DEFAULT_BASE_URL, RetryPolicy, Timeouts, UpstreamConfig, UpstreamProtocol,
};

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

/// A duration flag value: parsed by [`parse_duration`], shown in `--help` in its largest whole
/// unit (`30m`, `15s`, `500ms`; `0` for "off").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    /// An optional limit as a flag default: `None` ("off") is shown as `0`.
    fn off(d: Option<Duration>) -> Self {
        Self(d.unwrap_or(Duration::ZERO))
    }

    /// The limit, or `None` for `0` ("off").
    fn or_off(self) -> Option<Duration> {
        (!self.0.is_zero()).then_some(self.0)
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            f.write_str("0")
        } else if ms.is_multiple_of(3_600_000) {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration(s).map(Self)
    }
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
    #[arg(long = "stream-buffer", env = "GATEWAY_STREAM_BUFFER", default_value_t = DEFAULT_STREAM_BUFFER)]
    pub stream_buffer: usize,

    /// Upstream retries after the first attempt (connect errors, 408, 429 rate limits, 5xx; only
    /// before anything was sent to the caller). 0 disables.
    #[arg(long = "max-retries", env = "GATEWAY_MAX_RETRIES", default_value_t = RetryPolicy::DEFAULT.max_retries)]
    pub max_retries: u32,

    /// Longest upstream Retry-After the gateway waits for before retrying; longer ones are
    /// returned to the caller at once.
    #[arg(long = "max-retry-after", env = "GATEWAY_MAX_RETRY_AFTER", default_value_t = Dur(RetryPolicy::DEFAULT.max_retry_after))]
    pub max_retry_after: Dur,

    /// Upstream connect timeout (0 = none).
    #[arg(long = "connect-timeout", env = "GATEWAY_CONNECT_TIMEOUT", default_value_t = Dur::off(Timeouts::DEFAULT.connect))]
    pub connect_timeout: Dur,

    /// Upstream time to response headers and first stream event (0 = none).
    #[arg(long = "first-event-timeout", env = "GATEWAY_FIRST_EVENT_TIMEOUT", default_value_t = Dur::off(Timeouts::DEFAULT.first_event))]
    pub first_event_timeout: Dur,

    /// Longest upstream silence between two stream events (0 = none).
    #[arg(long = "idle-timeout", env = "GATEWAY_IDLE_TIMEOUT", default_value_t = Dur::off(Timeouts::DEFAULT.idle))]
    pub idle_timeout: Dur,

    /// Upstream total time per call, stream included (0 = none).
    #[arg(long = "total-timeout", env = "GATEWAY_TOTAL_TIMEOUT", default_value_t = Dur::off(Timeouts::DEFAULT.total))]
    pub total_timeout: Dur,

    /// Send a keepalive message on a stream silent this long, so mesh idle timeouts do not cut
    /// it (0 = off).
    #[arg(long = "heartbeat", env = "GATEWAY_HEARTBEAT", default_value_t = Dur(DEFAULT_HEARTBEAT))]
    pub heartbeat: Dur,

    /// Upstream calls in flight across the gateway; beyond it, RESOURCE_EXHAUSTED at once.
    #[arg(long = "max-in-flight", env = "GATEWAY_MAX_IN_FLIGHT", default_value_t = Limits::DEFAULT.max_in_flight)]
    pub max_in_flight: usize,

    /// Calls in flight per client connection; beyond it, RESOURCE_EXHAUSTED at once.
    #[arg(long = "max-streams-per-connection", env = "GATEWAY_MAX_STREAMS_PER_CONNECTION", default_value_t = Limits::DEFAULT.max_streams_per_connection)]
    pub max_streams_per_connection: usize,

    /// On SIGTERM: keep serving this long after health turns NOT_SERVING.
    #[arg(long = "drain-delay", env = "GATEWAY_DRAIN_DELAY", default_value_t = Dur(Drain::DEFAULT.delay))]
    pub drain_delay: Dur,

    /// On SIGTERM: then give in-flight calls this long before ending them with UNAVAILABLE.
    #[arg(long = "drain-timeout", env = "GATEWAY_DRAIN_TIMEOUT", default_value_t = Dur(Drain::DEFAULT.timeout))]
    pub drain_timeout: Dur,

    /// HTTP/2 PING interval to clients (0 = off).
    #[arg(long = "http2-keepalive-interval", env = "GATEWAY_HTTP2_KEEPALIVE_INTERVAL", default_value_t = Dur::off(Http2::DEFAULT.keepalive_interval))]
    pub http2_keepalive_interval: Dur,

    /// HTTP/2 PING acknowledgement timeout.
    #[arg(long = "http2-keepalive-timeout", env = "GATEWAY_HTTP2_KEEPALIVE_TIMEOUT", default_value_t = Dur(Http2::DEFAULT.keepalive_timeout))]
    pub http2_keepalive_timeout: Dur,

    /// Close client connections older than this with GOAWAY (0 = never).
    #[arg(long = "max-connection-age", env = "GATEWAY_MAX_CONNECTION_AGE", default_value_t = Dur::off(Http2::DEFAULT.max_connection_age))]
    pub max_connection_age: Dur,

    /// HTTP/2 max concurrent streams per client connection.
    #[arg(long = "max-concurrent-streams", env = "GATEWAY_MAX_CONCURRENT_STREAMS", default_value_t = Http2::DEFAULT.max_concurrent_streams)]
    pub max_concurrent_streams: u32,

    /// Largest request message accepted, in bytes.
    #[arg(long = "max-request-bytes", env = "GATEWAY_MAX_REQUEST_BYTES", default_value_t = Http2::DEFAULT.max_request_bytes)]
    pub max_request_bytes: usize,

    /// Largest response message sent, in bytes.
    #[arg(long = "max-response-bytes", env = "GATEWAY_MAX_RESPONSE_BYTES", default_value_t = Http2::DEFAULT.max_response_bytes)]
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

    /// With caller tokens: accept response and conversation ids this gateway did not create
    /// (e.g. made before the gateway was deployed); they are then not isolated between callers.
    #[arg(long = "allow-foreign-ids", env = "GATEWAY_ALLOW_FOREIGN_IDS")]
    pub allow_foreign_ids: bool,

    /// Per-caller quotas: a JSON file `{"default": {...}, "callers": {"NAME": {...}}, "profiles":
    /// {"NAME": {...}}}`, each with any of requests_per_minute, tokens_per_minute,
    /// concurrent_streams. Unset: no quotas.
    #[arg(long = "limits-file", env = "GATEWAY_LIMITS_FILE")]
    pub limits_file: Option<std::path::PathBuf>,

    /// Share quotas, key cooldowns and response ownership with other replicas through this
    /// Redis, e.g. redis://redis:6379. Unset: each replica keeps them in its own memory.
    #[arg(long = "redis-url", env = "GATEWAY_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Prefix of every key the gateway writes to Redis.
    #[arg(long = "redis-key-prefix", env = "GATEWAY_REDIS_KEY_PREFIX", default_value = super::DEFAULT_REDIS_KEY_PREFIX)]
    pub redis_key_prefix: String,

    /// While Redis is unreachable, refuse calls that a quota would check (UNAVAILABLE) instead
    /// of serving them.
    #[arg(long = "limits-fail-closed", env = "GATEWAY_LIMITS_FAIL_CLOSED")]
    pub limits_fail_closed: bool,

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

    /// Origins whose web pages may call the gateway with gRPC-Web (CORS), comma-separated, e.g.
    /// `https://app.example.com,http://localhost:5173`; `*` allows any origin. Unset: CORS off
    /// (the built-in page at / is same-origin and needs none).
    #[arg(long = "cors-allow-origin", env = "GATEWAY_CORS_ALLOW_ORIGIN")]
    pub cors_allow_origin: Option<String>,

    /// Speak HTTP/2 to the upstream without negotiating it (h2c on an http:// base URL, for
    /// OpenAI-compatible servers that serve it): calls share connections as streams instead of
    /// holding one HTTP/1.1 connection each. With https://, HTTP/2 is picked by ALPN anyway.
    #[arg(long = "upstream-http2", env = "GATEWAY_UPSTREAM_HTTP2")]
    pub upstream_http2: bool,

    /// Do not serve the built-in web page at / (gRPC-Web calls are still served).
    #[arg(long = "no-web", env = "GATEWAY_NO_WEB")]
    pub no_web: bool,

    /// Export traces over OTLP/HTTP (protobuf) to this collector, e.g. http://otel-collector:4318
    /// (spans go to /v1/traces). Unset: no export.
    #[arg(long = "otlp-endpoint", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// The service name reported in exported traces.
    #[arg(long = "otel-service-name", env = "OTEL_SERVICE_NAME", default_value = DEFAULT_SERVICE_NAME)]
    pub otel_service_name: String,

    /// Log format.
    #[arg(long = "log-format", env = "GATEWAY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter (tracing-subscriber EnvFilter syntax), e.g. `info` or `openai_grpc_gateway=debug`.
    #[arg(long = "log", env = "GATEWAY_LOG", default_value = DEFAULT_LOG)]
    pub log: String,
}

/// The default service name of exported traces.
pub const DEFAULT_SERVICE_NAME: &str = "openai-grpc-gateway";
/// The default log filter.
pub const DEFAULT_LOG: &str = "info";

/// What `main` should do once the flags are read.
#[derive(Debug)]
pub struct Settings {
    /// The validated configuration. In demo mode its upstreams are replaced at start-up.
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

/// A trimmed value, `None` when empty.
pub(super) fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn socket_address(raw: &str, flag: &str) -> Result<SocketAddr, StartupError> {
    SocketAddr::from_str(raw.trim()).map_err(|e| {
        StartupError::config(format!(
            "{flag}: {raw:?} is not a socket address like 127.0.0.1:50051 ({e})"
        ))
    })
}

impl Cli {
    /// Reads the files the flags name ([`Files::read`]), then [`Cli::into_settings`].
    pub fn load(self) -> Result<Settings, StartupError> {
        let files = Files::read(&self)?;
        self.into_settings(files)
    }

    /// Validates the flags and the file contents into [`Settings`], without any IO; every
    /// problem is a [`StartupError::Config`] naming the flag.
    pub fn into_settings(self, files: Files) -> Result<Settings, StartupError> {
        let listen = socket_address(&self.listen, "--listen / GATEWAY_LISTEN")?;
        if !(1..=1024).contains(&self.stream_buffer) {
            return Err(StartupError::config(format!(
                "--stream-buffer / GATEWAY_STREAM_BUFFER: {} is outside 1-1024",
                self.stream_buffer
            )));
        }
        let mut upstream = UpstreamConfig::new(&self.base_url)
            .map_err(|e| StartupError::config(format!("--base-url / OPENAI_BASE_URL: {e}")))?;
        upstream.organization = non_empty(self.org_id);
        upstream.project = non_empty(self.project_id);
        upstream.api_key = match non_empty(self.api_key) {
            Some(key) => {
                Some(ApiKey::new(key).map_err(|e| {
                    StartupError::config(format!("--api-key / OPENAI_API_KEY: {e}"))
                })?)
            }
            None if self.demo || files.profiles.is_some() => None,
            None => {
                return Err(StartupError::config(
                    "no OpenAI API key: set OPENAI_API_KEY (or --api-key), or start with --demo to use the built-in fake upstream",
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
                return Err(StartupError::config(format!("{flag}: must be at least 1")));
            }
        }
        if self.http2_keepalive_timeout.0.is_zero() {
            return Err(StartupError::config(
                "--http2-keepalive-timeout: must be more than 0",
            ));
        }
        let mut tokens = match &self.auth_tokens {
            Some(text) => crate::auth::parse_tokens(text, "--auth-tokens / GATEWAY_AUTH_TOKENS")
                .map_err(StartupError::Config)?,
            None => Vec::new(),
        };
        if let Some(text) = &files.auth_tokens {
            tokens.extend(
                crate::auth::parse_tokens(text, "--auth-tokens-file")
                    .map_err(StartupError::Config)?,
            );
        }
        let tls = match (files.tls_cert, files.tls_key) {
            (Some(cert_pem), Some(key_pem)) => Some(Tls {
                cert_pem,
                key_pem,
                client_ca_pem: files.tls_client_ca,
            }),
            _ => None,
        };
        let mut profiles = match files.profiles {
            Some(file) => Profiles::build(file, &files.key_files, self.demo)?,
            None => Profiles::default(),
        };
        profiles.allow_caller_keys = self.allow_caller_keys;
        let metrics_listen = self
            .metrics_listen
            .as_deref()
            .map(|a| socket_address(a, "--metrics-listen / GATEWAY_METRICS_LISTEN"))
            .transpose()?;
        let cors = match self.cors_allow_origin.as_deref() {
            Some(raw) => Cors::parse(raw).map_err(|e| {
                StartupError::config(format!(
                    "--cors-allow-origin / GATEWAY_CORS_ALLOW_ORIGIN: {e}"
                ))
            })?,
            None => Cors::Off,
        };
        let mut config = Config {
            listen,
            upstream,
            stream_buffer: self.stream_buffer,
            retry: RetryPolicy {
                max_retries: self.max_retries,
                max_retry_after: self.max_retry_after.0,
                ..RetryPolicy::DEFAULT
            },
            timeouts: Timeouts {
                connect: self.connect_timeout.or_off(),
                first_event: self.first_event_timeout.or_off(),
                idle: self.idle_timeout.or_off(),
                total: self.total_timeout.or_off(),
            },
            heartbeat: self.heartbeat.or_off(),
            limits: Limits {
                max_in_flight: self.max_in_flight,
                max_streams_per_connection: self.max_streams_per_connection,
            },
            drain: Drain {
                delay: self.drain_delay.0,
                timeout: self.drain_timeout.0,
            },
            http2: Http2 {
                keepalive_interval: self.http2_keepalive_interval.or_off(),
                keepalive_timeout: self.http2_keepalive_timeout.0,
                max_connection_age: self.max_connection_age.or_off(),
                max_concurrent_streams: self.max_concurrent_streams,
                max_request_bytes: self.max_request_bytes,
                max_response_bytes: self.max_response_bytes,
            },
            auth: Auth {
                tokens,
                protect_reflection: self.auth_reflection,
            },
            tls,
            profiles,
            metrics_listen,
            allow_foreign_ids: self.allow_foreign_ids,
            quotas: files.limits,
            shared: super::Shared {
                redis: non_empty(self.redis_url)
                    .map(|raw| {
                        super::RedisUrl::new(&raw).map_err(|e| {
                            StartupError::config(format!("--redis-url / GATEWAY_REDIS_URL: {e}"))
                        })
                    })
                    .transpose()?,
                key_prefix: self.redis_key_prefix,
                fail_closed: self.limits_fail_closed,
            },
            web: Web {
                page: !self.no_web,
                cors,
            },
        };
        if self.upstream_http2 {
            for upstream in config.upstreams_mut() {
                upstream.protocol = UpstreamProtocol::Http2;
            }
        }
        let otlp_endpoint = non_empty(self.otlp_endpoint)
            .map(|raw| {
                Url::parse(&raw)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| {
                        StartupError::config(format!(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Result<Settings, StartupError> {
        // `try_parse_from` still reads env fallbacks; tests only use names the test runner never
        // sets, and each assertion below passes explicit flags for what it checks.
        let mut argv = vec!["openai-grpc-gateway"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
            .expect("flags parse")
            .into_settings(Files::default())
    }

    fn message(e: StartupError) -> String {
        e.to_string()
    }

    #[test]
    fn flag_defaults_are_the_config_defaults() {
        let s = cli(&["--demo"]).unwrap();
        let expected = Config::new(UpstreamConfig::new(DEFAULT_BASE_URL).unwrap());
        assert_eq!(s.config, expected);
        assert_eq!(s.log, DEFAULT_LOG);
        assert_eq!(s.otel_service_name, DEFAULT_SERVICE_NAME);
        assert_eq!(s.log_format, LogFormat::default());
    }

    #[test]
    fn durations_display_as_they_parse() {
        for d in [
            Duration::ZERO,
            Duration::from_millis(500),
            Duration::from_secs(15),
            Duration::from_secs(120),
            Duration::from_secs(1800),
            Duration::from_secs(7200),
            Duration::from_millis(1500),
        ] {
            assert_eq!(Dur(d).to_string().parse::<Dur>(), Ok(Dur(d)), "{d:?}");
        }
        assert_eq!(Dur(Duration::from_secs(1800)).to_string(), "30m");
        assert_eq!(Dur::off(None).to_string(), "0");
    }

    #[test]
    fn demo_needs_no_key() {
        let s = cli(&["--demo", "--api-key", ""]).unwrap();
        assert!(s.demo);
        assert!(s.config.upstream.api_key.is_none());
    }

    #[test]
    fn a_key_is_required_without_demo() {
        let e = message(cli(&["--api-key", ""]).unwrap_err());
        assert!(e.contains("OPENAI_API_KEY"), "{e}");
        let e = cli(&["--api-key", "sk-a b"]).unwrap_err();
        assert_eq!(e.exit_code(), super::super::EXIT_CONFIG);
        assert!(!message(e).contains("sk-a"));
    }

    #[test]
    fn bad_values_name_their_flag() {
        let e = message(cli(&["--demo", "--listen", "nope"]).unwrap_err());
        assert!(e.contains("--listen"), "{e}");
        let e = message(cli(&["--demo", "--base-url", "ftp://x"]).unwrap_err());
        assert!(e.contains("--base-url"), "{e}");
        let e = message(cli(&["--demo", "--stream-buffer", "0"]).unwrap_err());
        assert!(e.contains("--stream-buffer"), "{e}");
    }

    #[test]
    fn cors_origins_parse_strictly() {
        let s = cli(&["--demo"]).unwrap();
        assert_eq!(s.config.web.cors, Cors::Off);
        assert!(s.config.web.page);
        let s = cli(&[
            "--demo",
            "--no-web",
            "--cors-allow-origin",
            " https://app.example.com/ , http://localhost:5173,https://APP.example.com",
        ])
        .unwrap();
        assert!(!s.config.web.page);
        assert_eq!(
            s.config.web.cors,
            Cors::Origins(vec![
                "https://app.example.com".into(),
                "http://localhost:5173".into()
            ])
        );
        let s = cli(&["--demo", "--cors-allow-origin", "*"]).unwrap();
        assert_eq!(s.config.web.cors, Cors::AnyOrigin);
        for bad in [
            "*,https://a.example",
            "app.example.com",
            "ftp://a.example",
            "https://a.example/path",
            "https://a.example?x=1",
        ] {
            let e = message(cli(&["--demo", "--cors-allow-origin", bad]).unwrap_err());
            assert!(e.contains("--cors-allow-origin"), "{bad}: {e}");
        }
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

    #[test]
    fn upstream_http2_applies_to_every_upstream() {
        let s = cli(&["--demo"]).unwrap();
        assert_eq!(s.config.upstream.protocol, UpstreamProtocol::Negotiated);
        let s = cli(&["--demo", "--upstream-http2"]).unwrap();
        assert!(
            s.config
                .clone()
                .upstreams_mut()
                .all(|u| u.protocol == UpstreamProtocol::Http2)
        );
    }

    #[test]
    fn files_are_read_before_parsing() {
        let dir = std::env::temp_dir().join(format!("gw-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("key");
        std::fs::write(&key, "sk-from-file\n").unwrap();
        let profiles = dir.join("profiles.json");
        std::fs::write(
            &profiles,
            format!(
                r#"{{"default":"p","profiles":{{"p":{{"api_key_file":{:?}}}}}}}"#,
                key.display().to_string()
            ),
        )
        .unwrap();
        let parsed = Cli::try_parse_from([
            "openai-grpc-gateway",
            "--profiles-file",
            profiles.to_str().unwrap(),
        ])
        .unwrap();
        let files = Files::read(&parsed).unwrap();
        assert_eq!(files.key_files.len(), 1);
        let s = parsed.into_settings(files).unwrap();
        assert_eq!(
            s.config.profiles.named["p"]
                .upstream
                .api_key
                .as_ref()
                .unwrap()
                .expose(),
            "sk-from-file"
        );
        let missing = Cli::try_parse_from([
            "openai-grpc-gateway",
            "--profiles-file",
            dir.join("nope.json").to_str().unwrap(),
        ])
        .unwrap();
        let e = Files::read(&missing).unwrap_err();
        assert!(message(e).contains("--profiles-file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
