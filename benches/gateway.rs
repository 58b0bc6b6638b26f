//! The gateway's overhead against a direct call to the same fake upstream, side by side in one
//! run. BENCHMARKS.md records a full run and explains every figure.
//!
//! ```text
//! cargo bench --bench gateway              # full run, at most 5 minutes
//! cargo bench --bench gateway -- --quick   # smaller counts, under 30 s (CI)
//! cargo test --bench gateway               # the quick run, in the test profile
//! <bench binary> --hot-path stream|unary N   # profiling driver (no IO), see BENCHMARKS.md
//! ```
//!
//! Set-up: the fake OpenAI runs inside this process; the gateway is the release binary, run as a
//! separate process pointed at it, so its own CPU time (`/proc/<pid>/stat`) and RSS
//! (`/proc/<pid>/status`) are measured without the fake's or the client's cost mixed in. Every
//! gateway figure is paired with the same operation sent straight to the fake (reqwest for
//! HTTP, the crate's own SSE decoder plus serde_json for streams), in alternating rounds so
//! that drift on a shared machine hits both sides alike. All traffic is on loopback, every loop
//! is bounded in count and time, and the gateway process is killed when the run ends.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    future::Future,
    hint::black_box,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use openai_grpc_gateway::{
    convert::responses as convert,
    fake::{self, Ending, FakeOpenAi, Framing, Scenario},
    openai::UpstreamMeta,
    pb::{
        CreateImageRequest, CreateResponseRequest, create_image_response::Event as ImageEvent,
        create_response_response::Event as PbEvent, images_service_client::ImagesServiceClient,
        responses_service_client::ResponsesServiceClient,
    },
    sse::SseDecoder,
};
use prost::Message as _;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tonic::transport::{Channel, Endpoint};

/// The gateway binary that `cargo bench` builds alongside this target (release profile).
const GATEWAY_BIN: &str = env!("CARGO_BIN_EXE_openai-grpc-gateway");
/// The model named in every request.
const MODEL: &str = "gpt-4.1-mini";
/// The key the gateway is started with (a fake; the fake upstream accepts any).
const API_KEY: &str = "sk-bench-0123456789abcdef";
/// The prompt of the unary and time-to-first-delta requests.
const PROMPT: &str = "Write a 1-sentence welcome message for a new user.";
/// Set in the environment of a re-executed bench process (after raising its open-file limit).
const REEXEC_ENV: &str = "GATEWAY_BENCH_REEXEC";
/// gRPC connections from the client to the gateway for concurrent work (one HTTP/2 connection
/// is served by one task in the gateway, so a single one would cap it at one core).
const CHANNELS: usize = 4;

// ------------------------------------------------------------------------------------------------
// Plan: what one run measures, full or quick.

#[derive(Debug, Clone)]
struct Plan {
    quick: bool,
    /// `--only a,b`: run only these parts (for profiling): unary, images, throughput, ttfd,
    /// stream, streams, slow.
    only: Option<Vec<String>>,
    /// (concurrency, requests per side) for the unary latency runs.
    unary: Vec<(usize, usize)>,
    /// The same for CreateImage.
    images: Vec<(usize, usize)>,
    /// Alternating direct / gateway rounds each latency run is split into.
    rounds: usize,
    /// Upper bound on one side of one unary run.
    unary_cap: Duration,
    /// Concurrency and duration (per side, split in `rounds`) of the max-throughput run.
    throughput_concurrency: usize,
    throughput_time: Duration,
    /// Sequential streams per side for time to first delta.
    ttfd_streams: usize,
    /// Upper bound on one side of the time-to-first-delta run, and of one streaming run.
    ttfd_cap: Duration,
    stream_cap: Duration,
    /// Approximate events of the single long stream, and how many times each side runs it.
    long_stream_words: usize,
    long_stream_runs: usize,
    /// Concurrent streams, and the approximate words of each.
    many_streams: usize,
    many_stream_words: usize,
    /// Concurrent slow streams, their words and the pause between their events.
    slow_streams: usize,
    slow_stream_words: usize,
    slow_delay: Duration,
}

impl Plan {
    fn full() -> Self {
        Self {
            quick: false,
            only: None,
            unary: vec![(1, 10_000), (16, 20_000), (64, 30_000)],
            images: vec![(1, 3_000), (16, 6_000), (64, 9_000)],
            rounds: 4,
            unary_cap: Duration::from_secs(20),
            throughput_concurrency: 128,
            throughput_time: Duration::from_secs(8),
            ttfd_streams: 3_000,
            ttfd_cap: Duration::from_secs(20),
            stream_cap: Duration::from_secs(60),
            long_stream_words: 16_000,
            long_stream_runs: 3,
            many_streams: 1_000,
            many_stream_words: 200,
            slow_streams: 10_000,
            slow_stream_words: 12,
            slow_delay: Duration::from_millis(500),
        }
    }

    fn quick() -> Self {
        Self {
            quick: true,
            only: None,
            unary: vec![(1, 400), (16, 1_500), (64, 2_500)],
            images: vec![(1, 150), (16, 400), (64, 600)],
            rounds: 2,
            unary_cap: Duration::from_secs(1),
            throughput_concurrency: 128,
            throughput_time: Duration::from_millis(800),
            ttfd_streams: 200,
            ttfd_cap: Duration::from_secs(1),
            stream_cap: Duration::from_secs(5),
            long_stream_words: 2_000,
            long_stream_runs: 1,
            many_streams: 100,
            many_stream_words: 80,
            slow_streams: 500,
            slow_stream_words: 6,
            slow_delay: Duration::from_millis(100),
        }
    }

