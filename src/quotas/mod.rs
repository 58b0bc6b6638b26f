//! Per-caller and per-profile quotas (`--limits-file`): requests and tokens per minute, and
//! streaming calls at once, checked before any upstream call. With `--redis-url` every replica
//! counts in the same place (`crate::store`); without it each replica counts in memory.
//!
//! A call is checked against its caller (its own entry or `default`) and its profile (if the
//! profile has an entry): tokens first (a subject in debt from earlier usage is refused), then
//! a concurrency lease for a streaming call, then the request itself. A refusal gives back what
//! the earlier checks took. The tokens of a call are charged when its usage is known
//! ([`Admitted::record`]).
//!
//! When Redis cannot be reached the checks it would make are skipped (fail-open), or the call is
//! refused with UNAVAILABLE (`--limits-fail-closed`).

pub mod rate;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tonic::Status;

use crate::{
    config::limits::{Limit, Quotas as Limits},
    error,
    store::{Down, Rate, Store},
    telemetry::Metrics,
    usage::Usage,
};

/// How long a concurrency lease lives in Redis without renewal (a replica that dies stops
/// renewing, so its leases free themselves).
const LEASE_TTL: Duration = Duration::from_secs(30);

/// How long a caller refused for concurrency is told to wait.
const STREAM_RETRY: Duration = Duration::from_secs(1);

/// What a subject is limited on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    Requests,
    Tokens,
    Streams,
}

impl Measure {
    fn name(self) -> &'static str {
        match self {
            Self::Requests => "requests_per_minute",
            Self::Tokens => "tokens_per_minute",
            Self::Streams => "concurrent_streams",
        }
    }
}

/// One limited subject of a call: `caller:NAME` or `profile:NAME`, with its limits.
#[derive(Debug, Clone)]
struct Subject {
    name: String,
    limit: Limit,
}

#[derive(Debug, Default)]
struct Memory {
    /// Theoretical arrival times (µs since the epoch) by counter key.
    tats: HashMap<String, u64>,
    /// Streaming calls in flight by subject.
    streams: HashMap<String, u64>,
}

enum Backend {
    Memory(Mutex<Memory>),
    Redis(Store),
}

struct Inner {
    limits: Limits,
    backend: Backend,
    fail_closed: bool,
    metrics: Metrics,
    /// Leases this replica holds in Redis, for renewal.
    held: Mutex<HashMap<u64, (String, String)>>,
    next_lease: AtomicU64,
    /// This replica's id, in lease ids.
    replica: String,
}

/// The quota checks of one gateway. Cheap to clone.
#[derive(Clone)]
pub struct Quotas {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quotas")
            .field("limits", &self.inner.limits)
            .field("shared", &matches!(self.inner.backend, Backend::Redis(_)))
            .finish()
    }
}

/// What one admitted call holds: its subjects, to charge its tokens to, and its concurrency
/// leases, given back when it is dropped (when the call ends).
#[derive(Debug)]
pub struct Admitted {
    quotas: Quotas,
    subjects: Vec<Subject>,
    leases: Vec<Lease>,
}

#[derive(Debug)]
struct Lease {
    subject: String,
    key: String,
    id: u64,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// What a check said.
enum Checked {
    Fits(Duration),
    Refused(Duration),
    /// The shared store did not answer.
    Unknown,
}

impl Quotas {
    /// Quotas counted in this replica's memory.
    pub fn in_memory(limits: Limits, metrics: Metrics) -> Self {
        Self::with_backend(limits, Backend::Memory(Mutex::default()), false, metrics)
    }

    /// Quotas counted in `store`, shared with every replica using it; renews this replica's
    /// leases in the background for as long as the gateway runs.
    pub fn shared(limits: Limits, store: Store, fail_closed: bool, metrics: Metrics) -> Self {
        let quotas = Self::with_backend(limits, Backend::Redis(store), fail_closed, metrics);
        let weak = Arc::downgrade(&quotas.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(LEASE_TTL / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let Backend::Redis(store) = &inner.backend else {
                    return;
                };
                let leases: Vec<(String, String)> = inner
                    .held
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .cloned()
                    .collect();
                let _ = store.renew(&leases, LEASE_TTL).await;
            }
        });
        quotas
    }

    fn with_backend(limits: Limits, backend: Backend, fail_closed: bool, metrics: Metrics) -> Self {
        Self {
            inner: Arc::new(Inner {
                limits,
                backend,
                fail_closed,
                metrics,
                held: Mutex::default(),
                next_lease: AtomicU64::new(0),
                replica: format!("{:016x}", rand::random::<u64>()),
            }),
        }
    }

    fn key(&self, subject: &str, measure: Measure) -> String {
        match &self.inner.backend {
            Backend::Redis(store) => store.key(&["quota", subject, measure.name()]),
            Backend::Memory(_) => format!("{subject}:{}", measure.name()),
        }
    }

