//! State shared by the replicas of one deployment, in Redis (`--redis-url`): quota counters,
//! key cooldowns and the ownership bindings of stored responses and conversations.
//!
//! The gateway never depends on Redis to start or to serve: the connection is made lazily and
//! re-made by itself; every operation has a short time limit; an operation that fails is
//! reported to the caller of this module (which fails open or closed as configured), counted in
//! `gateway_redis_errors_total`, and logged once per outage (and once when Redis is back).
//!
//! What goes into Redis: counters and timestamps keyed by caller token name or profile name, key
//! cooldowns keyed by the key's id (profile, position, short hash; never the key), and bindings
//! whose values are a caller token name and a profile name. Never a key or a token. Every key
//! starts with the configured prefix and expires by itself.
//!
//! The quota updates run as Lua scripts, so each is one atomic step for every replica, timed
//! by Redis's own clock (`TIME`), so replicas need not agree on the time.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use redis::{AsyncCommands as _, Script, aio::ConnectionManager};

use crate::{
    config::{RedisUrl, StartupError},
    openai::keys::{BoxFuture, SharedCooldowns},
    owners::{self, Kind, Owner, SharedBindings},
    telemetry::Metrics,
};

/// The longest one Redis operation may take before it counts as failed.
const OP_TIMEOUT: Duration = Duration::from_millis(250);

/// Redis could not be reached or did not answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Down;

