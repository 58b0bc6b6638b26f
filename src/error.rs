//! The one place that chooses a gRPC status for a failure (the error table in the README). Every status carries exactly one `ErrorInfo` (domain
//! `openai-grpc-gateway`, an UPPER_SNAKE reason, and the upstream facts in its metadata),
//! `RetryInfo` where waiting helps, `BadRequest` field violations for invalid input and
//! `RequestInfo` with the upstream request id. Messages say what to do (a wrong key, a
//! missing permission, an unknown model, a rate limit). Nothing here ever echoes a secret: upstream messages pass [`redact`].

use std::{collections::HashMap, time::Duration};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    openai::{
        ApiError, KeyOwner, Origin, TimeLimit, UpstreamError, UpstreamMeta, retry_hint_in_message,
    },
    owners::Kind,
};

/// The `ErrorInfo.domain` of every error this service returns.
pub const DOMAIN: &str = "openai-grpc-gateway";

/// When OpenAI signals a rate limit without saying how long to wait, callers are told this.
const DEFAULT_RATE_LIMIT_DELAY: Duration = Duration::from_secs(1);

/// One problem with a request field, found before any upstream call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The proto path of the field, e.g. `metadata` or `tools[2].function.name`.
    pub field: String,
    /// What is wrong and what is allowed.
    pub description: String,
}

impl Violation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// The one builder of a status: `code`, `message`, and the details every error carries (exactly
/// one ErrorInfo with `reason`, this domain and `metadata`), plus what `extra` adds.
fn status(
    code: Code,
    reason: &str,
    message: impl Into<String>,
    metadata: HashMap<String, String>,
    extra: impl FnOnce(&mut ErrorDetails),
) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, DOMAIN, metadata);
    extra(&mut details);
    Status::with_error_details(code, message, details)
}

/// A status with an ErrorInfo and nothing else.
fn plain(code: Code, reason: &str, message: impl Into<String>) -> Status {
    status(code, reason, message, HashMap::new(), |_| {})
}

/// INVALID_ARGUMENT for local validation failures, with one `BadRequest` violation per problem.
pub fn invalid_argument(violations: &[Violation]) -> Status {
    let summary = violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ");
    status(
        Code::InvalidArgument,
        "INVALID_REQUEST",
        format!("invalid request: {summary}"),
        HashMap::new(),
        |d| {
            for v in violations {
                d.add_bad_request_violation(&v.field, &v.description);
            }
        },
    )
}

/// RESOURCE_EXHAUSTED for a load-shedding refusal (`reason`, `what` names the limit); retry
/// after `retry`.
fn shed(reason: &str, what: &str, retry: Duration) -> Status {
    status(
        Code::ResourceExhausted,
        reason,
        format!("the gateway is at its limit of {what}; retry shortly"),
        HashMap::new(),
        |d| {
            d.set_retry_info(Some(retry));
        },
    )
}

/// `--max-in-flight` upstream calls are running: RESOURCE_EXHAUSTED (`OVERLOADED`).
pub fn overloaded(retry: Duration) -> Status {
    shed("OVERLOADED", "upstream calls in flight", retry)
}

/// `--max-streams-per-connection` calls are running on the caller's connection:
/// RESOURCE_EXHAUSTED (`TOO_MANY_STREAMS_ON_CONNECTION`).
pub fn too_many_streams_on_connection(retry: Duration) -> Status {
    shed(
        "TOO_MANY_STREAMS_ON_CONNECTION",
        "calls on one connection (open another connection)",
        retry,
    )
}

/// The `x-openai-profile` the call names does not exist: INVALID_ARGUMENT (`UNKNOWN_PROFILE`),
/// listing the profiles there are.
pub fn unknown_profile(header: &str, name: &str, known: &[&str]) -> Status {
    plain(
        Code::InvalidArgument,
        "UNKNOWN_PROFILE",
        format!(
            "{header}: no profile {name:?}; this gateway has {}",
            known.join(", ")
        ),
    )
}

