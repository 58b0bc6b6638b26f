//! Whose stored object is it. One OpenAI key serves many callers, so OpenAI cannot tell them
//! apart: the gateway binds every response and conversation created through it to the caller
//! (token name, or `anonymous`) and the credential profile that created it, and the call path
//! ([`crate::api::call`]) checks the binding before any call that names the id.
//!
//! [`Owners`] is the one small store interface. [`Owners::in_memory`] serves one replica: bounded
//! (the oldest bindings are dropped first) and expiring with OpenAI's retention of stored
//! responses (30 days); it does not survive a restart. [`Owners::shared_through`] adds a store
//! shared by every replica (Redis, `crate::store`), so any replica answers a caller and a restart
//! forgets nothing; the memory then serves as this replica's cache of it.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// A boxed future, for the object-safe [`SharedBindings`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A store of bindings shared by every replica. `Err(())`: the store could not answer.
pub trait SharedBindings: Send + Sync + fmt::Debug {
    /// The owner of `id`, if bound.
    fn get<'a>(&'a self, kind: Kind, id: &'a str) -> BoxFuture<'a, Result<Option<Owner>, ()>>;
    /// Binds `id` to `owner`, expiring after `ttl` if given.
    fn set<'a>(
        &'a self,
        kind: Kind,
        id: &'a str,
        owner: &'a Owner,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, ()>;
    /// Drops the binding of `id`.
    fn del<'a>(&'a self, kind: Kind, id: &'a str) -> BoxFuture<'a, ()>;
}

/// The shared store could not answer whether an id is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// What kind of stored object an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A response (`resp_...`).
    Response,
    /// A conversation (`conv_...`).
    Conversation,
}

impl Kind {
    /// The word for messages: `response`, `conversation`.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Response => "response",
            Self::Conversation => "conversation",
        }
    }

    /// How long OpenAI keeps the object (and so the binding): 30 days for stored responses;
    /// conversations have no documented expiry.
    fn retention(self) -> Option<Duration> {
        match self {
            Self::Response => Some(Duration::from_secs(30 * 24 * 3600)),
            Self::Conversation => None,
        }
    }
}

/// Who created a stored object, and under which credential profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The caller token's name, or `anonymous` without caller authentication.
    pub caller: String,
    /// The credential profile whose key created it.
    pub profile: String,
}

impl Owner {
    /// The binding's value in a shared store: the caller's and the profile's names (no secret).
    pub fn encode(&self) -> String {
        serde_json::json!([self.caller, self.profile]).to_string()
    }

    /// The owner a stored value names.
    pub fn decode(value: &str) -> Option<Self> {
        let [caller, profile]: [String; 2] = serde_json::from_str(value).ok()?;
        Some(Self { caller, profile })
    }
}

/// The caller name used when caller authentication is off.
pub const ANONYMOUS: &str = "anonymous";

/// The bindings of stored objects to their owners. Cheap to clone (shared).
#[derive(Clone)]
pub struct Owners {
    memory: Arc<Mutex<Memory>>,
    shared: Option<Arc<dyn SharedBindings>>,
}

/// The default number of bindings one replica keeps in memory.
pub const DEFAULT_CAPACITY: usize = 200_000;

#[derive(Debug)]
struct Memory {
    capacity: usize,
    entries: HashMap<(Kind, String), Entry>,
    /// Keys in binding order, for dropping the oldest first (may hold keys bound again or
    /// forgotten since; those are skipped).
    order: VecDeque<((Kind, String), u64)>,
    next: u64,
}

#[derive(Debug)]
struct Entry {
    owner: Owner,
    expires: Option<Instant>,
    /// The binding's position in `order`.
    serial: u64,
}

impl fmt::Debug for Owners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Owners")
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

impl Owners {
    /// A store for one replica holding at most `capacity` bindings.
    pub fn in_memory(capacity: usize) -> Self {
        Self {
            memory: Arc::new(Mutex::new(Memory {
                capacity: capacity.max(1),
                entries: HashMap::new(),
                order: VecDeque::new(),
                next: 0,
            })),
            shared: None,
        }
    }

