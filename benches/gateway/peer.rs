//! A peer gateway measured beside this one (`--peer-cmd CMD`, run by `scripts/peer-litellm.sh`):
//! the same unary call straight to the fake, through the gateway, and through the peer's
//! OpenAI-compatible HTTP endpoint (`POST /v1/responses`), in alternating rounds of one run.
//!
//! `CMD` runs under `bash -c` with `PEER_UPSTREAM` (the fake's base URL, `.../v1`) and
//! `PEER_PORT` (a free loopback port) in its environment; it must `exec` the peer's server so
//! that the started process is the one whose CPU time is read (its child processes are counted
//! too).

use crate::process::{clock_ticks, cpu_ticks};
use crate::scenarios::{Clients, Seen};
use crate::{MODEL, PROMPT};
use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

/// The bearer token the peer is started with (`master_key` in the script's LiteLLM config).
pub(crate) const PEER_KEY: &str = "sk-peer-bench";

/// The peer's server process; killed (with its children) on drop.
pub(crate) struct Peer {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    clock_ticks: u64,
}

impl Peer {
    pub(crate) fn spawn(cmd: &str, upstream: &str, log: &Path) -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let child = Command::new("bash")
            .arg("-c")
            .arg(cmd)
            .env("PEER_UPSTREAM", upstream)
            .env("PEER_PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot start the peer: {e}"))?;
        Ok(Self {
            pid: child.id(),
            child,
            addr: ([127, 0, 0, 1], port).into(),
            clock_ticks: clock_ticks(),
        })
    }

    /// The base URL of the peer's OpenAI-compatible API.
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Waits (bounded: two minutes, a Python proxy starts slowly) until the peer answers one
    /// unary call through to the fake.
    pub(crate) async fn wait_ready(&mut self, c: &Clients) -> Result<(), String> {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < Duration::from_secs(120) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the peer exited during start-up ({status}); see its log"
                ));
            }
            match peer_unary(c).await {
                Ok(_) => return Ok(()),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(format!("the peer never answered: {last}"))
    }

    /// User + system CPU time of the peer and every process under it.
    pub(crate) fn cpu(&self) -> Duration {
        let ticks: u64 = tree(self.pid).into_iter().map(cpu_ticks).sum();
        Duration::from_nanos(ticks * 1_000_000_000 / self.clock_ticks.max(1))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        for pid in tree(self.pid).into_iter().rev() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = self.child.wait();
    }
}

/// `root` and its descendants (from the parent ids in `/proc/<pid>/stat`), parents first.
fn tree(root: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.push((pid, ppid));
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    out
}

/// The streamed CreateResponse through the peer: its SSE, decoded and parsed like the direct
/// call's.
pub(crate) async fn peer_stream(c: &Clients) -> Result<Seen, String> {
    let url = c.peer_url.as_deref().ok_or("no peer")?;
    crate::scenarios::sse_stream(c, url, PEER_KEY, "peer").await
}

/// The non-streamed CreateResponse through the peer: POST, read, parse the JSON.
pub(crate) async fn peer_unary(c: &Clients) -> Result<Seen, String> {
    let url = c.peer_url.as_deref().ok_or("no peer")?;
    let response = c
        .http
        .post(url)
        .header("authorization", format!("Bearer {PEER_KEY}"))
        .header("content-type", "application/json")
        .body(c.unary_body.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!(
            "peer: HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ));
    }
    let json: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    if json.get("status").and_then(Value::as_str) != Some("completed") {
        return Err(format!(
            "peer: the response did not complete ({MODEL}, {PROMPT:?}): {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ));
    }
    Ok(Seen {
        events: 1,
        first_delta: None,
    })
}