/// The caller may not use the profile: PERMISSION_DENIED (`PROFILE_NOT_ALLOWED`).
pub fn profile_not_allowed(name: &str) -> Status {
    plain(
        Code::PermissionDenied,
        "PROFILE_NOT_ALLOWED",
        format!("this caller may not use the profile {name:?}"),
    )
}

/// The caller sent its own OpenAI key but the gateway does not accept them: PERMISSION_DENIED
/// (`CALLER_KEYS_DISABLED`).
pub fn caller_keys_disabled(header: &str) -> Status {
    plain(
        Code::PermissionDenied,
        "CALLER_KEYS_DISABLED",
        format!("{header}: this gateway does not accept callers' own OpenAI keys"),
    )
}

/// The caller's own OpenAI key cannot be used (empty, or not a header value):
/// INVALID_ARGUMENT (`INVALID_CALLER_KEY`).
pub fn invalid_caller_key(header: &str) -> Status {
    plain(
        Code::InvalidArgument,
        "INVALID_CALLER_KEY",
        format!("{header}: not a usable key"),
    )
}

/// UNAUTHENTICATED for a caller without an accepted token (the gateway's own authentication,
/// not OpenAI's): `missing` when no `authorization` metadata was sent at all.
pub fn caller_unauthenticated(missing: bool) -> Status {
    plain(
        Code::Unauthenticated,
        "CALLER_UNAUTHENTICATED",
        if missing {
            "missing caller credentials: send `authorization: Bearer <token>` metadata"
        } else {
            "the caller token in `authorization` is not accepted by this gateway"
        },
    )
}

/// UNAVAILABLE for calls still running when the drain timeout of a shutdown passes.
pub fn shutting_down() -> Status {
    plain(
        Code::Unavailable,
        "SHUTTING_DOWN",
        "server shutting down; retry on another instance",
    )
}

/// INTERNAL for a state the gateway's own code should never reach (a bug, reported rather than
/// panicking).
pub fn internal(message: &str) -> Status {
    plain(
        Code::Internal,
        "INTERNAL",
        format!("internal gateway error: {message}"),
    )
}

/// RESOURCE_EXHAUSTED for a caller over its quota (`--limits-file`), before any upstream call:
/// `QuotaFailure` names the subject (`caller:NAME` or `profile:NAME`) and the limit, `RetryInfo`
/// when the allowance frees up.
pub fn quota_exceeded(subject: &str, limit_name: &str, limit: u64, retry: Duration) -> Status {
    let mut metadata = HashMap::new();
    metadata.insert("subject".to_owned(), subject.to_owned());
    metadata.insert("limit".to_owned(), limit_name.to_owned());
    status(
        Code::ResourceExhausted,
        "QUOTA_EXCEEDED",
        format!(
            "{subject} is over its {limit_name} quota of {limit} (this gateway's --limits-file); retry after the delay in RetryInfo"
        ),
        metadata,
        |d| {
            d.add_quota_failure_violation(subject, format!("{limit_name}: {limit}"));
            d.set_retry_info(Some(retry));
        },
    )
}

/// UNAVAILABLE when the shared store (Redis) cannot be reached and the quotas fail closed
/// (`--limits-fail-closed`).
pub fn limits_unavailable() -> Status {
    status(
        Code::Unavailable,
        "LIMITS_UNAVAILABLE",
        "the gateway cannot check its quotas (Redis is unreachable) and is configured to refuse calls until it can; retry shortly",
        HashMap::new(),
        |d| {
            d.set_retry_info(Some(Duration::from_secs(1)));
        },
    )
}

/// UNAVAILABLE when caller isolation needs the shared store (Redis) to tell who owns an id and
/// it cannot be reached.
pub fn ownership_unavailable(kind: Kind, id: &str) -> Status {
    status(
        Code::Unavailable,
        "OWNERSHIP_UNAVAILABLE",
        format!(
            "the gateway cannot tell who owns {} {id:?} right now (Redis is unreachable); retry shortly",
            kind.noun()
        ),
        HashMap::new(),
        |d| {
            d.set_retry_info(Some(Duration::from_secs(1)));
        },
    )
}

