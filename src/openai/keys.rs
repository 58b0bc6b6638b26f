//! A profile's API keys, used in turn. A key that OpenAI rate-limits (429) cools down until its
//! bucket refills (`Retry-After`, else `x-ratelimit-reset-*`); one that OpenAI refuses (401) or
//! whose quota is spent (`insufficient_quota`) is set aside for [`SET_ASIDE`]. The next healthy
//! key then serves the call, before anything reached the caller (like a retry). When every key
//! cools down, the one free soonest is used and OpenAI's answer goes back as usual.
//!
//! Keys are known outside this module only by an id: the profile, the key's position and a
//! short hash of it (`staging#1:3fa2c91b`), never by the key. Cooldowns can be shared with other
//! replicas through a [`SharedCooldowns`] store.

use std::{
    fmt,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use reqwest::header::HeaderValue;
use tokio::time::Instant;

use super::{ApiError, ApiKey, UpstreamError};

/// How long a key that OpenAI refuses (401) or that is out of quota is set aside.
pub const SET_ASIDE: Duration = Duration::from_secs(600);
/// How long a rate-limited key cools down when OpenAI gives no reset time.
const DEFAULT_COOLDOWN: Duration = Duration::from_secs(1);
/// The longest cooldown taken from OpenAI's hints.
const MAX_COOLDOWN: Duration = Duration::from_secs(600);

/// A boxed future, for the object-safe [`SharedCooldowns`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where cooldowns are shared with other replicas (Redis). Failures are the store's own
/// business: a store that cannot answer reports no cooldowns.
pub trait SharedCooldowns: Send + Sync + fmt::Debug {
    /// The remaining cooldown of each key id (`None`: healthy), as any replica set it.
    fn remaining<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Vec<Option<Duration>>>;
    /// Sets key `id` aside for `duration`, for every replica.
    fn cool<'a>(&'a self, id: &'a str, duration: Duration) -> BoxFuture<'a, ()>;
}

/// Why a key cools down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A 429 rate limit.
    RateLimited,
    /// A 401: the key is missing, mistyped or revoked.
    Refused,
    /// A 429 `insufficient_quota`: the key's quota is spent.
    OutOfQuota,
}

impl Reason {
    /// The label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::Refused => "refused",
            Self::OutOfQuota => "out_of_quota",
        }
    }
}

struct Pooled {
    header: HeaderValue,
    id: String,
    /// This replica's view of the key's cooldown.
    until: Mutex<Option<Instant>>,
}

/// The keys of one profile. Cheap to share (`Arc`).
pub struct KeyPool {
    keys: Vec<Pooled>,
    next: AtomicUsize,
    shared: Mutex<Option<Arc<dyn SharedCooldowns>>>,
}

impl fmt::Debug for KeyPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("KeyPool").field("keys", &ids).finish()
    }
}