    /// The same store, shared with other replicas through `shared`.
    pub fn shared_through(self, shared: Arc<dyn SharedBindings>) -> Self {
        Self {
            shared: Some(shared),
            ..self
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds `id` to `owner` (again, if it was bound: the newest binding wins).
    pub async fn bind(&self, kind: Kind, id: &str, owner: &Owner) {
        self.remember(kind, id, owner);
        if let Some(shared) = &self.shared {
            shared.set(kind, id, owner, kind.retention()).await;
        }
    }

    fn remember(&self, kind: Kind, id: &str, owner: &Owner) {
        let mut memory = self.lock();
        let serial = memory.next;
        memory.next += 1;
        let key = (kind, id.to_owned());
        memory.order.push_back((key.clone(), serial));
        memory.entries.insert(
            key,
            Entry {
                owner: owner.clone(),
                expires: kind.retention().map(|r| Instant::now() + r),
                serial,
            },
        );
        while memory.entries.len() > memory.capacity {
            let Some((oldest, serial)) = memory.order.pop_front() else {
                break;
            };
            if memory
                .entries
                .get(&oldest)
                .is_some_and(|e| e.serial == serial)
            {
                memory.entries.remove(&oldest);
            }
        }
        // Keep the order queue from growing without bound when ids are bound again.
        if memory.order.len() > 2 * memory.capacity {
            let Memory { order, entries, .. } = &mut *memory;
            order.retain(|(key, serial)| entries.get(key).is_some_and(|e| e.serial == *serial));
        }
    }

    /// The owner of `id`, if it is bound and not expired; `Err` when only the shared store could
    /// tell and it did not answer.
    pub async fn owner(&self, kind: Kind, id: &str) -> Result<Option<Owner>, Unavailable> {
        if let Some(owner) = self.remembered(kind, id) {
            return Ok(Some(owner));
        }
        let Some(shared) = &self.shared else {
            return Ok(None);
        };
        let owner = shared.get(kind, id).await.map_err(|()| Unavailable)?;
        if let Some(owner) = &owner {
            self.remember(kind, id, owner);
        }
        Ok(owner)
    }

    fn remembered(&self, kind: Kind, id: &str) -> Option<Owner> {
        let mut memory = self.lock();
        let key = (kind, id.to_owned());
        let entry = memory.entries.get(&key)?;
        if entry.expires.is_some_and(|at| at <= Instant::now()) {
            memory.entries.remove(&key);
            return None;
        }
        Some(entry.owner.clone())
    }

    /// Drops the binding of `id` (after a delete).
    pub async fn forget(&self, kind: Kind, id: &str) {
        self.lock().entries.remove(&(kind, id.to_owned()));
        if let Some(shared) = &self.shared {
            shared.del(kind, id).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(caller: &str) -> Owner {
        Owner {
            caller: caller.into(),
            profile: "default".into(),
        }
    }

    #[tokio::test]
    async fn binds_forgets_and_keeps_kinds_apart() {
        let owners = Owners::in_memory(10);
        owners.bind(Kind::Response, "resp_1", &owner("a")).await;
        assert_eq!(
            owners.owner(Kind::Response, "resp_1").await,
            Ok(Some(owner("a")))
        );
        assert_eq!(owners.owner(Kind::Conversation, "resp_1").await, Ok(None));
        owners.forget(Kind::Response, "resp_1").await;
        assert_eq!(owners.owner(Kind::Response, "resp_1").await, Ok(None));
    }

    #[tokio::test]
    async fn bounded_oldest_first() {
        let owners = Owners::in_memory(2);
        for (id, who) in [("r1", "a"), ("r2", "b"), ("r1", "c"), ("r3", "d")] {
            owners.bind(Kind::Response, id, &owner(who)).await;
        }
        // r2 is the oldest binding still current (r1 was bound again after it).
        assert_eq!(owners.owner(Kind::Response, "r2").await, Ok(None));
        assert_eq!(
            owners.owner(Kind::Response, "r1").await,
            Ok(Some(owner("c")))
        );
        assert_eq!(
            owners.owner(Kind::Response, "r3").await,
            Ok(Some(owner("d")))
        );
        for i in 0..100 {
            owners
                .bind(Kind::Response, "again", &owner(&i.to_string()))
                .await;
        }
        assert!(
            owners.lock().order.len() <= 4,
            "the order queue stays bounded"
        );
    }
}