    fn runs(&self, part: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|p| p == part))
    }

    /// Open files this process needs: the fake's side of every slow stream, the direct pool,
    /// and slack.
    fn files_needed(&self) -> u64 {
        (self.slow_streams + 2 * self.many_streams + 1_000) as u64
    }
}

// ------------------------------------------------------------------------------------------------
// Entry point.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--hot-path") {
        let kind = args.get(i + 1).map_or("stream", String::as_str);
        let n = args
            .get(i + 2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(2_000);
        hot_path(kind, n);
        return;
    }
    // `cargo bench` passes `--bench`. Without it (`cargo test --benches` or `--all-targets`, or
    // the binary run by hand) the quick run is the default: a smoke test, not a 5-minute run.
    // Anything else unknown is ignored so that libtest-style filters do not break the run.
    let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--quick");
    let mut plan = if !full { Plan::quick() } else { Plan::full() };
    if let Some(i) = args.iter().position(|a| a == "--only") {
        plan.only = args
            .get(i + 1)
            .map(|list| list.split(',').map(str::to_owned).collect());
    }
    if !plan.runs("slow") {
        plan.slow_streams = 0;
    }
    if let Some(code) = raise_open_file_limit(&plan, &args) {
        std::process::exit(code);
    }
    let (soft, _) = open_file_limit("self");
    if soft < plan.files_needed() {
        let fit = soft.saturating_sub((2 * plan.many_streams + 1_000) as u64) as usize;
        eprintln!(
            "bench: open-file limit {soft} is below the {} needed; running {fit} slow streams instead of {}",
            plan.files_needed(),
            plan.slow_streams
        );
        plan.slow_streams = fit.max(1);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(plan)) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("bench failed: {e}");
            std::process::exit(1);
        }
    }
}

/// Re-executes this process under `ulimit -n <hard>` when its soft open-file limit is too low
/// for the slow-stream run (the fake's side of each stream is a socket here). Returns the exit
/// code of the re-executed run, or None to carry on in this process.
fn raise_open_file_limit(plan: &Plan, args: &[String]) -> Option<i32> {
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
fn open_file_limit(pid: &str) -> (u64, u64) {
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

/// The gateway binary running as a child process; killed on drop.
struct Gateway {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    clock_ticks: u64,
}

impl Gateway {
    /// Starts the gateway on a free loopback port, in front of `base_url`, with the highest
    /// open-file limit allowed (10,000 streams are 10,000 upstream HTTP/1.1 connections).
    fn spawn(base_url: &str, log: &Path) -> Result<Self, String> {
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
            // The default load-shedding limits (1,024 calls in flight, 256 per connection) are
            // below what this benchmark holds open on purpose.
            .args(["--max-in-flight", "20000"])
            .args(["--max-streams-per-connection", "20000"])
            .args(["--max-concurrent-streams", "20000"])
            // A clean environment: no proxy settings or developer variables leak in; the key
            // travels in the environment, as the gateway's docs advise.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("OPENAI_API_KEY", API_KEY)
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
    async fn wait_ready(&mut self) -> Result<(), String> {
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

    fn channel(&self) -> Endpoint {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("valid URI")
            .tcp_nodelay(true)
    }

    /// User + system CPU time of the whole process (all threads, live and exited).
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<u64> = rest
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        let ticks = fields.get(10).copied().unwrap_or(0) + fields.get(11).copied().unwrap_or(0);
        Duration::from_nanos(ticks * 1_000_000_000 / self.clock_ticks.max(1))
    }

    /// (VmRSS, VmHWM) in bytes.
    fn rss(&self) -> (u64, u64) {
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

    fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid)).map_or(0, |d| d.count())
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

/// Clock ticks per second for `/proc/<pid>/stat` (`getconf CLK_TCK`, 100 on Linux).
fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

// ------------------------------------------------------------------------------------------------
// Clients: one operation, direct or through the gateway.

#[derive(Clone)]
struct Clients {
    http: reqwest::Client,
    responses_url: String,
    images_url: String,
    grpc: Vec<ResponsesServiceClient<Channel>>,
    images: Vec<ImagesServiceClient<Channel>>,
    unary_body: Bytes,
    stream_body: Bytes,
    image_body: Bytes,
}

impl Clients {
    fn grpc(&self, i: usize) -> ResponsesServiceClient<Channel> {
        self.grpc[i % self.grpc.len()].clone()
    }

    fn images(&self, i: usize) -> ImagesServiceClient<Channel> {
        self.images[i % self.images.len()].clone()
    }
}

/// The image request: a small PNG (256x256, about 1 KiB) as base64, so the figures show the
/// gateway's cost rather than the copying of a large image.
const IMAGE_MODEL: &str = "dall-e-2";
const IMAGE_SIZE: &str = "256x256";

fn image_request() -> CreateImageRequest {
    CreateImageRequest {
        prompt: PROMPT.into(),
        model: Some(IMAGE_MODEL.into()),
        size: Some(IMAGE_SIZE.into()),
        response_format: Some("b64_json".into()),
        ..Default::default()
    }
}

/// CreateImage straight to the fake: POST, parse the JSON, decode the base64 image.
async fn direct_image(c: &Clients) -> Result<Seen, String> {
    let response = c
        .http
        .post(&c.images_url)
        .header("authorization", format!("Bearer {API_KEY}"))
        .header("content-type", "application/json")
        .body(c.image_body.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("direct image: HTTP {}", response.status()));
    }
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    let json: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let b64 = json["data"][0]["b64_json"]
        .as_str()
        .ok_or("direct image: no b64_json")?;
    let png = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| e.to_string())?;
    if !png.starts_with(b"\x89PNG") {
        return Err("direct image: not a PNG".into());
    }
    Ok(Seen {
        events: 1,
        first_delta: None,
    })
}

/// The same through the gateway: CreateImage, every chunk of the image read to the end.
async fn gateway_image(c: &Clients, i: usize) -> Result<Seen, String> {
    let mut stream = c
        .images(i)
        .create_image(image_request())
        .await
        .map_err(|s| format!("gateway image: {s}"))?
        .into_inner();
    let mut png = Vec::new();
    let mut last = false;
    while let Some(message) = stream
        .message()
        .await
        .map_err(|s| format!("gateway image: {s}"))?
    {
        if let Some(ImageEvent::ImageChunk(chunk)) = message.event {
            png.extend_from_slice(&chunk.data);
            last |= chunk.last;
        }
    }
    if !last || !png.starts_with(b"\x89PNG") {
        return Err("gateway image: no complete PNG".into());
    }
    Ok(Seen {
        events: 1,
        first_delta: None,
    })
}

fn grpc_request(stream: bool) -> CreateResponseRequest {
    CreateResponseRequest {
        model: MODEL.into(),
        input_text: Some(PROMPT.into()),
        stream: Some(stream),
        ..Default::default()
    }
}

/// What one operation saw.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// Events (or messages) received.
    events: u64,
    /// Time to the first text delta, if there was one.
    first_delta: Option<Duration>,
}

