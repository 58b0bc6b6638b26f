//! Process control: the gateway as a separate release process (start, CPU time and RSS from
//! `/proc`, kill), the open-file limit, and what machine the run is on.

use crate::{API_KEY, GATEWAY_BIN, Plan, REEXEC_ENV};
use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tonic::transport::Endpoint;

/// Re-executes this process under `ulimit -n <hard>` when its soft open-file limit is too low
/// for the slow-stream run (the fake's side of each stream is a socket here). Returns the exit
/// code of the re-executed run, or None to carry on in this process.
pub(crate) fn raise_open_file_limit(plan: &Plan, args: &[String]) -> Option<i32> {
    let (soft, hard) = open_file_limit("self");
    if soft >= plan.files_needed() || hard <= soft || std::env::var_os(REEXEC_ENV).is_some() {
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    eprintln!(
        "bench: open-file limit {soft} < {}: starting again under `ulimit -n`",
        plan.files_needed()
    );
    let status = Command::new("bash")
        .arg("-c")
        .arg(r#"ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" "$@""#)
        .arg(exe)
        .args(args)
        .env(REEXEC_ENV, "1")
        .status()
        .ok()?;
    Some(status.code().unwrap_or(1))
}

/// (soft, hard) `Max open files` of a process (`self` or a pid); unlimited counts as u64::MAX.
pub(crate) fn open_file_limit(pid: &str) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    let parse = |s: &str| {
        if s == "unlimited" {
            u64::MAX
        } else {
            s.parse().unwrap_or(0)
        }
    };
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| {
            let mut it = l["Max open files".len()..].split_whitespace();
            Some((parse(it.next()?), parse(it.next()?)))
        })
        .unwrap_or((0, 0))
}

// ------------------------------------------------------------------------------------------------
// The gateway process.

/// The default load-shedding limits (1,024 calls in flight, 256 per connection) are below what
/// this benchmark holds open on purpose; every run but the overload one raises them.
pub(crate) const RAISED_LIMITS: &[&str] = &[
    "--max-in-flight",
    "50000",
    "--max-streams-per-connection",
    "50000",
    "--max-concurrent-streams",
    "50000",
];

/// The gateway binary running as a child process; killed on drop.
pub(crate) struct Gateway {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    pub(crate) addr: SocketAddr,
    pub(crate) clock_ticks: u64,
}

impl Gateway {
    /// Starts the gateway on a free loopback port, in front of `base_url`, with the highest
    /// open-file limit allowed (10,000 streams are 10,000 upstream HTTP/1.1 connections), the
    /// load-shedding limits raised, and `extra` flags.
    pub(crate) fn spawn(base_url: &str, log: &Path, extra: &[&str]) -> Result<Self, String> {
        Self::spawn_with(base_url, log, RAISED_LIMITS, extra)
    }

    /// The same with the load-shedding flags given (`&[]`: the gateway's defaults).
    pub(crate) fn spawn_with(
        base_url: &str,
        log: &Path,
        limits: &[&str],
        extra: &[&str],
    ) -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        // GATEWAY_BENCH_WRAP (e.g. `valgrind --tool=dhat`) is put before the gateway's command,
        // for profiling it under load; see BENCHMARKS.md.
        let wrap = std::env::var("GATEWAY_BENCH_WRAP").unwrap_or_default();
        let child = Command::new("bash")
            .arg("-c")
            .arg(r#"ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec $GATEWAY_BENCH_WRAP "$0" "$@""#)
            .arg(GATEWAY_BIN)
            .args(["--listen", &addr.to_string(), "--base-url", base_url])
            .args(["--log", "warn"])
            .args(limits)
            .args(extra)
            // A clean environment: no proxy settings or developer variables leak in; the key
            // travels in the environment, as the gateway's docs advise.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("OPENAI_API_KEY", API_KEY)
            // As the Dockerfile and the Deployment set it (BENCHMARKS.md, "Allocator and
            // runtime").
            .env("MIMALLOC_PURGE_DELAY", "0")
            .env("GATEWAY_BENCH_WRAP", &wrap)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot start {GATEWAY_BIN}: {e}"))?;
        let pid = child.id();
        Ok(Self {
            child,
            pid,
            addr,
            clock_ticks: clock_ticks(),
        })
    }

    /// Waits until the gateway accepts connections and its health service says SERVING:
    /// a bounded retry loop (process start-up), then one health check.
    pub(crate) async fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("the gateway exited during start-up: {status}"));
            }
            match tokio::net::TcpStream::connect(self.addr).await {
                Ok(_) => break,
                Err(_) if attempts < 2_400 && started.elapsed() < Duration::from_secs(60) => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                Err(e) => return Err(format!("the gateway never listened on {}: {e}", self.addr)),
            }
        }
        let channel = self.channel().connect().await.map_err(|e| e.to_string())?;
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let reply = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(|e| format!("health check: {e}"))?
            .into_inner();
        if reply.status != tonic_health::pb::health_check_response::ServingStatus::Serving as i32 {
            return Err(format!("health says {}", reply.status));
        }
        Ok(())
    }

    pub(crate) fn channel(&self) -> Endpoint {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("valid URI")
            .tcp_nodelay(true)
    }

    /// User + system CPU time of the whole process (all threads, live and exited).
    pub(crate) fn cpu(&self) -> Duration {
        Duration::from_nanos(cpu_ticks(self.pid) * 1_000_000_000 / self.clock_ticks.max(1))
    }

    /// (VmRSS, VmHWM) in bytes.
    pub(crate) fn rss(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
                .map_or(0, |kib| kib * 1024)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    pub(crate) fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid)).map_or(0, |d| d.count())
    }
}

/// A process whose CPU time a comparison counts: the gateway, or a peer.
pub(crate) trait CpuClock {
    fn cpu(&self) -> Duration;
}

impl CpuClock for Gateway {
    fn cpu(&self) -> Duration {
        Gateway::cpu(self)
    }
}

impl CpuClock for crate::peer::Peer {
    fn cpu(&self) -> Duration {
        crate::peer::Peer::cpu(self)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // Under a profiler (GATEWAY_BENCH_WRAP) the gateway gets SIGTERM and time to exit
        // cleanly, so the profiler writes its output; otherwise it is killed at once.
        if std::env::var_os("GATEWAY_BENCH_WRAP").is_some_and(|w| !w.is_empty()) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.pid.to_string()])
                .status();
            let until = Instant::now() + Duration::from_secs(120);
            while Instant::now() < until {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU time of process `pid` in clock ticks (`/proc/<pid>/stat`; 0 if it is gone).
pub(crate) fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    fields.get(10).copied().unwrap_or(0) + fields.get(11).copied().unwrap_or(0)
}

/// Clock ticks per second for `/proc/<pid>/stat` (`getconf CLK_TCK`, 100 on Linux).
pub(crate) fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// nproc, CPU model and memory, for the record.
pub(crate) fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<u64>().ok());
    json!({
        "nproc": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu": model,
        "mem_gib": mem_kib.map(|k| k as f64 / (1024.0 * 1024.0)),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_owned()),
    })
}
