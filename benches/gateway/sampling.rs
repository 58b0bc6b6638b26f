//! Sampling: closed loops of calls, their latency and error counts, and side-by-side
//! direct / gateway comparisons in alternating blocks.

use crate::process::CpuClock;
use crate::scenarios::{Clients, Op, Seen, call};
use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::task::JoinSet;

/// The result of running one operation many times.
#[derive(Debug, Default)]
pub(crate) struct Run {
    /// Latency of every successful operation, ns.
    pub(crate) latencies: Vec<u64>,
    /// Time to first delta of every successful stream, ns.
    pub(crate) first_deltas: Vec<u64>,
    pub(crate) events: u64,
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) wall: Duration,
}

impl Run {
    pub(crate) fn merge(&mut self, other: Run) {
        self.latencies.extend(other.latencies);
        self.first_deltas.extend(other.first_deltas);
        self.events += other.events;
        self.ok += other.ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.wall += other.wall;
    }

    pub(crate) fn per_second(&self, n: u64) -> f64 {
        n as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Runs `op` `total` times with `concurrency` workers in a closed loop (each worker starts its
/// next operation when the previous one ends), stopping early at `cap`.
pub(crate) async fn closed_loop<F, Fut>(
    concurrency: usize,
    total: usize,
    cap: Duration,
    op: F,
) -> Run
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Seen, String>> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + cap;
    let mut workers = JoinSet::new();
    for worker in 0..concurrency.max(1) {
        let (op, next) = (op.clone(), next.clone());
        workers.spawn(async move {
            let mut run = Run::default();
            while next.fetch_add(1, Ordering::Relaxed) < total && Instant::now() < deadline {
                let t = Instant::now();
                match op(worker).await {
                    Ok(seen) => {
                        run.latencies.push(t.elapsed().as_nanos() as u64);
                        if let Some(d) = seen.first_delta {
                            run.first_deltas.push(d.as_nanos() as u64);
                        }
                        run.events += seen.events;
                        run.ok += 1;
                    }
                    Err(e) => {
                        run.errors += 1;
                        run.first_error.get_or_insert(e);
                    }
                }
            }
            run
        });
    }
    let mut run = Run::default();
    while let Some(r) = workers.join_next().await {
        run.merge(r.expect("worker does not panic"));
    }
    run.wall = started.elapsed();
    run
}

/// How a comparison is cut into blocks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Block {
    /// Alternating direct / gateway rounds.
    pub(crate) rounds: usize,
    /// Workers of each block.
    pub(crate) concurrency: usize,
    /// Calls per block.
    pub(crate) calls: usize,
    /// Upper bound on each block.
    pub(crate) cap: Duration,
}

impl Block {
    /// `total` calls per side and at most `cap` per side, split into `rounds`.
    pub(crate) fn new(rounds: usize, concurrency: usize, total: usize, cap: Duration) -> Self {
        let rounds = rounds.max(1);
        Self {
            rounds,
            concurrency,
            calls: total.div_ceil(rounds),
            cap: cap / rounds as u32,
        }
    }
}

/// Both sides of one comparison.
pub(crate) struct Pair {
    pub(crate) direct: Run,
    pub(crate) gateway: Run,
    /// The gateway's CPU time over its own blocks.
    pub(crate) gateway_cpu: Duration,
}

impl Pair {
    pub(crate) fn cpu_per_call(&self) -> f64 {
        micros(self.gateway_cpu) / self.gateway.ok.max(1) as f64
    }

    pub(crate) fn cpu_per_event(&self) -> f64 {
        micros(self.gateway_cpu) / self.gateway.events.max(1) as f64
    }

    /// Every stream of both sides carried exactly `per_stream` events.
    pub(crate) fn expect_events(&self, per_stream: u64) -> Result<(), String> {
        for (side, run) in [("direct", &self.direct), ("gateway", &self.gateway)] {
            if run.events != run.ok * per_stream {
                return Err(format!(
                    "{side}: {} events over {} streams, want {per_stream} each",
                    run.events, run.ok
                ));
            }
        }
        Ok(())
    }
}

/// `op` side by side: alternating blocks of direct and gateway calls (the order flips every
/// round, so drift hits both alike); `prepare` runs before every block (to queue the fake's
/// scenarios). Fails if any call failed.
pub(crate) async fn compare(
    gw: &impl CpuClock,
    clients: &Clients,
    op: Op,
    block: Block,
    mut prepare: impl FnMut(),
) -> Result<Pair, String> {
    let mut pair = Pair {
        direct: Run::default(),
        gateway: Run::default(),
        gateway_cpu: Duration::ZERO,
    };
    for round in 0..block.rounds {
        for through_gateway in [round % 2 == 1, round % 2 == 0] {
            prepare();
            let c = clients.clone();
            let cpu = gw.cpu();
            let run = closed_loop(block.concurrency, block.calls, block.cap, move |worker| {
                call(c.clone(), op, through_gateway, worker)
            })
            .await;
            if through_gateway {
                pair.gateway_cpu += gw.cpu().saturating_sub(cpu);
                pair.gateway.merge(run);
            } else {
                pair.direct.merge(run);
            }
        }
    }
    for (side, run) in [("direct", &pair.direct), ("gateway", &pair.gateway)] {
        if run.errors > 0 || run.ok == 0 {
            return Err(format!(
                "{op:?} {side}: {} of {} failed (first error: {})",
                run.errors,
                run.errors + run.ok,
                run.first_error.as_deref().unwrap_or("none")
            ));
        }
    }
    Ok(pair)
}

pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

pub(crate) fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Nearest-rank percentile of unsorted ns samples, in µs.
pub(crate) fn percentile(samples: &mut [u64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1] as f64 / 1e3
}