/// A non-streamed CreateResponse straight to the fake: POST, read, parse the JSON.
async fn direct_unary(c: &Clients) -> Result<Seen, String> {
    let response = c
        .http
        .post(&c.responses_url)
        .header("authorization", format!("Bearer {API_KEY}"))
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(c.unary_body.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("direct: HTTP {}", response.status()));
    }
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    let json: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    if json.get("status").and_then(Value::as_str) != Some("completed") {
        return Err("direct: the response did not complete".into());
    }
    Ok(Seen {
        events: 1,
        first_delta: None,
    })
}

/// The same call through the gateway: CreateResponse with `stream: false`, read to the end.
async fn gateway_unary(c: &Clients, i: usize) -> Result<Seen, String> {
    let mut stream = c
        .grpc(i)
        .create_response(grpc_request(false))
        .await
        .map_err(|s| format!("gateway: {s}"))?
        .into_inner();
    let mut seen = Seen::default();
    while let Some(message) = stream
        .message()
        .await
        .map_err(|s| format!("gateway: {s}"))?
    {
        if !matches!(message.event, Some(PbEvent::Completed(_))) {
            return Err("gateway: the response did not complete".into());
        }
        seen.events += 1;
    }
    if seen.events != 1 {
        return Err(format!("gateway: {} messages, want 1", seen.events));
    }
    Ok(seen)
}

/// A streamed CreateResponse straight to the fake: POST, decode SSE, parse every event's JSON
/// (what an OpenAI SDK does), until the body ends.
async fn direct_stream(c: &Clients) -> Result<Seen, String> {
    let started = Instant::now();
    let mut response = c
        .http
        .post(&c.responses_url)
        .header("authorization", format!("Bearer {API_KEY}"))
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .body(c.stream_body.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("direct: HTTP {}", response.status()));
    }
    let mut decoder = SseDecoder::new();
    let mut seen = Seen::default();
    let mut terminal = false;
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        decoder.feed(&chunk);
        while let Some(event) = decoder.next_event().map_err(|e| e.to_string())? {
            let json: Value = serde_json::from_slice(&event.data).map_err(|e| e.to_string())?;
            seen.events += 1;
            match json.get("type").and_then(Value::as_str) {
                Some("response.output_text.delta") if seen.first_delta.is_none() => {
                    seen.first_delta = Some(started.elapsed());
                }
                Some("response.completed") => terminal = true,
                _ => {}
            }
        }
    }
    if !terminal {
        return Err("direct: the stream ended without response.completed".into());
    }
    Ok(seen)
}

/// The same stream through the gateway: one typed message per event, until the stream ends.
async fn gateway_stream(c: &Clients, i: usize) -> Result<Seen, String> {
    let started = Instant::now();
    let mut stream = c
        .grpc(i)
        .create_response(grpc_request(true))
        .await
        .map_err(|s| format!("gateway: {s}"))?
        .into_inner();
    let mut seen = Seen::default();
    let mut terminal = false;
    while let Some(message) = stream
        .message()
        .await
        .map_err(|s| format!("gateway: {s}"))?
    {
        seen.events += 1;
        match message.event {
            Some(PbEvent::OutputTextDelta(_)) if seen.first_delta.is_none() => {
                seen.first_delta = Some(started.elapsed());
            }
            Some(PbEvent::Completed(_)) => terminal = true,
            _ => {}
        }
    }
    if !terminal {
        return Err("gateway: the stream ended without completed".into());
    }
    Ok(seen)
}

// ------------------------------------------------------------------------------------------------
// Load generation.