/// A short, stable hash of a key: enough to tell keys apart in logs, far from enough to
/// recover one.
fn short_hash(key: &ApiKey) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.expose().as_bytes());
    digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl KeyPool {
    /// A pool of `keys` (at least two) of the profile named `profile`.
    pub fn new(profile: &str, keys: &[ApiKey]) -> Result<Self, String> {
        let keys = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let mut header = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                    .map_err(|_| format!("API key {i} is not a valid header value"))?;
                header.set_sensitive(true);
                Ok(Pooled {
                    header,
                    id: format!("{profile}#{i}:{}", short_hash(key)),
                    until: Mutex::new(None),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            keys,
            next: AtomicUsize::new(0),
            shared: Mutex::new(None),
        })
    }

    /// Shares cooldowns with other replicas through `store`.
    pub fn share(&self, store: Arc<dyn SharedCooldowns>) {
        *self.shared.lock().unwrap_or_else(|e| e.into_inner()) = Some(store);
    }

    /// The key ids, in pool order.
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }

    fn shared(&self) -> Option<Arc<dyn SharedCooldowns>> {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The key for the next attempt: the next healthy one in turn (this replica's cooldowns and
    /// the shared ones), else the one free soonest. Returns its index and `Authorization` value.
    pub async fn pick(&self, skip: &[usize]) -> (usize, HeaderValue) {
        let now = Instant::now();
        let mut remaining: Vec<Option<Duration>> = self
            .keys
            .iter()
            .map(|k| {
                let until = *k.until.lock().unwrap_or_else(|e| e.into_inner());
                until.and_then(|u| u.checked_duration_since(now))
            })
            .collect();
        if let Some(shared) = self.shared() {
            let ids = self.ids();
            for (mine, theirs) in remaining.iter_mut().zip(shared.remaining(&ids).await) {
                *mine = (*mine).max(theirs);
            }
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let order = (0..self.keys.len()).map(|i| (start + i) % self.keys.len());
        let chosen = order
            .clone()
            .find(|i| remaining[*i].is_none() && !skip.contains(i))
            .or_else(|| {
                order
                    .filter(|i| !skip.contains(i))
                    .min_by_key(|i| remaining[*i].unwrap_or_default())
            })
            .unwrap_or(start % self.keys.len());
        (chosen, self.keys[chosen].header.clone())
    }

    /// Records that key `index` failed with `err`; returns the reason when the key now cools
    /// down (another key should serve the call).
    pub async fn report(&self, index: usize, err: &UpstreamError) -> Option<(Reason, &str)> {
        let UpstreamError::Status {
            status,
            error,
            meta,
            ..
        } = err
        else {
            return None;
        };
        let quota = error.as_deref().is_some_and(ApiError::is_quota);
        let (reason, duration) = match status {
            429 if quota => (Reason::OutOfQuota, SET_ASIDE),
            429 => (
                Reason::RateLimited,
                meta.retry_after
                    .or(meta.rate_limit_reset)
                    .unwrap_or(DEFAULT_COOLDOWN)
                    .min(MAX_COOLDOWN),
            ),
            401 => (Reason::Refused, SET_ASIDE),
            _ => return None,
        };
        let key = self.keys.get(index)?;
        *key.until.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + duration);
        if let Some(shared) = self.shared() {
            shared.cool(&key.id, duration).await;
        }
        if reason == Reason::RateLimited {
            tracing::info!(key = %key.id, cooldown_ms = duration.as_millis() as u64, "an API key is rate limited: the next healthy key serves its calls until it refills");
        } else {
            tracing::warn!(key = %key.id, reason = reason.as_str(), set_aside_s = duration.as_secs(), "an API key was set aside: OpenAI refused it or its quota is spent");
        }
        Some((reason, key.id.as_str()))
    }

    /// How many keys the pool holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the pool is empty (never: a pool has at least two keys).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::UpstreamMeta;

    fn pool() -> KeyPool {
        let keys: Vec<ApiKey> = ["sk-one", "sk-two", "sk-three"]
            .into_iter()
            .map(|k| ApiKey::new(k).unwrap())
            .collect();
        KeyPool::new("p", &keys).unwrap()
    }

    fn status(status: u16, code: Option<&str>, retry_after: Option<Duration>) -> UpstreamError {
        UpstreamError::Status {
            status,
            error: code.map(|c| {
                Box::new(ApiError {
                    code: Some(c.into()),
                    ..Default::default()
                })
            }),
            meta: UpstreamMeta {
                retry_after,
                ..Default::default()
            },
        }
    }

    #[tokio::test]
    async fn keys_take_turns_and_a_cooling_key_is_skipped() {
        let pool = pool();
        let picks: Vec<usize> = futures_util::future::join_all((0..3).map(|_| pool.pick(&[])))
            .await
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(picks, [0, 1, 2]);
        let cooled = pool
            .report(1, &status(429, None, Some(Duration::from_secs(30))))
            .await;
        assert_eq!(cooled.map(|(r, _)| r), Some(Reason::RateLimited));
        for _ in 0..6 {
            assert_ne!(pool.pick(&[]).await.0, 1);
        }
        assert!(
            pool.report(0, &status(500, None, None)).await.is_none(),
            "a 500 is not the key's fault"
        );
    }

    #[tokio::test]
    async fn refused_and_spent_keys_are_set_aside_and_ids_hide_the_key() {
        let pool = pool();
        assert_eq!(
            pool.report(0, &status(401, None, None))
                .await
                .map(|(r, _)| r),
            Some(Reason::Refused)
        );
        assert_eq!(
            pool.report(1, &status(429, Some("insufficient_quota"), None))
                .await
                .map(|(r, _)| r),
            Some(Reason::OutOfQuota)
        );
        for _ in 0..4 {
            assert_eq!(pool.pick(&[]).await.0, 2);
        }
        // All cooling: the one free soonest (2, after a 1 s default) is used.
        pool.report(2, &status(429, None, None)).await;
        assert_eq!(pool.pick(&[]).await.0, 2);
        let ids = pool.ids();
        assert!(
            ids[0].starts_with("p#0:") && ids.iter().all(|id| !id.contains("sk-")),
            "{ids:?}"
        );
        assert!(!format!("{pool:?}").contains("sk-"));
    }
}