/// Whose key OpenAI rejected, and what to do about it, for 401 and 403 messages.
fn key_phrases(key: &KeyOwner) -> (String, &'static str) {
    match key {
        KeyOwner::Gateway => (
            "the gateway's API key".to_owned(),
            "update the gateway's OPENAI_API_KEY",
        ),
        KeyOwner::Profile(name) => (
            format!("the API key of profile {name:?}"),
            "update that profile's api_key_file (--profiles-file)",
        ),
        KeyOwner::Caller => (
            "the API key you sent in x-openai-api-key".to_owned(),
            "send a valid key",
        ),
    }
}

/// The status for a failed upstream call. `origin` names the upstream in connection errors and
/// whose key was refused in 401 / 403 messages.
pub fn upstream(err: &UpstreamError, origin: &Origin) -> Status {
    upstream_status(err, origin, None)
}

/// [`upstream`] for a call about one stored object: a 404 says the object may not exist, may
/// have been deleted or was created with `store: false`, and the metadata names it.
pub fn upstream_about(err: &UpstreamError, origin: &Origin, kind: Kind, id: &str) -> Status {
    upstream_status(err, origin, Some((kind, id)))
}

/// The message for a stored object the caller cannot see: the same whether it never existed,
/// was deleted, belongs to another caller or was never issued by the gateway.
fn missing(kind: Kind, id: &str) -> String {
    let noun = kind.noun();
    format!(
        "no {noun} {id:?}: it may not exist, may have been deleted, or was created with `store: false` (only the caller that created a {noun} through this gateway can use it)"
    )
}

/// NOT_FOUND for an id the caller may not use: another caller's, or one this gateway did not
/// create (without `--allow-foreign-ids`). No upstream call was made, and the message is the
/// one an unknown id gets, so it does not tell whether the id exists.
pub fn not_found(kind: Kind, id: &str) -> Status {
    let reason = match kind {
        Kind::Response => "RESPONSE_NOT_FOUND",
        Kind::Conversation => "CONVERSATION_NOT_FOUND",
    };
    plain(Code::NotFound, reason, missing(kind, id))
}

/// FAILED_PRECONDITION for cancelling a response that was not created with `background: true`
/// (OpenAI answers 400); the message carries OpenAI's.
pub fn not_cancellable(err: &UpstreamError, id: &str) -> Status {
    let said = match err {
        UpstreamError::Status { error: Some(e), .. } => {
            format!(" OpenAI said: {}", redact(&e.message))
        }
        _ => String::new(),
    };
    status_with_request_info(
        Code::FailedPrecondition,
        "RESPONSE_NOT_CANCELLABLE",
        format!(
            "response {id:?} cannot be cancelled: only responses created with `background: true` can be.{said}"
        ),
        upstream_metadata(err),
        err,
    )
}

/// UNAVAILABLE when a background stream broke and the gateway's own attempts to resume it
/// failed, or the caller's deadline leaves no time for the next one (`out_of_time`): the
/// metadata says where to resume (`responseId`, `startingAfter`) with `ResumeResponse`.
pub fn resume_failed(
    err: &UpstreamError,
    origin: &Origin,
    id: &str,
    starting_after: Option<i64>,
    attempts: u32,
    out_of_time: bool,
) -> Status {
    let mut metadata = upstream_metadata(err);
    metadata.insert("responseId".into(), id.to_owned());
    if let Some(n) = starting_after {
        metadata.insert("startingAfter".into(), n.to_string());
    }
    metadata.insert("resumeAttempts".into(), attempts.to_string());
    let cause = upstream(err, origin);
    let why = if out_of_time {
        format!(
            "the caller's deadline leaves no time for another attempt after {attempts} to resume it"
        )
    } else {
        format!("{attempts} attempts to resume it failed")
    };
    status_with_request_info(
        Code::Unavailable,
        "RESUME_FAILED",
        format!(
            "the background stream of response {id:?} broke and {why} ({}); call ResumeResponse with response_id {id:?} and the last sequence_number received",
            cause.message()
        ),
        metadata,
        err,
    )
}