/// The result of running one operation many times.
#[derive(Debug, Default)]
struct Run {
    /// Latency of every successful operation, ns.
    latencies: Vec<u64>,
    /// Time to first delta of every successful stream, ns.
    first_deltas: Vec<u64>,
    events: u64,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    wall: Duration,
}

impl Run {
    fn merge(&mut self, other: Run) {
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

    fn per_second(&self, n: u64) -> f64 {
        n as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Runs `op` `total` times with `concurrency` workers in a closed loop (each worker starts its
/// next operation when the previous one ends), stopping early at `cap`.
async fn closed_loop<F, Fut>(concurrency: usize, total: usize, cap: Duration, op: F) -> Run
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

/// The operations measured side by side.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// CreateResponse with `stream: false`.
    Unary,
    /// CreateImage.
    Image,
    /// CreateResponse streamed to the end.
    Stream,
}

/// One operation, straight to the fake or through the gateway (`worker` picks the connection).
async fn call(c: Clients, op: Op, through_gateway: bool, worker: usize) -> Result<Seen, String> {
    match (op, through_gateway) {
        (Op::Unary, false) => direct_unary(&c).await,
        (Op::Unary, true) => gateway_unary(&c, worker).await,
        (Op::Image, false) => direct_image(&c).await,
        (Op::Image, true) => gateway_image(&c, worker).await,
        (Op::Stream, false) => direct_stream(&c).await,
        (Op::Stream, true) => gateway_stream(&c, worker).await,
    }
}

/// How a comparison is cut into blocks.
#[derive(Debug, Clone, Copy)]
struct Block {
    /// Alternating direct / gateway rounds.
    rounds: usize,
    /// Workers of each block.
    concurrency: usize,
    /// Calls per block.
    calls: usize,
    /// Upper bound on each block.
    cap: Duration,
}

impl Block {
    /// `total` calls per side and at most `cap` per side, split into `rounds`.
    fn new(rounds: usize, concurrency: usize, total: usize, cap: Duration) -> Self {
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
struct Pair {
    direct: Run,
    gateway: Run,
    /// The gateway's CPU time over its own blocks.
    gateway_cpu: Duration,
}

impl Pair {
    fn cpu_per_call(&self) -> f64 {
        micros(self.gateway_cpu) / self.gateway.ok.max(1) as f64
    }

    fn cpu_per_event(&self) -> f64 {
        micros(self.gateway_cpu) / self.gateway.events.max(1) as f64
    }

    /// Every stream of both sides carried exactly `per_stream` events.
    fn expect_events(&self, per_stream: u64) -> Result<(), String> {
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
async fn compare(
    gw: &Gateway,
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

// ------------------------------------------------------------------------------------------------
// The run.

async fn run(plan: Plan) -> Result<(), String> {
    let total = Instant::now();
    let target_dir = Path::new(GATEWAY_BIN)
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf);
    let out_dir = target_dir.join("bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;

    let fake = FakeOpenAi::start().await.map_err(|e| e.to_string())?;
    let mut gw = Gateway::spawn(&fake.base_url(), &out_dir.join("gateway.log"))?;
    gw.wait_ready().await?;
    let mut report = Report::new(&plan, &gw);

    // Idle RSS: started, health answered, nothing else.
    let (idle_rss, _) = gw.rss();
    report.figure(
        "idle",
        "idle RSS",
        None,
        Some(mib(idle_rss)),
        "MiB",
        Target::AtMost(15.0),
    );

    let (mut grpc, mut images) = (Vec::new(), Vec::new());
    for _ in 0..CHANNELS {
        let channel = gw.channel().connect().await.map_err(|e| e.to_string())?;
        grpc.push(ResponsesServiceClient::new(channel.clone()));
        images.push(ImagesServiceClient::new(channel));
    }
    let http = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .build()
        .map_err(|e| e.to_string())?;
    let body = |stream: bool| {
        Bytes::from(
            serde_json::to_vec(&json!({"model": MODEL, "input": PROMPT, "stream": stream}))
                .expect("JSON"),
        )
    };
    let clients = Clients {
        http,
        responses_url: format!("{}/responses", fake.base_url()),
        images_url: format!("{}/images/generations", fake.base_url()),
        grpc,
        images,
        unary_body: body(false),
        stream_body: body(true),
        image_body: Bytes::from(
            serde_json::to_vec(&json!({"model": IMAGE_MODEL, "prompt": PROMPT,
                                       "size": IMAGE_SIZE, "response_format": "b64_json"}))
            .expect("JSON"),
        ),
    };

    // Warm-up: connections, pools, lazy statics, allocator, on both sides.
    let mut warm_ups = vec![(Op::Unary, 400)];
    if plan.runs("images") {
        warm_ups.push((Op::Image, 50));
    }
    for (op, n) in warm_ups {
        compare(
            &gw,
            &clients,
            op,
            Block::new(1, 16, n, Duration::from_secs(5)),
            || {},
        )
        .await?;
    }

    if plan.runs("unary") {
        for &(concurrency, requests) in &plan.unary {
            let block = Block::new(plan.rounds, concurrency, requests, plan.unary_cap);
            let pair = compare(&gw, &clients, Op::Unary, block, || {}).await?;
            report.latency(
                &format!("unary_c{concurrency}"),
                &format!("unary c={concurrency}"),
                &pair.direct.latencies,
                &pair.gateway.latencies,
                (concurrency == 1).then_some(150.0),
            );
            report.figure(
                &format!("unary_c{concurrency}_throughput"),
                &format!("unary c={concurrency} throughput"),
                Some(pair.direct.per_second(pair.direct.ok)),
                Some(pair.gateway.per_second(pair.gateway.ok)),
                "req/s",
                Target::None,
            );
            report.figure(
                &format!("unary_c{concurrency}_cpu_per_request"),
                &format!("gateway CPU per request, c={concurrency}"),
                None,
                Some(pair.cpu_per_call()),
                "us",
                Target::AtMost(60.0),
            );
        }
    }

    if plan.runs("images") {
        for &(concurrency, requests) in &plan.images {
            let block = Block::new(plan.rounds, concurrency, requests, plan.unary_cap);
            let pair = compare(&gw, &clients, Op::Image, block, || {}).await?;
            report.latency(
                &format!("image_c{concurrency}"),
                &format!("CreateImage c={concurrency}"),
                &pair.direct.latencies,
                &pair.gateway.latencies,
                (concurrency == 1).then_some(150.0),
            );
            report.figure(
                &format!("image_c{concurrency}_cpu_per_request"),
                &format!("gateway CPU per CreateImage, c={concurrency}"),
                None,
                Some(pair.cpu_per_call()),
                "us",
                Target::AtMost(60.0),
            );
        }
    }

    if plan.runs("throughput") {
        // Duration-bound: as many calls as the workers manage.
        let concurrency = plan.throughput_concurrency;
        let block = Block::new(plan.rounds, concurrency, usize::MAX, plan.throughput_time);
        let pair = compare(&gw, &clients, Op::Unary, block, || {}).await?;
        report.figure(
            "max_throughput",
            &format!("max unary throughput (c={concurrency})"),
            Some(pair.direct.per_second(pair.direct.ok)),
            Some(pair.gateway.per_second(pair.gateway.ok)),
            "req/s",
            Target::None,
        );
        report.figure(
            "max_throughput_cpu_per_request",
            "gateway CPU per request at max throughput",
            None,
            Some(pair.cpu_per_call()),
            "us",
            Target::AtMost(60.0),
        );
    }

    if plan.runs("ttfd") {
        // One stream at a time, the fake's default transcript.
        let block = Block::new(plan.rounds, 1, plan.ttfd_streams, plan.ttfd_cap);
        let pair = compare(&gw, &clients, Op::Stream, block, || {}).await?;
        report.latency(
            "ttfd",
            "time to first delta",
            &pair.direct.first_deltas,
            &pair.gateway.first_deltas,
            Some(100.0),
        );
        report.figure(
            "ttfd_cpu_per_stream",
            "gateway CPU per short stream",
            None,
            Some(pair.cpu_per_call()),
            "us",
            Target::None,
        );
    }

    if plan.runs("stream") {
        // One long stream, as fast as the fake can send it.
        let events = fake::text_events(MODEL, &words(plan.long_stream_words));
        let n = events.len() as u64;
        let runs = plan.long_stream_runs;
        let block = Block::new(runs, 1, runs, plan.stream_cap * runs as u32);
        let queue = || fake.push(Scenario::events(events.clone()));
        let pair = compare(&gw, &clients, Op::Stream, block, queue).await?;
        pair.expect_events(n)?;
        report.figure(
            "one_stream_events_per_second",
            &format!("events/s, one stream of {n}"),
            Some(pair.direct.per_second(pair.direct.events)),
            Some(pair.gateway.per_second(pair.gateway.events)),
            "ev/s",
            Target::None,
        );
        report.figure(
            "one_stream_cpu_per_event",
            "gateway CPU per event, one stream",
            None,
            Some(pair.cpu_per_event()),
            "us",
            Target::AtMost(3.0),
        );
    }

    if plan.runs("streams") {
        // Many concurrent streams, all started at once.
        let events = fake::text_events(MODEL, &words(plan.many_stream_words));
        let n = events.len() as u64;
        let streams = plan.many_streams;
        let block = Block::new(1, streams, streams, plan.stream_cap);
        let queue = || {
            for _ in 0..streams {
                fake.push(Scenario::events(events.clone()));
            }
        };
        let pair = compare(&gw, &clients, Op::Stream, block, queue).await?;
        pair.expect_events(n)?;
        report.figure(
            "concurrent_streams_events_per_second",
            &format!("events/s, {streams} streams x {n}"),
            Some(pair.direct.per_second(pair.direct.events)),
            Some(pair.gateway.per_second(pair.gateway.events)),
            "ev/s",
            Target::None,
        );
        report.figure(
            "concurrent_streams_cpu_per_event",
            &format!("gateway CPU per event, {streams} streams"),
            None,
            Some(pair.cpu_per_event()),
            "us",
            Target::AtMost(3.0),
        );
    }

    // The direct pool's idle connections would hold file descriptors in the next run.
    drop(clients);

    // Many slow streams at once: the gateway's memory, and no event lost.
    let mut lost = None;
    if plan.runs("slow") {
        lost = slow_streams(&plan, &fake, &gw, &mut report).await?;
    }

    let (after_rss, hwm) = gw.rss();
    report.figure(
        "rss_after_run",
        "RSS after the run (idle again)",
        None,
        Some(mib(after_rss)),
        "MiB",
        Target::None,
    );
    report.figure(
        "rss_high_water_mark",
        "RSS high-water mark of the run",
        None,
        Some(mib(hwm)),
        "MiB",
        Target::None,
    );
    // A quick run (CI) does not overwrite the figures of the last full run.
    let name = if plan.quick {
        "gateway-quick.json"
    } else {
        "gateway.json"
    };
    report.finish(total.elapsed(), &out_dir.join(name))?;
    if let Some(lost) = lost {
        return Err(lost);
    }
    drop(gw);
    Ok(())
}

/// `plan.slow_streams` streams held open at once, each sending its events with a pause between
/// them; the gateway's RSS is sampled while they run, and every event must arrive. Returns what
/// was lost, if anything (after the figures are reported).
async fn slow_streams(
    plan: &Plan,
    fake: &FakeOpenAi,
    gw: &Gateway,
    report: &mut Report,
) -> Result<Option<String>, String> {
    let events = fake::text_events(MODEL, &words(plan.slow_stream_words));
    let per_stream = events.len() as u64;
    let streams = plan.slow_streams;
    for _ in 0..streams {
        fake.push(Scenario::Events {
            events: events.clone(),
            framing: Framing {
                delay: Some(plan.slow_delay),
                ..Framing::default()
            },
            ending: Ending::Close,
        });
    }
    drop(events);
    // Own connections, so that each carries a bounded number of streams.
    let per_channel = 1_000;
    let mut clients = Vec::new();
    for _ in 0..streams.div_ceil(per_channel) {
        let channel = gw
            .channel()
            .initial_connection_window_size(Some(8 * 1024 * 1024))
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        clients.push(ResponsesServiceClient::new(channel));
    }
    let (rss_before, _) = gw.rss();
    let open = Arc::new(AtomicUsize::new(0));
    let peak_open = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let cpu_before = gw.cpu();
    let started = Instant::now();
    let deadline = started + plan.slow_delay * (per_stream as u32 + 2) + plan.stream_cap;
    let mut tasks = JoinSet::new();
    for i in 0..streams {
        let mut client = clients[i / per_channel].clone();
        let (open, peak_open, received) = (open.clone(), peak_open.clone(), received.clone());
        tasks.spawn(async move {
            let work = async {
                let mut stream = client
                    .create_response(grpc_request(true))
                    .await
                    .map_err(|s| s.to_string())?
                    .into_inner();
                let mut n = 0u64;
                let mut terminal = false;
                while let Some(message) = stream.message().await.map_err(|s| s.to_string())? {
                    if n == 0 {
                        let now = open.fetch_add(1, Ordering::Relaxed) + 1;
                        peak_open.fetch_max(now, Ordering::Relaxed);
                    }
                    n += 1;
                    received.fetch_add(1, Ordering::Relaxed);
                    terminal |= matches!(message.event, Some(PbEvent::Completed(_)));
                }
                if n > 0 {
                    open.fetch_sub(1, Ordering::Relaxed);
                }
                if terminal {
                    Ok(n)
                } else {
                    Err(format!("ended after {n} events without completed"))
                }
            };
            match tokio::time::timeout_at(deadline.into(), work).await {
                Ok(r) => r,
                Err(_) => Err("timed out".to_string()),
            }
        });
    }
    // Sample the gateway's RSS until every stream has ended.
    let mut peak_rss = 0u64;
    let mut ok = 0u64;
    let mut errors = 0u64;
    let mut first_error = None;
    let mut all_open_after = None;
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok(Ok(_))) => ok += 1,
                Some(Ok(Err(e))) => {
                    errors += 1;
                    first_error.get_or_insert(e);
                }
                Some(Err(e)) => {
                    errors += 1;
                    first_error.get_or_insert(e.to_string());
                }
                None => break,
            },
            _ = ticker.tick() => {
                peak_rss = peak_rss.max(gw.rss().0);
                if all_open_after.is_none() && peak_open.load(Ordering::Relaxed) == streams {
                    all_open_after = Some(started.elapsed());
                }
            }
        }
    }
    let wall = started.elapsed();
    let cpu = gw.cpu().saturating_sub(cpu_before);
    let sent = per_stream * streams as u64;
    let got = received.load(Ordering::Relaxed);
    let peak = peak_open.load(Ordering::Relaxed);
    report.figure(
        "slow_streams_rss",
        &format!("gateway peak RSS, {streams} slow streams"),
        None,
        Some(mib(peak_rss)),
        "MiB",
        Target::AtMost(200.0),
    );
    report.figure(
        "slow_streams_rss_per_stream",
        &format!(
            "  of which per open stream (from {:.1} MiB)",
            mib(rss_before)
        ),
        None,
        Some(peak_rss.saturating_sub(rss_before) as f64 / 1024.0 / peak.max(1) as f64),
        "KiB",
        Target::None,
    );
    report.figure(
        "slow_streams_lost_events",
        &format!("lost events ({got} of {sent} received)"),
        None,
        Some(sent.saturating_sub(got) as f64),
        "events",
        Target::AtMost(0.0),
    );
    report.figure(
        "slow_streams_failed",
        "streams that failed",
        None,
        Some(errors as f64),
        "streams",
        Target::AtMost(0.0),
    );
    report.figure(
        "slow_streams_peak_open",
        "streams open at once (peak)",
        None,
        Some(peak as f64),
        "streams",
        Target::AtLeast(streams as f64),
    );
    report.extra(
        "slow_streams",
        json!({
            "streams": streams,
            "events_per_stream": per_stream,
            "delay_ms": plan.slow_delay.as_millis() as u64,
            "events_sent": sent,
            "events_received": got,
            "ok": ok,
            "errors": errors,
            "first_error": first_error,
            "all_open_after_s": all_open_after.map(|d| d.as_secs_f64()),
            "wall_s": wall.as_secs_f64(),
            "gateway_cpu_s": cpu.as_secs_f64(),
            "gateway_threads": gw.threads(),
            "gateway_open_file_limit": open_file_limit(&gw.pid.to_string()).0,
        }),
    );
    if got != sent || errors > 0 {
        return Ok(Some(format!(
            "slow streams: {errors} failed (first: {first_error:?}); {got} of {sent} events arrived"
        )));
    }
    Ok(None)
}

/// About `n` words of English-like text (the fake splits it into about 1.2 deltas per word).
fn words(n: usize) -> String {
    const WORDS: [&str; 16] = [
        "the",
        "gateway",
        "forwards",
        "every",
        "event",
        "as",
        "a",
        "typed",
        "message,",
        "in",
        "order,",
        "and",
        "adds",
        "almost",
        "nothing.",
        "Streaming",
    ];
    let mut text = String::new();
    for i in 0..n {
        if i > 0 {
            text.push(' ');
        }
        text.push_str(WORDS[i % WORDS.len()]);
    }
    text
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Nearest-rank percentile of unsorted ns samples, in µs.
fn percentile(samples: &mut [u64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1] as f64 / 1e3
}

// ------------------------------------------------------------------------------------------------
// Report: a table on stdout and JSON on disk.

#[derive(Debug, Clone, Copy)]
enum Target {
    None,
    AtMost(f64),
    AtLeast(f64),
}

struct Row {
    label: String,
    direct: Option<f64>,
    gateway: Option<f64>,
    /// gateway - direct for latencies, gateway / direct for rates.
    delta: Option<String>,
    /// The value held against the target.
    judged: Option<f64>,
    unit: String,
    target: Target,
}

struct Report {
    rows: Vec<Row>,
    json: BTreeMap<String, Value>,
}

impl Report {
    fn new(plan: &Plan, gw: &Gateway) -> Self {
        let mut json = BTreeMap::new();
        json.insert(
            "mode".into(),
            json!(if plan.quick { "quick" } else { "full" }),
        );
        json.insert("machine".into(), machine());
        json.insert("plan".into(), json!(format!("{plan:?}")));
        json.insert(
            "gateway".into(),
            json!({
                "binary": GATEWAY_BIN,
                "pid": gw.pid,
                "open_file_limit": open_file_limit(&gw.pid.to_string()).0,
                "client_grpc_connections": CHANNELS,
            }),
        );
        Self {
            rows: Vec::new(),
            json,
        }
    }

    /// p50 / p90 / p99 of both sides and their difference; `target_p99_us` judges the added P99.
    fn latency(
        &mut self,
        key: &str,
        label: &str,
        direct: &[u64],
        gateway: &[u64],
        target_p99_us: Option<f64>,
    ) {
        let (mut d, mut g) = (direct.to_vec(), gateway.to_vec());
        let mut entry = serde_json::Map::new();
        for p in [50.0, 90.0, 99.0] {
            let (dp, gp) = (percentile(&mut d, p), percentile(&mut g, p));
            let added = gp - dp;
            let target = match target_p99_us {
                Some(t) if p == 99.0 => Target::AtMost(t),
                _ => Target::None,
            };
            self.rows.push(Row {
                label: format!("{label} p{p}"),
                direct: Some(dp),
                gateway: Some(gp),
                delta: Some(format!("{added:+.0} us")),
                judged: Some(added),
                unit: "us".into(),
                target,
            });
            entry.insert(
                format!("p{p}"),
                json!({"direct_us": dp, "gateway_us": gp, "added_us": added,
                       "meets_target": target.met(added)}),
            );
        }
        entry.insert(
            "samples".into(),
            json!({"direct": direct.len(), "gateway": gateway.len()}),
        );
        self.json.insert(key.into(), Value::Object(entry));
    }

    /// One figure: a gateway value (judged against `target`), optionally beside a direct value.
    fn figure(
        &mut self,
        key: &str,
        label: &str,
        direct: Option<f64>,
        gateway: Option<f64>,
        unit: &str,
        target: Target,
    ) {
        let delta = match (direct, gateway) {
            (Some(d), Some(g)) if d > 0.0 => Some(format!("x{:.2}", g / d)),
            _ => None,
        };
        self.rows.push(Row {
            label: label.into(),
            direct,
            gateway,
            delta,
            judged: gateway,
            unit: unit.into(),
            target,
        });
        self.json.insert(
            key.into(),
            json!({"direct": direct, "gateway": gateway, "unit": unit,
                   "meets_target": gateway.and_then(|g| target.met(g))}),
        );
    }

    fn extra(&mut self, key: &str, value: Value) {
        self.json.insert(key.into(), value);
    }

    fn finish(mut self, elapsed: Duration, path: &Path) -> Result<(), String> {
        self.json
            .insert("elapsed_s".into(), json!(elapsed.as_secs_f64()));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n{:<46} {:>12} {:>12} {:>12}  {:<22} verdict",
            "figure", "direct", "gateway", "difference", "target"
        );
        let _ = writeln!(out, "{}", "-".repeat(118));
        let (mut met, mut missed) = (0, 0);
        for row in &self.rows {
            let num = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format_num(v, &row.unit));
            let verdict = match row.judged.and_then(|v| row.target.met(v)) {
                Some(true) => {
                    met += 1;
                    "MEETS"
                }
                Some(false) => {
                    missed += 1;
                    "MISSES"
                }
                None => "",
            };
            let _ = writeln!(
                out,
                "{:<46} {:>12} {:>12} {:>12}  {:<22} {verdict}",
                row.label,
                num(row.direct),
                num(row.gateway),
                row.delta.as_deref().unwrap_or(""),
                row.target.describe(&row.unit, row.delta.is_some()),
            );
        }
        let _ = writeln!(
            out,
            "\n{met} targets met, {missed} missed; {:.1} s; JSON: {}",
            elapsed.as_secs_f64(),
            path.display()
        );
        print!("{out}");
        self.json
            .insert("targets".into(), json!({"met": met, "missed": missed}));
        let text = serde_json::to_string_pretty(&self.json).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
    }
}

impl Target {
    fn met(self, v: f64) -> Option<bool> {
        match self {
            Target::None => None,
            Target::AtMost(t) => Some(v <= t),
            Target::AtLeast(t) => Some(v >= t),
        }
    }

    fn describe(self, unit: &str, on_difference: bool) -> String {
        let what = if on_difference { "added " } else { "" };
        match self {
            Target::None => String::new(),
            Target::AtMost(t) => format!("{what}<= {} {unit}", format_num(t, unit)),
            Target::AtLeast(t) => format!("{what}>= {} {unit}", format_num(t, unit)),
        }
    }
}

fn format_num(v: f64, unit: &str) -> String {
    match unit {
        "us" if v.abs() < 10.0 => format!("{v:.2}"),
        "MiB" => format!("{v:.1}"),
        _ if v.abs() >= 100.0 || v.fract() == 0.0 => format!("{v:.0}"),
        _ => format!("{v:.1}"),
    }
}

/// nproc, CPU model and memory, for the record.
fn machine() -> Value {
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

// ------------------------------------------------------------------------------------------------
// The hot path without IO, for callgrind: `--hot-path stream N` decodes, converts and encodes N
// copies of a realistic text stream; `--hot-path unary N` does N non-streamed calls' work.

/// One SSE event block per event, as OpenAI frames them (one body chunk each).
fn sse_chunks(events: &[Value]) -> Vec<Bytes> {
    events
        .iter()
        .map(|e| {
            let ty = e.get("type").and_then(Value::as_str).unwrap_or_default();
            Bytes::from(format!("event: {ty}\ndata: {e}\n\n"))
        })
        .collect()
}

fn hot_path(kind: &str, n: usize) {
    let meta = UpstreamMeta {
        request_id: Some("req_0123456789abcdef0123456789abcdef".into()),
        retry_after: None,
    };
    let events = fake::text_events(MODEL, &words(60));
    // Warm the lazily built descriptor pool and converter plans outside the measured loop.
    let _ = convert::event(
        serde_json::to_vec(&events[0]).expect("JSON").as_slice(),
        &meta,
    );
    let started = Instant::now();
    let (count, bytes) = match kind {
        "unary" => {
            let response = events
                .last()
                .and_then(|e| e.get("response"))
                .cloned()
                .expect("a completed event");
            let body = Bytes::from(serde_json::to_vec(&response).expect("JSON"));
            let request = CreateResponseRequest {
                model: MODEL.into(),
                input_text: Some(PROMPT.into()),
                instructions: Some("You are a helpful assistant.".into()),
                stream: Some(false),
                ..Default::default()
            };
            hot_unary(&request, &body, &meta, n)
        }
        _ => hot_stream(&sse_chunks(&events), &meta, n),
    };
    let elapsed = started.elapsed();
    println!(
        "hot path {kind}: {count} messages ({bytes} protobuf bytes) in {:.3} s = {:.0} ns per message ({} events per transcript)",
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / count.max(1) as f64,
        events.len()
    );
}

/// SSE decode -> convert -> protobuf encode (as tonic does), for `n` copies of the stream.
#[inline(never)]
fn hot_stream(chunks: &[Bytes], meta: &UpstreamMeta, n: usize) -> (u64, u64) {
    let mut out = BytesMut::with_capacity(64 * 1024);
    let (mut count, mut bytes) = (0u64, 0u64);
    for _ in 0..n {
        let mut decoder = SseDecoder::new();
        for chunk in chunks {
            decoder.feed(chunk);
            while let Some(event) = decoder.next_event().expect("valid SSE") {
                let converted = convert::event(&event.data, meta).expect("converts");
                out.clear();
                converted.message.encode(&mut out).expect("buffer grows");
                bytes += out.len() as u64;
                count += 1;
                black_box(&converted.outcome);
            }
        }
        black_box(decoder.finish());
    }
    (count, bytes)
}

/// Request body out, JSON body in, one message out, for `n` calls, as the handler does it:
/// `non_streamed` on the raw body.
#[inline(never)]
fn hot_unary(
    request: &CreateResponseRequest,
    body: &Bytes,
    meta: &UpstreamMeta,
    n: usize,
) -> (u64, u64) {
    let mut out = BytesMut::with_capacity(64 * 1024);
    let (mut count, mut bytes) = (0u64, 0u64);
    for _ in 0..n {
        black_box(convert::request_body(black_box(request), false));
        let converted = convert::non_streamed(body, meta).expect("converts");
        out.clear();
        converted.message.encode(&mut out).expect("buffer grows");
        bytes += out.len() as u64;
        count += 1;
    }
    (count, bytes)
}