    /// One rate step on `subject`'s counter for `measure`.
    async fn rate(
        &self,
        subject: &str,
        measure: Measure,
        units: i64,
        limit: u64,
        force: bool,
    ) -> Checked {
        let key = self.key(subject, measure);
        match &self.inner.backend {
            Backend::Memory(memory) => {
                let mut memory = memory.lock().unwrap_or_else(|e| e.into_inner());
                let now = now_us();
                let tat = memory.tats.get(&key).copied().unwrap_or(0);
                match rate::step(tat, now, units, limit, force) {
                    Ok(new) => {
                        memory.tats.insert(key, new);
                        Checked::Fits(Duration::from_micros(new.saturating_sub(now)))
                    }
                    Err(wait) => Checked::Refused(wait),
                }
            }
            Backend::Redis(store) => match store.rate(&key, units, limit, force).await {
                Ok(Rate::Admitted(ahead)) => Checked::Fits(ahead),
                Ok(Rate::Refused(wait)) => Checked::Refused(wait),
                Err(Down) => Checked::Unknown,
            },
        }
    }

    /// Takes a concurrency lease on `subject`.
    async fn lease(&self, subject: &str, limit: u64) -> Result<Option<Lease>, Down> {
        let id = self.inner.next_lease.fetch_add(1, Ordering::Relaxed);
        let key = self.key(subject, Measure::Streams);
        let leased = match &self.inner.backend {
            Backend::Memory(memory) => {
                let mut memory = memory.lock().unwrap_or_else(|e| e.into_inner());
                let count = memory.streams.entry(key.clone()).or_insert(0);
                let fits = *count < limit;
                if fits {
                    *count += 1;
                }
                fits
            }
            Backend::Redis(store) => {
                let member = format!("{}:{id}", self.inner.replica);
                let leased = store.lease(&key, &member, limit, LEASE_TTL).await?;
                if leased {
                    self.inner
                        .held
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id, (key.clone(), member));
                }
                leased
            }
        };
        if leased {
            self.inner.metrics.quota_streams(subject, 1);
        }
        Ok(leased.then(|| Lease {
            subject: subject.to_owned(),
            key,
            id,
        }))
    }

    fn release(&self, lease: &Lease) {
        self.inner.metrics.quota_streams(&lease.subject, -1);
        match &self.inner.backend {
            Backend::Memory(memory) => {
                let mut memory = memory.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(count) = memory.streams.get_mut(&lease.key) {
                    *count = count.saturating_sub(1);
                }
            }
            Backend::Redis(store) => {
                let held = self
                    .inner
                    .held
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&lease.id);
                if let Some((key, member)) = held {
                    let store = store.clone();
                    tokio::spawn(async move {
                        let _ = store.release(&key, &member).await;
                    });
                }
            }
        }
    }

    /// The subjects of a call by `caller` under `profile` that have limits.
    fn subjects(&self, caller: &str, profile: &str) -> Vec<Subject> {
        let limits = &self.inner.limits;
        [
            (format!("caller:{caller}"), limits.of_caller(caller)),
            (format!("profile:{profile}"), limits.of_profile(profile)),
        ]
        .into_iter()
        .filter(|(_, limit)| !limit.is_empty())
        .map(|(name, limit)| Subject { name, limit })
        .collect()
    }

    /// Admits a call or refuses it before any upstream call: RESOURCE_EXHAUSTED with
    /// QuotaFailure and RetryInfo when over a limit; UNAVAILABLE when the shared store is down
    /// and the quotas fail closed.
    pub async fn admit(
        &self,
        caller: &str,
        profile: &str,
        streaming: bool,
    ) -> Result<Admitted, Status> {
        let subjects = self.subjects(caller, profile);
        let mut admitted = Admitted {
            quotas: self.clone(),
            subjects: subjects.clone(),
            leases: Vec::new(),
        };
        let mut charged: Vec<(String, u64)> = Vec::new();
        let outcome = self
            .check(&subjects, streaming, &mut admitted, &mut charged)
            .await;
        if let Err(refusal) = outcome {
            // Give back what the earlier checks took; `admitted` frees its leases when dropped.
            for (subject, limit) in charged {
                self.rate(&subject, Measure::Requests, -1, limit, true)
                    .await;
            }
            return Err(refusal);
        }
        Ok(admitted)
    }

    async fn check(
        &self,
        subjects: &[Subject],
        streaming: bool,
        admitted: &mut Admitted,
        charged: &mut Vec<(String, u64)>,
    ) -> Result<(), Status> {
        let unknown = |this: &Self| {
            if this.inner.fail_closed {
                Err(error::limits_unavailable())
            } else {
                Ok(())
            }
        };
        for subject in subjects {
            if let Some(limit) = subject.limit.tokens_per_minute {
                match self
                    .rate(&subject.name, Measure::Tokens, 0, limit, false)
                    .await
                {
                    Checked::Fits(_) => {}
                    Checked::Refused(wait) => {
                        return Err(self.refuse(subject, Measure::Tokens, limit, wait));
                    }
                    Checked::Unknown => unknown(self)?,
                }
            }
        }
        if streaming {
            for subject in subjects {
                if let Some(limit) = subject.limit.concurrent_streams {
                    match self.lease(&subject.name, limit).await {
                        Ok(Some(lease)) => admitted.leases.push(lease),
                        Ok(None) => {
                            return Err(self.refuse(
                                subject,
                                Measure::Streams,
                                limit,
                                STREAM_RETRY,
                            ));
                        }
                        Err(Down) => unknown(self)?,
                    }
                }
            }
        }
        for subject in subjects {
            if let Some(limit) = subject.limit.requests_per_minute {
                match self
                    .rate(&subject.name, Measure::Requests, 1, limit, false)
                    .await
                {
                    Checked::Fits(ahead) => {
                        charged.push((subject.name.clone(), limit));
                        self.inner.metrics.quota_usage(
                            &subject.name,
                            Measure::Requests.name(),
                            rate::in_use(ahead.as_micros() as u64, 0, limit),
                        );
                    }
                    Checked::Refused(wait) => {
                        return Err(self.refuse(subject, Measure::Requests, limit, wait));
                    }
                    Checked::Unknown => unknown(self)?,
                }
            }
        }
        Ok(())
    }

    fn refuse(&self, subject: &Subject, measure: Measure, limit: u64, wait: Duration) -> Status {
        self.inner
            .metrics
            .quota_refused(&subject.name, measure.name());
        error::quota_exceeded(&subject.name, measure.name(), limit, wait)
    }
}