/// ABORTED when a background response being streamed was cancelled (by `CancelResponse` or
/// anyone with access to it): the stream cannot go on.
pub fn background_cancelled(id: &str) -> Status {
    let mut metadata = HashMap::new();
    metadata.insert("responseId".into(), id.to_owned());
    status(
        Code::Aborted,
        "RESPONSE_CANCELLED",
        format!("response {id:?} was cancelled; its stream ended"),
        metadata,
        |_| {},
    )
}

/// The upstream facts of `err` as ErrorInfo metadata.
fn upstream_metadata(err: &UpstreamError) -> HashMap<String, String> {
    let mut metadata = HashMap::new();
    if let Some(id) = err.meta().and_then(|m| m.request_id.as_ref()) {
        metadata.insert("upstreamRequestId".to_owned(), id.clone());
    }
    if let UpstreamError::Status { status, error, .. } = err {
        metadata.insert("upstreamHttpStatus".into(), status.to_string());
        if let Some(e) = error {
            insert_api_error(&mut metadata, e);
        }
    }
    metadata
}

/// A status whose details add `RequestInfo` with the upstream request id of `err`.
fn status_with_request_info(
    code: Code,
    reason: &str,
    message: String,
    metadata: HashMap<String, String>,
    err: &UpstreamError,
) -> Status {
    let request_id = err.meta().and_then(|m| m.request_id.clone());
    status(code, reason, message, metadata, |d| {
        if let Some(id) = &request_id {
            d.set_request_info(id, "");
        }
    })
}

