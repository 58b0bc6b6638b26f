//! Overload: an open loop of unary calls at a fixed rate (twice what the gateway sustains),
//! against a gateway with its default load-shedding limits. Admitted calls must keep a bounded
//! latency; the rest must be shed at once with RESOURCE_EXHAUSTED, and nothing else may fail.

use crate::scenarios::{Clients, grpc_request};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tonic::Code;

/// What an open-loop run saw.
#[derive(Debug, Default)]
pub(crate) struct Overload {
    /// Calls started.
    pub(crate) offered: u64,
    /// Latency of every admitted (successful) call, ns.
    pub(crate) admitted: Vec<u64>,
    /// Calls refused with RESOURCE_EXHAUSTED, and the longest such refusal took, ns.
    pub(crate) shed: u64,
    pub(crate) slowest_shed: u64,
    /// Calls that failed any other way.
    pub(crate) failed: u64,
    pub(crate) first_failure: Option<String>,
    pub(crate) wall: Duration,
}

/// Starts calls at `rate` per second for `duration` (on a 1 ms tick, as many as are due), each
/// on its own task, whatever the earlier ones are doing; then waits for all of them.
pub(crate) async fn open_loop(clients: &Clients, rate: f64, duration: Duration) -> Overload {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut tasks = JoinSet::new();
    let mut offered = 0u64;
    while started.elapsed() < duration {
        tick.tick().await;
        let due = (rate * started.elapsed().as_secs_f64()) as u64;
        while offered < due {
            let mut client = clients.grpc(offered as usize);
            tasks.spawn(async move {
                let t = Instant::now();
                let result = match client.create_response(grpc_request(false)).await {
                    Ok(response) => {
                        let mut stream = response.into_inner();
                        loop {
                            match stream.message().await {
                                Ok(Some(_)) => {}
                                Ok(None) => break Ok(()),
                                Err(status) => break Err(status),
                            }
                        }
                    }
                    Err(status) => Err(status),
                };
                (t.elapsed().as_nanos() as u64, result)
            });
            offered += 1;
        }
    }
    let mut run = Overload {
        offered,
        ..Overload::default()
    };
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((ns, Ok(()))) => run.admitted.push(ns),
            Ok((ns, Err(status))) if status.code() == Code::ResourceExhausted => {
                run.shed += 1;
                run.slowest_shed = run.slowest_shed.max(ns);
            }
            Ok((_, Err(status))) => {
                run.failed += 1;
                run.first_failure.get_or_insert(status.to_string());
            }
            Err(e) => {
                run.failed += 1;
                run.first_failure.get_or_insert(e.to_string());
            }
        }
    }
    run.wall = started.elapsed();
    run
}
