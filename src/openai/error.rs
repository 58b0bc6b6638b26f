//! What can go wrong talking to OpenAI, in OpenAI's own terms (HTTP statuses, error bodies,
//! stream events). [`crate::error`] turns these into gRPC statuses; this module knows no gRPC.

use std::{fmt, time::Duration};

use serde::Deserialize;

/// OpenAI's error object: `{"error": {"message", "type", "param", "code"}}` (OpenAI's `ErrorResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ApiError {
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// Error type, e.g. `invalid_request_error`, `insufficient_quota`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The request parameter at fault, if any.
    #[serde(default)]
    pub param: Option<String>,
    /// Machine-readable code, e.g. `invalid_api_key`, `model_not_found`, `rate_limit_exceeded`.
    #[serde(default, deserialize_with = "string_or_number")]
    pub code: Option<String>,
}

/// Some OpenAI-compatible servers send numeric codes; accept both.
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

impl ApiError {
    /// Parses an HTTP error body: `{"error": {...}}`, or the bare object as some servers send it.
    pub fn from_body(body: &[u8]) -> Option<Self> {
        #[derive(Deserialize)]
        struct Envelope {
            error: ApiError,
        }
        if let Ok(env) = serde_json::from_slice::<Envelope>(body) {
            return Some(env.error);
        }
        serde_json::from_slice::<ApiError>(body)
            .ok()
            .filter(|e| !e.message.is_empty())
    }

    /// Parses an in-stream `error` event, in its observed nested shape or its documented flat one
    /// (OpenAI sends a nested `error` object; its reference documents flat keys).
    pub fn from_error_event(event: &serde_json::Value) -> Self {
        let nested = event.get("error").filter(|e| e.is_object());
        let source = nested.unwrap_or(event);
        let mut err = ApiError::deserialize(source).unwrap_or_default();
        if nested.is_some() && err.message.is_empty() {
            // Nested object without a message: fall back to the flat keys.
            err = ApiError::deserialize(event).unwrap_or_default();
        }
        if err.message.is_empty() {
            err.message = "the upstream stream reported an error without a message".into();
        }
        err
    }

    /// Whether this is a quota / billing problem rather than a rate limit: waiting does not help.
    pub fn is_quota(&self) -> bool {
        let quota = |s: &Option<String>| {
            matches!(
                s.as_deref(),
                Some(
                    "insufficient_quota"
                        | "credit_balance_exhausted"
                        | "billing_hard_limit_reached"
                )
            )
        };
        quota(&self.code) || quota(&self.kind)
    }
}

/// The time limits of an upstream call (see [`Timeouts`](super::Timeouts)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeLimit {
    /// Connecting took too long.
    Connect,
    /// No response headers, or no first stream event, in time.
    FirstEvent,
    /// The stream was silent too long between two events.
    Idle,
    /// The whole call took too long.
    Total,
    /// The caller's own deadline (gRPC `grpc-timeout`) passed.
    CallerDeadline,
}

impl TimeLimit {
    /// A short description for messages and logs.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Connect => "the upstream connect timeout",
            Self::FirstEvent => "the upstream first-event timeout",
            Self::Idle => "the upstream idle timeout",
            Self::Total => "the upstream total timeout",
            Self::CallerDeadline => "the caller's deadline",
        }
    }
}

/// Facts about the upstream exchange that every error carries where known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamMeta {
    /// The upstream `x-request-id`.
    pub request_id: Option<String>,
    /// How long the server asked us to wait (`retry-after-ms`, else `Retry-After`).
    pub retry_after: Option<Duration>,
    /// When the exhausted rate-limit bucket refills (`x-ratelimit-reset-requests` /
    /// `-tokens` of a bucket whose `x-ratelimit-remaining-*` is 0, else the later of the two).
    pub rate_limit_reset: Option<Duration>,
}

