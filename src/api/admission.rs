//! Who gets in, and for how long: load shedding (a global cap on calls in flight and a cap per
//! client connection, never a queue) and the caller's deadline from `grpc-timeout`.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};
use tonic::{Request, Status};

use crate::{config::Limits, error};

/// How long a caller turned away by load shedding is told to wait.
const SHED_RETRY: Duration = Duration::from_secs(1);

/// tonic ends the handler future itself with CANCELLED when the `grpc-timeout` passes, timed
/// from the moment the request headers arrived. The gateway times its deadline from the same
/// moment ([`Arrival`]) and fires this much earlier (two timer ticks), so the caller gets
/// DEADLINE_EXCEEDED with details instead.
const DEADLINE_MARGIN: Duration = Duration::from_millis(2);

/// When a request's headers arrived, stamped by [`stamp_arrival`] in the server's tower stack
/// (called synchronously right after tonic starts its own `grpc-timeout` timer).
#[derive(Debug, Clone, Copy)]
pub struct Arrival(pub Instant);

/// The tower layer function that stamps [`Arrival`] on every request.
pub fn stamp_arrival<B>(
    mut request: tonic::codegen::http::Request<B>,
) -> tonic::codegen::http::Request<B> {
    request.extensions_mut().insert(Arrival(Instant::now()));
    request
}

/// The caller's deadline from `grpc-timeout`, if it sent one, timed from the request's arrival.
pub(crate) fn deadline<T>(request: &Request<T>) -> Option<Instant> {
    let raw = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let timeout = parse_grpc_timeout(raw)?;
    let arrived = request
        .extensions()
        .get::<Arrival>()
        .map_or_else(Instant::now, |a| a.0);
    Some(arrived + timeout.saturating_sub(DEADLINE_MARGIN))
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(raw: &str) -> Option<Duration> {
    let (digits, unit) = raw.split_at(raw.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Calls in flight per client connection.
type ConnectionCounts = Arc<Mutex<HashMap<SocketAddr, usize>>>;

/// Load shedding: a global cap on calls in flight and a cap per client connection.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    global: Arc<Semaphore>,
    per_connection: ConnectionCounts,
    max_per_connection: usize,
}

/// Proof of admission; dropping it frees the slots.
#[derive(Debug)]
pub struct Permit {
    _global: OwnedSemaphorePermit,
    connection: Option<(SocketAddr, ConnectionCounts)>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some((addr, map)) = &self.connection {
            let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(count) = map.get_mut(addr) {
                *count -= 1;
                if *count == 0 {
                    map.remove(addr);
                }
            }
        }
    }
}

impl Admission {
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            global: Arc::new(Semaphore::new(limits.max_in_flight)),
            per_connection: Arc::default(),
            max_per_connection: limits.max_streams_per_connection,
        }
    }

    /// Admits a call from `remote` or refuses it at once with RESOURCE_EXHAUSTED (never
    /// queues). Hold the permit for the life of the call.
    pub(crate) fn admit(&self, remote: Option<SocketAddr>) -> Result<Permit, Status> {
        let global = self
            .global
            .clone()
            .try_acquire_owned()
            .map_err(|_| error::overloaded(SHED_RETRY))?;
        let connection = match remote {
            Some(addr) => {
                let mut map = self
                    .per_connection
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let count = map.entry(addr).or_insert(0);
                if *count >= self.max_per_connection {
                    return Err(error::too_many_streams_on_connection(SHED_RETRY));
                }
                *count += 1;
                Some((addr, self.per_connection.clone()))
            }
            None => None,
        };
        Ok(Permit {
            _global: global,
            connection,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units() {
        assert_eq!(parse_grpc_timeout("300m"), Some(Duration::from_millis(300)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
    }

    #[test]
    fn admission_caps_global_and_per_connection() {
        let a = Admission::new(&Limits {
            max_in_flight: 2,
            max_streams_per_connection: 1,
        });
        let one: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let two: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let p1 = a.admit(Some(one)).unwrap();
        let e = a.admit(Some(one)).unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        let _p2 = a.admit(Some(two)).unwrap();
        assert_eq!(
            a.admit(None).unwrap_err().code(),
            tonic::Code::ResourceExhausted
        );
        drop(p1);
        assert!(a.admit(Some(one)).is_ok(), "slots are freed on drop");
    }
}