impl Admitted {
    /// Charges a finished response's tokens (input plus output) to the call's subjects.
    pub async fn record(&self, usage: &Usage) {
        let tokens = usage.total().max(0);
        for subject in &self.subjects {
            let Some(limit) = subject.limit.tokens_per_minute else {
                continue;
            };
            if let Checked::Fits(ahead) = self
                .quotas
                .rate(&subject.name, Measure::Tokens, tokens, limit, true)
                .await
            {
                self.quotas.inner.metrics.quota_usage(
                    &subject.name,
                    Measure::Tokens.name(),
                    rate::in_use(ahead.as_micros() as u64, 0, limit),
                );
            }
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        for lease in &self.leases {
            self.quotas.release(lease);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas(json: &str) -> Quotas {
        Quotas::in_memory(Limits::parse(json, "test").unwrap(), Metrics::new())
    }

    #[tokio::test]
    async fn requests_per_minute_per_caller() {
        let q = quotas(r#"{"default":{"requests_per_minute":2},"callers":{"vip":{}}}"#);
        assert!(q.admit("a", "p", false).await.is_ok());
        assert!(q.admit("a", "p", false).await.is_ok());
        let refused = q.admit("a", "p", false).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            q.admit("b", "p", false).await.is_ok(),
            "another caller has its own allowance"
        );
        for _ in 0..5 {
            assert!(
                q.admit("vip", "p", false).await.is_ok(),
                "an empty entry is no limit"
            );
        }
    }

    #[tokio::test]
    async fn streams_are_leased_and_given_back() {
        let q = quotas(r#"{"profiles":{"p":{"concurrent_streams":1}}}"#);
        let first = q.admit("a", "p", true).await.unwrap();
        assert!(
            q.admit("b", "p", true).await.is_err(),
            "one stream per profile"
        );
        assert!(
            q.admit("b", "p", false).await.is_ok(),
            "unary calls do not count"
        );
        drop(first);
        assert!(q.admit("b", "p", true).await.is_ok());
    }

    #[tokio::test]
    async fn tokens_are_charged_after_the_call_and_a_refusal_gives_back_its_request() {
        let q = quotas(r#"{"default":{"tokens_per_minute":100,"requests_per_minute":3}}"#);
        let call = q.admit("a", "p", false).await.unwrap();
        call.record(&Usage {
            input_tokens: 120,
            output_tokens: 30,
            ..Usage::default()
        })
        .await;
        let refused = q.admit("a", "p", false).await.unwrap_err();
        let details = tonic_types::StatusExt::get_error_details(&refused);
        let violation = &details.quota_failure().unwrap().violations[0];
        assert_eq!(violation.subject, "caller:a");
        assert!(violation.description.contains("tokens_per_minute"));
        assert!(details.retry_info().unwrap().retry_delay.unwrap() > Duration::from_secs(20));
    }
}