/// The connection to Redis and what the gateway keeps there. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    prefix: Arc<str>,
    down: Arc<AtomicBool>,
    host: Arc<str>,
    metrics: Metrics,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("host", &self.host)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The result of one rate step (see `crate::quotas::rate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// Admitted; the subject's allowance in use is this far ahead of now.
    Admitted(Duration),
    /// Refused; the units fit after this long.
    Refused(Duration),
}

/// GCRA: KEYS[1] the subject's TAT, ARGV units (negative: a refund), limit per minute, force
/// (1 charges anyway). Returns {admitted (0/1), microseconds}: ahead of now when admitted, the
/// wait when refused.
const RATE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = 60000000
local cost = math.floor(window / math.max(1, tonumber(ARGV[2])))
local units = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if units < 0 then
  local back = math.max(now, tat + units * cost)
  if back > now then
    redis.call('SET', KEYS[1], string.format('%.0f', back), 'PX', math.ceil((back - now) / 1000))
  else
    redis.call('DEL', KEYS[1])
  end
  return {1, string.format('%.0f', back - now)}
end
if tat < now then tat = now end
local new_tat = tat + units * cost
if ARGV[3] == '1' or new_tat - now <= window then
  if new_tat > now then
    redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
  end
  return {1, string.format('%.0f', new_tat - now)}
end
return {0, string.format('%.0f', new_tat - now - window)}
";

/// Concurrency leases: KEYS[1] a sorted set of lease ids scored by expiry (ms), ARGV id, limit,
/// lease time in ms. Drops expired leases (of replicas that died), then adds this one if room.
/// Returns 1 when leased.
const LEASE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
";

/// Renews leases: KEYS the sets, ARGV lease time in ms then one id per key (XX: only leases
/// still held).
const RENEW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', key, ttl)
end
return 1
";

impl Store {
    /// A store at `url` whose keys start with `prefix`. Nothing is connected yet: a Redis that
    /// is down at start-up is an outage like any other.
    pub fn new(url: &RedisUrl, prefix: &str, metrics: Metrics) -> Result<Self, StartupError> {
        let client = redis::Client::open(url.expose())
            .map_err(|e| StartupError::config(format!("--redis-url: {:?}", e.kind())))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StartupError::config(format!("--redis-url: {:?}", e.kind())))?;
        Ok(Self {
            conn,
            prefix: prefix.into(),
            down: Arc::new(AtomicBool::new(false)),
            host: url.host().into(),
            metrics,
        })
    }

    /// `prefix` + `parts` joined with `:`.
    pub fn key(&self, parts: &[&str]) -> String {
        let mut key = String::from(&*self.prefix);
        key.push_str(&parts.join(":"));
        key
    }

    /// Runs one operation within [`OP_TIMEOUT`], keeping the outage state.
    async fn run<T>(&self, op: impl Future<Output = redis::RedisResult<T>>) -> Result<T, Down> {
        let result = tokio::time::timeout(OP_TIMEOUT, op).await;
        match result {
            Ok(Ok(value)) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::info!(redis = %self.host, "Redis is reachable again: limits, key cooldowns and bindings are shared again");
                    self.metrics.redis_up(true);
                }
                Ok(value)
            }
            failed => {
                self.metrics.redis_error();
                if !self.down.swap(true, Ordering::Relaxed) {
                    let why = match failed {
                        Ok(Err(e)) => format!("{:?}", e.kind()),
                        _ => "no answer in time".to_owned(),
                    };
                    tracing::warn!(redis = %self.host, error = %why, "Redis is unreachable: serving without shared state until it is back (see --limits-fail-closed)");
                    self.metrics.redis_up(false);
                }
                Err(Down)
            }
        }
    }

    /// One GCRA step for `key` (see `crate::quotas::rate`).
    pub async fn rate(&self, key: &str, units: i64, limit: u64, force: bool) -> Result<Rate, Down> {
        let mut conn = self.conn.clone();
        let script = Script::new(RATE);
        let mut invocation = script.key(key);
        invocation
            .arg(units)
            .arg(limit)
            .arg(if force { "1" } else { "0" });
        let (admitted, micros): (i64, String) =
            self.run(invocation.invoke_async(&mut conn)).await?;
        let micros = Duration::from_micros(micros.parse::<f64>().unwrap_or(0.0).max(0.0) as u64);
        Ok(if admitted == 1 {
            Rate::Admitted(micros)
        } else {
            Rate::Refused(micros)
        })
    }

    /// Takes a lease on one of `limit` slots of `key` for `ttl`; false when all are taken.
    pub async fn lease(
        &self,
        key: &str,
        id: &str,
        limit: u64,
        ttl: Duration,
    ) -> Result<bool, Down> {
        let mut conn = self.conn.clone();
        let script = Script::new(LEASE);
        let mut invocation = script.key(key);
        invocation.arg(id).arg(limit).arg(ttl.as_millis() as u64);
        let leased: i64 = self.run(invocation.invoke_async(&mut conn)).await?;
        Ok(leased == 1)
    }

    /// Gives a lease back.
    pub async fn release(&self, key: &str, id: &str) -> Result<(), Down> {
        let mut conn = self.conn.clone();
        self.run(conn.zrem::<_, _, ()>(key, id)).await
    }

    /// Keeps leases alive for another `ttl` (a replica that dies stops renewing, and its
    /// leases expire).
    pub async fn renew(&self, leases: &[(String, String)], ttl: Duration) -> Result<(), Down> {
        if leases.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let script = Script::new(RENEW);
        let mut invocation = script.prepare_invoke();
        invocation.arg(ttl.as_millis() as u64);
        for (key, id) in leases {
            invocation.key(key).arg(id);
        }
        self.run(invocation.invoke_async::<i64>(&mut conn))
            .await
            .map(|_| ())
    }

    /// How many leases of `key` are held now.
    pub async fn leases(&self, key: &str) -> Result<u64, Down> {
        let mut conn = self.conn.clone();
        self.run(conn.zcard::<_, u64>(key)).await
    }

    fn owner_key(&self, kind: Kind, id: &str) -> String {
        self.key(&["owner", kind.noun(), id])
    }
}

impl SharedBindings for Store {
    fn get<'a>(
        &'a self,
        kind: Kind,
        id: &'a str,
    ) -> owners::BoxFuture<'a, Result<Option<Owner>, ()>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let value: Option<String> = self
                .run(conn.get(self.owner_key(kind, id)))
                .await
                .map_err(|_| ())?;
            Ok(value.and_then(|v| Owner::decode(&v)))
        })
    }

    fn set<'a>(
        &'a self,
        kind: Kind,
        id: &'a str,
        owner: &'a Owner,
        ttl: Option<Duration>,
    ) -> owners::BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let key = self.owner_key(kind, id);
            let value = owner.encode();
            let _ = match ttl {
                Some(ttl) => {
                    self.run(conn.set_ex::<_, _, ()>(key, value, ttl.as_secs().max(1)))
                        .await
                }
                None => self.run(conn.set::<_, _, ()>(key, value)).await,
            };
        })
    }

    fn del<'a>(&'a self, kind: Kind, id: &'a str) -> owners::BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let _ = self.run(conn.del::<_, ()>(self.owner_key(kind, id))).await;
        })
    }
}

impl SharedCooldowns for Store {
    fn remaining<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Vec<Option<Duration>>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let mut pipe = redis::pipe();
            for id in ids {
                pipe.pttl(self.key(&["cooldown", id]));
            }
            let ttls: Vec<i64> = self
                .run(pipe.query_async(&mut conn))
                .await
                .unwrap_or_default();
            let mut out: Vec<Option<Duration>> = ttls
                .into_iter()
                .map(|ms| (ms > 0).then(|| Duration::from_millis(ms as u64)))
                .collect();
            out.resize(ids.len(), None);
            out
        })
    }

    fn cool<'a>(&'a self, id: &'a str, duration: Duration) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let ms = (duration.as_millis() as u64).max(1);
            let _ = self
                .run(conn.pset_ex::<_, _, ()>(self.key(&["cooldown", id]), "1", ms))
                .await;
        })
    }
}