fn upstream_status(err: &UpstreamError, origin: &Origin, about: Option<(Kind, &str)>) -> Status {
    let base_url = origin.base_url.as_str();
    let (whose_key, fix_key) = key_phrases(&origin.key);
    let mut metadata = HashMap::new();
    let empty = UpstreamMeta::default();
    let meta = err.meta().unwrap_or(&empty);
    if let Some(id) = &meta.request_id {
        metadata.insert("upstreamRequestId".to_owned(), id.clone());
    }
    let mut retry: Option<Duration> = None;
    let mut violations: Vec<Violation> = Vec::new();

    let (code, reason, message) = match err {
        UpstreamError::Status { status, error, .. } => {
            metadata.insert("upstreamHttpStatus".into(), status.to_string());
            if let Some(e) = error {
                insert_api_error(&mut metadata, e);
                if let Some(param) = &e.param
                    && matches!(status, 400 | 413 | 422)
                {
                    violations.push(Violation::new(param, redact(&e.message)));
                }
            }
            let said = error
                .as_ref()
                .map(|e| format!(" OpenAI said: {}", redact(&e.message)))
                .unwrap_or_default();
            let quota = error.as_deref().is_some_and(ApiError::is_quota);
            match status {
                400 | 413 | 422 => (
                    Code::InvalidArgument,
                    "UPSTREAM_INVALID_REQUEST",
                    format!(
                        "OpenAI rejected the request as invalid (HTTP {status}): fix the field it names and try again.{said}"
                    ),
                ),
                401 => (
                    Code::Unauthenticated,
                    "UPSTREAM_UNAUTHENTICATED",
                    format!(
                        "OpenAI rejected {whose_key} (HTTP 401): the key is missing, mistyped or revoked. Create a new key in OpenAI and {fix_key}.{said}"
                    ),
                ),
                403 => (
                    Code::PermissionDenied,
                    "UPSTREAM_PERMISSION_DENIED",
                    format!(
                        "{whose_key} has no access to this model or endpoint (HTTP 403): a restricted key may lack the permission, or the organization/project may not allow it. Update the key's permissions in OpenAI, or use a key with access.{said}"
                    ),
                ),
                404 => (
                    Code::NotFound,
                    "UPSTREAM_NOT_FOUND",
                    match about {
                        Some((kind, id)) => {
                            format!("OpenAI has {} (HTTP 404).{said}", missing(kind, id))
                        }
                        None => format!(
                            "OpenAI could not find the resource (HTTP 404): check the model id (it may be wrong or not available to your account) or the previous_response_id.{said}"
                        ),
                    },
                ),
                409 => (
                    Code::Aborted,
                    "UPSTREAM_CONFLICT",
                    format!("OpenAI reported a conflict (HTTP 409); retry the request.{said}"),
                ),
                429 if quota => (
                    Code::ResourceExhausted,
                    "UPSTREAM_QUOTA_EXCEEDED",
                    format!(
                        "OpenAI quota exceeded (HTTP 429): waiting will not help. Check the OpenAI plan and billing settings.{said}"
                    ),
                ),
                429 => {
                    retry = Some(rate_limit_delay(meta, error.as_deref()));
                    (
                        Code::ResourceExhausted,
                        "UPSTREAM_RATE_LIMITED",
                        format!(
                            "OpenAI rate limit reached (HTTP 429): reduce concurrency and retry after the delay in RetryInfo.{said}"
                        ),
                    )
                }
                504 => (
                    Code::DeadlineExceeded,
                    "UPSTREAM_TIMEOUT",
                    format!("OpenAI timed out (HTTP 504); retry later.{said}"),
                ),
                408 | 500..=599 => {
                    retry = meta.retry_after;
                    (
                        Code::Unavailable,
                        "UPSTREAM_UNAVAILABLE",
                        format!("OpenAI is unavailable (HTTP {status}); retry later.{said}"),
                    )
                }
                _ => (
                    Code::Unknown,
                    "UPSTREAM_UNEXPECTED_STATUS",
                    format!("OpenAI answered with an unexpected HTTP {status}.{said}"),
                ),
            }
        }
        UpstreamError::Connect { message } => (
            Code::Unavailable,
            "UPSTREAM_UNREACHABLE",
            format!(
                "cannot reach OpenAI at {base_url}: {}; check OPENAI_BASE_URL and the network",
                redact(message)
            ),
        ),
        UpstreamError::Timeout {
            limit: TimeLimit::CallerDeadline,
        } => (
            Code::DeadlineExceeded,
            "DEADLINE_EXCEEDED",
            "the call's deadline passed; the upstream request was aborted".to_owned(),
        ),
        UpstreamError::Timeout { limit } => (
            Code::DeadlineExceeded,
            "UPSTREAM_TIMEOUT",
            format!(
                "OpenAI at {base_url} did not answer in time: {} passed; the upstream request was aborted",
                limit.describe()
            ),
        ),
        UpstreamError::Decode { message, .. } => (
            Code::Internal,
            "UPSTREAM_UNDECODABLE",
            format!(
                "OpenAI sent something the gateway cannot decode: {}",
                redact(message)
            ),
        ),
        UpstreamError::Dropped { message, .. } => (
            Code::Unavailable,
            "UPSTREAM_CONNECTION_LOST",
            format!(
                "the connection to OpenAI broke before the response finished: {}",
                redact(message)
            ),
        ),
        UpstreamError::StreamError { error, .. } => {
            insert_api_error(&mut metadata, error);
            let (code, reason) = stream_error_code(error);
            if code == Code::ResourceExhausted && !error.is_quota() {
                retry = Some(rate_limit_delay(meta, Some(error)));
            }
            (
                code,
                reason,
                format!(
                    "OpenAI reported an error in the stream: {}",
                    redact(&error.message)
                ),
            )
        }
        UpstreamError::ResponseFailed { code, message, .. } => {
            if let Some(c) = code {
                metadata.insert("upstreamErrorCode".into(), c.clone());
            }
            let grpc = failed_response_code(code.as_deref());
            if grpc == Code::ResourceExhausted {
                retry = Some(DEFAULT_RATE_LIMIT_DELAY);
            }
            (
                grpc,
                "UPSTREAM_RESPONSE_FAILED",
                format!("the model run failed: {}", redact(message)),
            )
        }
    };

    status(code, reason, message, metadata, |details| {
        if let Some(delay) = retry {
            details.set_retry_info(Some(delay));
        }
        for v in &violations {
            details.add_bad_request_violation(&v.field, &v.description);
        }
        if let Some(id) = &meta.request_id {
            details.set_request_info(id, "");
        }
    })
}

