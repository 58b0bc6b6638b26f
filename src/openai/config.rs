//! The upstream client's own settings: where to call, with which key, how to retry and how long
//! to wait. [`crate::config`] builds them from flags and files; this module only defines them, so
//! the client depends on nothing else in the crate.

use std::{fmt, time::Duration};

use reqwest::Url;

/// The OpenAI API base URL the SDKs use by default.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// An OpenAI API key. Its `Debug` and `Display` never show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

/// Why a string cannot be used as an API key (never contains the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadKey {
    /// Empty, or only whitespace.
    Empty,
    /// Holds whitespace or control characters inside (a stray quote or newline).
    Whitespace,
}

impl fmt::Display for BadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "the OpenAI API key is empty",
            Self::Whitespace => {
                "the OpenAI API key contains whitespace or control characters; check for a stray quote or newline"
            }
        })
    }
}

impl ApiKey {
    /// Wraps a key (surrounding whitespace trimmed), rejecting values that cannot travel in an
    /// HTTP header.
    pub fn new(key: impl Into<String>) -> Result<Self, BadKey> {
        let key = key.into();
        let trimmed = key.trim();
        if trimmed.is_empty() {
            return Err(BadKey::Empty);
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(BadKey::Whitespace);
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

/// Whose API key a client sends: error messages say which key OpenAI rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOwner {
    /// The gateway's own key (`OPENAI_API_KEY` / `--api-key`).
    Gateway,
    /// The key of the named credential profile (`--profiles-file`).
    Profile(String),
    /// The caller's own key, sent in `x-openai-api-key` metadata.
    Caller,
}

/// How to reach OpenAI (or an OpenAI-compatible server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// Base URL; request paths such as `/responses` are appended to it.
    pub base_url: Url,
    /// The key sent as `Authorization: Bearer <key>`; `None` sends no `Authorization` header.
    pub api_key: Option<ApiKey>,
    /// Further keys of the same project: the call goes to another healthy key when one is
    /// rate limited, revoked or out of quota (see [`super::keys`]).
    pub extra_keys: Vec<ApiKey>,
    /// Whose key `api_key` is.
    pub key_owner: KeyOwner,
    /// Sent as `OpenAI-Organization` when set (an organization id, `org-...`).
    pub organization: Option<String>,
    /// Sent as `OpenAI-Project` when set (a project id, `proj_...`).
    pub project: Option<String>,
    /// Which HTTP version the client speaks to this upstream.
    pub protocol: UpstreamProtocol,
}

/// The HTTP version of upstream connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/2 when the TLS handshake's ALPN picks it (api.openai.com does), else HTTP/1.1 with
    /// one connection per concurrent call (every plaintext `http://` upstream).
    #[default]
    Negotiated,
    /// HTTP/2 only, without negotiation ("prior knowledge"; h2c on `http://`): calls share
    /// connections as streams. For plaintext OpenAI-compatible servers that speak h2c.
    Http2,
}

/// Why a base URL is unusable (the message names the offending value, never a key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadBaseUrl(pub String);

impl fmt::Display for BadBaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl UpstreamConfig {
    /// An upstream at `base_url` with no credentials or scoping headers (the gateway's own key
    /// slot, empty).
    pub fn new(base_url: &str) -> Result<Self, BadBaseUrl> {
        Ok(Self {
            base_url: parse_base_url(base_url)?,
            api_key: None,
            extra_keys: Vec::new(),
            key_owner: KeyOwner::Gateway,
            organization: None,
            project: None,
            protocol: UpstreamProtocol::Negotiated,
        })
    }
}

/// An `http(s)` URL without query or fragment.
fn parse_base_url(raw: &str) -> Result<Url, BadBaseUrl> {
    let url =
        Url::parse(raw.trim()).map_err(|e| BadBaseUrl(format!("{raw:?} is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(BadBaseUrl(format!(
            "{raw:?} must start with http:// or https://"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(BadBaseUrl(format!(
            "{raw:?} must not have a query or fragment"
        )));
    }
    Ok(url)
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

impl RetryPolicy {
    /// The defaults (also the command-line defaults): 2 retries, backoff from 0.5 s up to 8 s,
    /// server-requested waits honoured up to 60 s.
    pub const DEFAULT: Self = Self {
        max_retries: 2,
        initial_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(8),
        max_retry_after: Duration::from_secs(60),
    };
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
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

impl Timeouts {
    /// The defaults (also the command-line defaults): connect 10 s, first event 120 s, idle
    /// 300 s, total 30 min.
    pub const DEFAULT: Self = Self {
        connect: Some(Duration::from_secs(10)),
        first_event: Some(Duration::from_secs(120)),
        idle: Some(Duration::from_secs(300)),
        total: Some(Duration::from_secs(1800)),
    };
}

impl Default for Timeouts {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_debug_is_redacted() {
        let key = ApiKey::new("sk-secret-123").unwrap();
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
        assert_eq!(format!("{key}"), "<redacted>");
        let mut up = UpstreamConfig::new(DEFAULT_BASE_URL).unwrap();
        up.api_key = Some(key);
        assert!(!format!("{up:?}").contains("sk-secret"));
    }

    #[test]
    fn key_with_newline_is_rejected_and_trimmed_key_accepted() {
        assert_eq!(ApiKey::new("sk-a\nb"), Err(BadKey::Whitespace));
        assert_eq!(ApiKey::new("  "), Err(BadKey::Empty));
        assert_eq!(ApiKey::new(" sk-x \n").unwrap().expose(), "sk-x");
    }

    #[test]
    fn base_urls_must_be_plain_http() {
        assert!(UpstreamConfig::new("http://127.0.0.1:9/v1").is_ok());
        for bad in ["ftp://x", "nope", "https://x/v1?a=1", "https://x/v1#f"] {
            assert!(UpstreamConfig::new(bad).is_err(), "{bad}");
        }
    }
}