/// A failure of one upstream call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// OpenAI answered with a non-success HTTP status.
    Status {
        /// The HTTP status code.
        status: u16,
        /// The parsed error body, when it was OpenAI's JSON shape.
        error: Option<Box<ApiError>>,
        /// Request id and retry hints.
        meta: UpstreamMeta,
    },
    /// No response: the connection could not be made or broke before the status arrived.
    Connect {
        /// What the transport said (never contains the key).
        message: String,
    },
    /// A time limit passed (the upstream request is then closed).
    Timeout {
        /// Which limit.
        limit: TimeLimit,
    },
    /// The response could not be decoded (not JSON, not SSE, wrong shape).
    Decode {
        /// What was wrong.
        message: String,
        /// Request id.
        meta: UpstreamMeta,
    },
    /// The connection ended in the middle of a streamed body, before its terminal event.
    Dropped {
        /// What happened.
        message: String,
        /// Request id.
        meta: UpstreamMeta,
    },
    /// An in-stream `error` event (`ResponseErrorEvent` in OpenAI's reference).
    StreamError {
        /// The error it carried.
        error: Box<ApiError>,
        /// Request id.
        meta: UpstreamMeta,
    },
    /// A `response.failed` event, or a non-streamed Response with `status: "failed"`.
    ResponseFailed {
        /// The Response's `error.code` (e.g. `server_error`).
        code: Option<String>,
        /// The Response's `error.message`.
        message: String,
        /// Request id.
        meta: UpstreamMeta,
    },
}

impl UpstreamError {
    /// Request id and retry hints, where the variant has them.
    pub fn meta(&self) -> Option<&UpstreamMeta> {
        match self {
            Self::Status { meta, .. }
            | Self::Decode { meta, .. }
            | Self::Dropped { meta, .. }
            | Self::StreamError { meta, .. }
            | Self::ResponseFailed { meta, .. } => Some(meta),
            Self::Connect { .. } | Self::Timeout { .. } => None,
        }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status { status, error, .. } => match error {
                Some(e) => write!(f, "HTTP {status}: {}", e.message),
                None => write!(f, "HTTP {status}"),
            },
            Self::Connect { message } => write!(f, "connection failed: {message}"),
            Self::Timeout { limit } => write!(f, "{} passed", limit.describe()),
            Self::Decode { message, .. } => write!(f, "undecodable response: {message}"),
            Self::Dropped { message, .. } => write!(f, "stream dropped: {message}"),
            Self::StreamError { error, .. } => write!(f, "stream error: {}", error.message),
            Self::ResponseFailed { message, .. } => write!(f, "response failed: {message}"),
        }
    }
}

impl std::error::Error for UpstreamError {}

/// Reads the server's wait hint: `retry-after-ms` (float milliseconds) first, then `Retry-After`
/// as seconds (floats allowed) or an HTTP date, like the OpenAI SDKs (openai-python's `_base_client.py`).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let raw = get("retry-after")?;
    if let Ok(secs) = raw.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(raw).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// OpenAI's rate-limit reset durations (`1s`, `120ms`, `6m0s`, `1h2m3.5s`).
pub(super) fn parse_reset(raw: &str) -> Option<Duration> {
    let mut total = 0.0f64;
    let mut rest = raw.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..end].parse().ok()?;
        rest = &rest[end..];
        let (unit, scale) = if let Some(r) = rest.strip_prefix("ms") {
            (r, 0.001)
        } else if let Some(r) = rest.strip_prefix('s') {
            (r, 1.0)
        } else if let Some(r) = rest.strip_prefix('m') {
            (r, 60.0)
        } else if let Some(r) = rest.strip_prefix('h') {
            (r, 3600.0)
        } else {
            return None;
        };
        total += value * scale;
        rest = unit;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// When the exhausted rate-limit bucket refills, from OpenAI's `x-ratelimit-*` headers.