fn insert_api_error(metadata: &mut HashMap<String, String>, e: &ApiError) {
    for (key, value) in [
        ("upstreamErrorType", &e.kind),
        ("upstreamErrorCode", &e.code),
        ("upstreamErrorParam", &e.param),
    ] {
        if let Some(v) = value {
            metadata.insert(key.into(), v.clone());
        }
    }
}

fn rate_limit_delay(meta: &UpstreamMeta, error: Option<&ApiError>) -> Duration {
    meta.retry_after
        .or_else(|| error.and_then(|e| retry_hint_in_message(&e.message)))
        .unwrap_or(DEFAULT_RATE_LIMIT_DELAY)
}

/// The code for an in-stream `error` event, from its type and code.
fn stream_error_code(e: &ApiError) -> (Code, &'static str) {
    let is = |v: &Option<String>, names: &[&str]| v.as_deref().is_some_and(|s| names.contains(&s));
    if e.is_quota() {
        (Code::ResourceExhausted, "UPSTREAM_QUOTA_EXCEEDED")
    } else if is(&e.code, &["rate_limit_exceeded", "too_many_requests"])
        || is(
            &e.kind,
            &[
                "tokens",
                "requests",
                "rate_limit_error",
                "too_many_requests",
            ],
        )
    {
        (Code::ResourceExhausted, "UPSTREAM_RATE_LIMITED")
    } else if is(&e.kind, &["invalid_request_error"]) {
        (Code::InvalidArgument, "UPSTREAM_STREAM_ERROR")
    } else if is(&e.kind, &["server_error"]) || is(&e.code, &["server_error"]) {
        (Code::Unavailable, "UPSTREAM_STREAM_ERROR")
    } else {
        (Code::Unknown, "UPSTREAM_STREAM_ERROR")
    }
}

/// The code for a `response.failed` by its `error.code` (OpenAI's `ResponseErrorCode` values).
fn failed_response_code(code: Option<&str>) -> Code {
    match code {
        Some("rate_limit_exceeded") => Code::ResourceExhausted,
        Some("server_error") => Code::Unavailable,
        Some("vector_store_timeout") => Code::DeadlineExceeded,
        Some(c) if c.starts_with("invalid_") || c.contains("image") || c == "empty_image_file" => {
            Code::InvalidArgument
        }
        Some("bio_policy" | "data_residency_mismatch") => Code::FailedPrecondition,
        _ => Code::Unknown,
    }
}

