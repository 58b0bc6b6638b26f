//! Which failed upstream calls are retried, and after how long.
//!
//! Mirrors the OpenAI SDKs (openai-python's `_base_client.py`): exponential backoff `initial * 2^n` capped at
//! `max_backoff`, minus 0-25 % jitter, unless the server said how long to wait
//! (`retry-after-ms`, then `Retry-After` as seconds or an HTTP date). Unlike the SDKs it never
//! retries a quota error (`insufficient_quota`: waiting does not help) and never waits longer
//! than `max_retry_after`: such a call fails at once so the caller sees the RetryInfo.

use std::time::Duration;

use rand::Rng;

use super::RetryPolicy;
use super::UpstreamError;

/// Whether `err` is worth another attempt: nothing was sent to the caller yet (the client only
/// retries before returning a response), and the failure is transient.
pub fn is_retryable(err: &UpstreamError) -> bool {
    match err {
        UpstreamError::Connect { .. } => true,
        UpstreamError::Status { status, error, .. } => match status {
            429 => !error.as_deref().is_some_and(super::ApiError::is_quota),
            408 | 500 | 502 | 503 | 504 => true,
            _ => false,
        },
        _ => false,
    }
}

/// How long to wait before retry number `retries_done + 1`, or `None` when `err` must not be
/// retried (not transient, no retries left, or the server asked for a longer wait than the
/// policy honours).
pub fn delay(policy: &RetryPolicy, retries_done: u32, err: &UpstreamError) -> Option<Duration> {
    if retries_done >= policy.max_retries || !is_retryable(err) {
        return None;
    }
    if let Some(asked) = err.meta().and_then(|m| m.retry_after) {
        return (asked <= policy.max_retry_after).then_some(asked);
    }
    let exp = policy
        .initial_backoff
        .saturating_mul(2u32.saturating_pow(retries_done))
        .min(policy.max_backoff);
    let jitter = 1.0 - 0.25 * rand::rng().random::<f64>();
    Some(exp.mul_f64(jitter))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::{ApiError, UpstreamMeta};

    fn status(status: u16, code: Option<&str>, retry_after: Option<Duration>) -> UpstreamError {
        UpstreamError::Status {
            status,
            error: code.map(|c| {
                Box::new(ApiError {
                    message: "m".into(),
                    kind: Some(c.into()),
                    param: None,
                    code: Some(c.into()),
                })
            }),
            meta: UpstreamMeta {
                request_id: None,
                retry_after,
                rate_limit_reset: None,
            },
        }
    }

    #[test]
    fn retryable_statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable(&status(s, None, None)), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 422] {
            assert!(!is_retryable(&status(s, None, None)), "{s}");
        }
        assert!(!is_retryable(&status(
            429,
            Some("insufficient_quota"),
            None
        )));
        assert!(is_retryable(&UpstreamError::Connect {
            message: "refused".into()
        }));
        assert!(!is_retryable(&UpstreamError::Dropped {
            message: "mid-stream".into(),
            meta: UpstreamMeta::default()
        }));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let p = RetryPolicy {
            max_retries: 10,
            ..RetryPolicy::default()
        };
        let err = status(503, None, None);
        for (n, base) in [
            (0, 500),
            (1, 1000),
            (2, 2000),
            (3, 4000),
            (4, 8000),
            (6, 8000),
        ] {
            let d = delay(&p, n, &err).unwrap();
            let base = Duration::from_millis(base);
            assert!(d <= base && d >= base.mul_f64(0.75), "retry {n}: {d:?}");
        }
    }

    #[test]
    fn server_delay_wins_up_to_the_cap() {
        let p = RetryPolicy::default();
        let asked = status(
            429,
            Some("rate_limit_exceeded"),
            Some(Duration::from_secs(2)),
        );
        assert_eq!(delay(&p, 0, &asked), Some(Duration::from_secs(2)));
        let too_long = status(429, None, Some(Duration::from_secs(600)));
        assert_eq!(delay(&p, 0, &too_long), None);
    }

    #[test]
    fn retries_run_out() {
        let p = RetryPolicy::default();
        let err = status(500, None, None);
        assert!(delay(&p, 1, &err).is_some());
        assert!(delay(&p, 2, &err).is_none());
    }
}