pub(super) fn rate_limit_reset(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let bucket = |kind: &str| {
        let reset = get(&format!("x-ratelimit-reset-{kind}")).and_then(parse_reset);
        let empty = get(&format!("x-ratelimit-remaining-{kind}"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            == Some(0);
        (reset, empty)
    };
    match (bucket("requests"), bucket("tokens")) {
        ((Some(r), true), _) | (_, (Some(r), true)) => Some(r),
        ((r, _), (t, _)) => r.max(t),
    }
}

/// Finds OpenAI's "Please try again in 6.57s" / "in 120ms" hint in a rate-limit message, used
/// when a 429 or in-stream rate-limit error comes without a Retry-After header.
pub fn retry_hint_in_message(message: &str) -> Option<Duration> {
    let rest = &message[message.find("try again in ")? + "try again in ".len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let value: f64 = rest[..end].parse().ok()?;
    let unit = &rest[end..];
    let secs = if unit.starts_with("ms") {
        value / 1000.0
    } else if unit.starts_with('s') {
        value
    } else if unit.starts_with('m') {
        value * 60.0
    } else {
        return None;
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn parses_error_bodies() {
        let e = ApiError::from_body(br#"{"error":{"message":"m","type":"invalid_request_error","param":"model","code":"model_not_found"}}"#).unwrap();
        assert_eq!(e.code.as_deref(), Some("model_not_found"));
        assert_eq!(e.param.as_deref(), Some("model"));
        assert_eq!(e.kind.as_deref(), Some("invalid_request_error"));
        assert!(ApiError::from_body(b"<html>bad gateway</html>").is_none());
        let e =
            ApiError::from_body(br#"{"error":{"message":"x","type":"t","param":null,"code":429}}"#)
                .unwrap();
        assert_eq!(e.code.as_deref(), Some("429"));
    }

    #[test]
    fn parses_both_error_event_shapes() {
        let nested = serde_json::json!({"type":"error","sequence_number":2,"error":{"type":"tokens","code":"rate_limit_exceeded","message":"slow down","param":null}});
        let e = ApiError::from_error_event(&nested);
        assert_eq!(
            (e.code.as_deref(), e.message.as_str()),
            (Some("rate_limit_exceeded"), "slow down")
        );
        let flat = serde_json::json!({"type":"error","sequence_number":2,"code":"server_error","message":"boom","param":null});
        let e = ApiError::from_error_event(&flat);
        assert_eq!(
            (e.code.as_deref(), e.message.as_str()),
            (Some("server_error"), "boom")
        );
    }

    #[test]
    fn quota_is_not_rate_limit() {
        let q = ApiError {
            kind: Some("insufficient_quota".into()),
            ..Default::default()
        };
        assert!(q.is_quota());
        let r = ApiError {
            code: Some("rate_limit_exceeded".into()),
            ..Default::default()
        };
        assert!(!r.is_quota());
    }

    #[test]
    fn retry_after_headers() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("1500.5"));
        assert_eq!(retry_after(&h), Some(Duration::from_micros(1_500_500)));
        let mut h = HeaderMap::new();
        let later = std::time::SystemTime::now() + Duration::from_secs(30);
        h.insert(
            "retry-after",
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn rate_limit_resets() {
        assert_eq!(parse_reset("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_reset("120ms"), Some(Duration::from_millis(120)));
        assert_eq!(parse_reset("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_reset("soon"), None);
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset-requests", HeaderValue::from_static("2s"));
        h.insert("x-ratelimit-reset-tokens", HeaderValue::from_static("30s"));
        assert_eq!(rate_limit_reset(&h), Some(Duration::from_secs(30)));
        h.insert(
            "x-ratelimit-remaining-requests",
            HeaderValue::from_static("0"),
        );
        assert_eq!(
            rate_limit_reset(&h),
            Some(Duration::from_secs(2)),
            "the empty bucket"
        );
    }

    #[test]
    fn retry_hint_from_message() {
        assert_eq!(
            retry_hint_in_message("Rate limit reached ... Please try again in 6.57s. Visit"),
            Some(Duration::from_secs_f64(6.57))
        );
        assert_eq!(
            retry_hint_in_message("try again in 120ms."),
            Some(Duration::from_millis(120))
        );
        assert_eq!(retry_hint_in_message("no hint"), None);
    }
}