/// Removes anything that looks like an OpenAI secret key (`sk-...`, including OpenAI's own
/// masked `sk-abc***xyz` echo in 401 messages) or a bearer token from text bound for a caller.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next_sk = rest.find("sk-");
        let next_bearer = rest.find("Bearer ");
        let (at, skip) = match (next_sk, next_bearer) {
            (Some(s), Some(b)) if b < s => (b, "Bearer ".len()),
            (Some(s), _) => (s, 0),
            (None, Some(b)) => (b, "Bearer ".len()),
            (None, None) => break,
        };
        out.push_str(&rest[..at + skip]);
        let token = &rest[at + skip..];
        let end = token
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ')' | ';'))
            .unwrap_or(token.len());
        let token_text = token[..end].trim_end_matches('.');
        out.push_str(if skip == 0 {
            "sk-<redacted>"
        } else {
            "<redacted>"
        });
        rest = &token[token_text.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, error: Option<ApiError>, meta: UpstreamMeta) -> Status {
        upstream(
            &UpstreamError::Status {
                status,
                error: error.map(Box::new),
                meta,
            },
            &origin(),
        )
    }

    fn origin() -> Origin {
        Origin {
            base_url: "http://u".into(),
            key: KeyOwner::Gateway,
        }
    }

    fn api(kind: &str, code: &str) -> ApiError {
        ApiError {
            message: "msg".into(),
            kind: Some(kind.into()),
            param: None,
            code: Some(code.into()),
        }
    }

    #[test]
    fn status_table() {
        let m = UpstreamMeta::default;
        for (http, code) in [
            (400, Code::InvalidArgument),
            (401, Code::Unauthenticated),
            (403, Code::PermissionDenied),
            (404, Code::NotFound),
            (409, Code::Aborted),
            (413, Code::InvalidArgument),
            (422, Code::InvalidArgument),
            (429, Code::ResourceExhausted),
            (500, Code::Unavailable),
            (502, Code::Unavailable),
            (503, Code::Unavailable),
            (504, Code::DeadlineExceeded),
        ] {
            assert_eq!(status(http, None, m()).code(), code, "HTTP {http}");
        }
    }

    #[test]
    fn rate_limit_has_retry_info_and_quota_has_none() {
        let meta = UpstreamMeta {
            request_id: Some("req_1".into()),
            retry_after: Some(Duration::from_secs(2)),
            rate_limit_reset: None,
        };
        let s = status(
            429,
            Some(api("requests", "rate_limit_exceeded")),
            meta.clone(),
        );
        let d = s.get_error_details();
        assert_eq!(
            d.retry_info().unwrap().retry_delay,
            Some(Duration::from_secs(2))
        );
        let info = d.error_info().unwrap();
        assert_eq!(info.reason, "UPSTREAM_RATE_LIMITED");
        assert_eq!(info.domain, DOMAIN);
        assert_eq!(info.metadata["upstreamHttpStatus"], "429");
        assert_eq!(info.metadata["upstreamRequestId"], "req_1");
        assert_eq!(d.request_info().unwrap().request_id, "req_1");

        let s = status(
            429,
            Some(api("insufficient_quota", "insufficient_quota")),
            meta,
        );
        let d = s.get_error_details();
        assert!(d.retry_info().is_none());
        assert_eq!(d.error_info().unwrap().reason, "UPSTREAM_QUOTA_EXCEEDED");
    }

    #[test]
    fn bad_request_names_the_param() {
        let mut e = api("invalid_request_error", "invalid_value");
        e.param = Some("temperature".into());
        let s = status(400, Some(e), UpstreamMeta::default());
        let details = s.get_error_details();
        assert_eq!(
            details.bad_request().unwrap().field_violations[0].field,
            "temperature"
        );
    }

    #[test]
    fn unauthenticated_message_explains_and_hides_key() {
        let e = ApiError {
            message: "Incorrect API key provided: sk-proj-abc***wxyz. You can find your API key at https://platform.openai.com/account/api-keys.".into(),
            kind: Some("invalid_request_error".into()),
            param: None,
            code: Some("invalid_api_key".into()),
        };
        let s = status(401, Some(e), UpstreamMeta::default());
        assert!(s.message().contains("missing, mistyped or revoked"));
        assert!(!s.message().contains("abc***"), "{}", s.message());
        assert!(s.message().contains("sk-<redacted>"));
    }

    #[test]
    fn redacts_keys_and_bearer_tokens() {
        assert_eq!(redact("key sk-live-123 bad"), "key sk-<redacted> bad");
        assert_eq!(
            redact("auth: Bearer abc.def, x"),
            "auth: Bearer <redacted>, x"
        );
        assert_eq!(redact("nothing here"), "nothing here");
        assert_eq!(redact("end sk-xyz."), "end sk-<redacted>.");
    }

    #[test]
    fn mid_stream_errors() {
        let e = UpstreamError::StreamError {
            error: Box::new(api("tokens", "rate_limit_exceeded")),
            meta: UpstreamMeta::default(),
        };
        let s = upstream(&e, &origin());
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert!(s.get_error_details().retry_info().is_some());
        let e = UpstreamError::Dropped {
            message: "eof".into(),
            meta: UpstreamMeta::default(),
        };
        assert_eq!(upstream(&e, &origin()).code(), Code::Unavailable);
        let e = UpstreamError::ResponseFailed {
            code: Some("server_error".into()),
            message: "The model failed".into(),
            meta: UpstreamMeta::default(),
        };
        assert_eq!(upstream(&e, &origin()).code(), Code::Unavailable);
    }

    #[test]
    fn a_401_says_whose_key_failed() {
        let err = UpstreamError::Status {
            status: 401,
            error: None,
            meta: UpstreamMeta::default(),
        };
        for (key, says) in [
            (KeyOwner::Gateway, "the gateway's API key"),
            (
                KeyOwner::Profile("staging".into()),
                "the API key of profile \"staging\"",
            ),
            (KeyOwner::Caller, "the API key you sent in x-openai-api-key"),
        ] {
            let origin = Origin {
                base_url: "http://u".into(),
                key,
            };
            let s = upstream(&err, &origin);
            assert_eq!(s.code(), Code::Unauthenticated);
            assert!(s.message().contains(says), "{}", s.message());
            assert!(s.message().contains("missing, mistyped or revoked"));
        }
    }

    #[test]
    fn every_refusal_has_its_reason() {
        let one_second = Duration::from_secs(1);
        for (s, code, reason) in [
            (
                overloaded(one_second),
                Code::ResourceExhausted,
                "OVERLOADED",
            ),
            (
                too_many_streams_on_connection(one_second),
                Code::ResourceExhausted,
                "TOO_MANY_STREAMS_ON_CONNECTION",
            ),
            (
                unknown_profile("h", "x", &["a", "b"]),
                Code::InvalidArgument,
                "UNKNOWN_PROFILE",
            ),
            (
                profile_not_allowed("a"),
                Code::PermissionDenied,
                "PROFILE_NOT_ALLOWED",
            ),
            (
                caller_keys_disabled("h"),
                Code::PermissionDenied,
                "CALLER_KEYS_DISABLED",
            ),
            (
                invalid_caller_key("h"),
                Code::InvalidArgument,
                "INVALID_CALLER_KEY",
            ),
            (
                caller_unauthenticated(true),
                Code::Unauthenticated,
                "CALLER_UNAUTHENTICATED",
            ),
            (shutting_down(), Code::Unavailable, "SHUTTING_DOWN"),
            (
                quota_exceeded("caller:a", "requests_per_minute", 10, one_second),
                Code::ResourceExhausted,
                "QUOTA_EXCEEDED",
            ),
            (
                limits_unavailable(),
                Code::Unavailable,
                "LIMITS_UNAVAILABLE",
            ),
            (
                ownership_unavailable(Kind::Response, "resp_1"),
                Code::Unavailable,
                "OWNERSHIP_UNAVAILABLE",
            ),
        ] {
            assert_eq!(s.code(), code, "{reason}");
            let info = s.get_error_details().error_info().unwrap().clone();
            assert_eq!(
                (info.reason.as_str(), info.domain.as_str()),
                (reason, DOMAIN)
            );
        }
    }

    #[test]
    fn connect_failure_is_unavailable() {
        let e = UpstreamError::Connect {
            message: "connection refused".into(),
        };
        let s = upstream(
            &e,
            &Origin {
                base_url: "http://127.0.0.1:1/v1".into(),
                key: KeyOwner::Gateway,
            },
        );
        assert_eq!(s.code(), Code::Unavailable);
        assert!(s.message().contains("http://127.0.0.1:1/v1"));
        assert_eq!(
            s.get_error_details().error_info().unwrap().reason,
            "UPSTREAM_UNREACHABLE"
        );
    }
}
