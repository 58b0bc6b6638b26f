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
//!
//! Layout: this file holds the plan and the run (which figures, in which order); `process`
//! controls the gateway process (start, CPU, RSS, kill); `scenarios` makes the calls (direct and
//! through the gateway, the slow streams, the IO-free hot path); `sampling` runs closed loops and
//! side-by-side comparisons; `report` prints the table and writes the JSON.

mod overload;
mod peer;
mod process;
mod report;
mod sampling;
mod scenarios;

use crate::process::{Gateway, open_file_limit, raise_open_file_limit};
use crate::report::{Report, Target};
use crate::sampling::{Block, compare, mib};
use crate::scenarios::{Clients, IMAGE_MODEL, IMAGE_SIZE, Op, Slow, hot_path, slow_streams, words};
use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use bytes::Bytes;
use openai_grpc_gateway::{
    fake::{self, FakeOpenAi, Scenario},
    pb::{
        images_service_client::ImagesServiceClient,
        responses_service_client::ResponsesServiceClient,
    },
};
use serde_json::json;

/// The gateway binary that `cargo bench` builds alongside this target (release profile).
pub(crate) const GATEWAY_BIN: &str = env!("CARGO_BIN_EXE_openai-grpc-gateway");
/// The model named in every request.
pub(crate) const MODEL: &str = "gpt-4.1-mini";
/// The key the gateway is started with (a fake; the fake upstream accepts any).
pub(crate) const API_KEY: &str = "sk-bench-0123456789abcdef";
/// The prompt of the unary and time-to-first-delta requests.
pub(crate) const PROMPT: &str = "Write a 1-sentence welcome message for a new user.";
/// Set in the environment of a re-executed bench process (after raising its open-file limit).
pub(crate) const REEXEC_ENV: &str = "GATEWAY_BENCH_REEXEC";
/// gRPC connections from the client to the gateway for concurrent work (one HTTP/2 connection
/// is served by one task in the gateway, so a single one would cap it at one core).
pub(crate) const CHANNELS: usize = 4;

// ------------------------------------------------------------------------------------------------
// Plan: what one run measures, full or quick.

#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) quick: bool,
    /// `--only a,b`: run only these parts (for profiling): unary, images, throughput, ttfd,
    /// stream, streams, slow.
    pub(crate) only: Option<Vec<String>>,
    /// `--peer-cmd CMD`: start a peer gateway with CMD and compare unary calls through it and
    /// through this gateway (nothing else runs); see `peer.rs` and `scripts/peer-litellm.sh`.
    pub(crate) peer_cmd: Option<String>,
    /// (concurrency, requests per side) for the unary latency runs.
    pub(crate) unary: Vec<(usize, usize)>,
    /// The same for CreateImage.
    pub(crate) images: Vec<(usize, usize)>,
    /// Alternating direct / gateway rounds each latency run is split into.
    pub(crate) rounds: usize,
    /// Upper bound on one side of one unary run.
    pub(crate) unary_cap: Duration,
    /// Concurrency and duration (per side, split in `rounds`) of the max-throughput run.
    pub(crate) throughput_concurrency: usize,
    pub(crate) throughput_time: Duration,
    /// Sequential streams per side for time to first delta.
    pub(crate) ttfd_streams: usize,
    /// Upper bound on one side of the time-to-first-delta run, and of one streaming run.
    pub(crate) ttfd_cap: Duration,
    pub(crate) stream_cap: Duration,
    /// Approximate events of the single long stream, and how many times each side runs it.
    pub(crate) long_stream_words: usize,
    pub(crate) long_stream_runs: usize,
    /// Concurrent streams, and the approximate words of each.
    pub(crate) many_streams: usize,
    pub(crate) many_stream_words: usize,
    /// The slow-stream runs (upstream protocol, concurrent streams), each on a fresh gateway:
    /// memory per stream and CPU per event as the number of streams grows.
    pub(crate) curve: Vec<(Upstream, usize)>,
    /// The words of each slow stream and the pause between their events.
    pub(crate) slow_stream_words: usize,
    pub(crate) slow_delay: Duration,
    /// After a 10,000-stream burst: how long RSS is watched for falling under the target.
    pub(crate) settle_for: Duration,
    /// How long the open loop of the overload run offers calls.
    pub(crate) overload_time: Duration,
}

/// The protocol the gateway speaks to the fake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upstream {
    /// HTTP/1.1 (the default for a plaintext upstream): a connection per concurrent call.
    Http1,
    /// h2c with prior knowledge (`--upstream-http2`): calls share a connection as streams.
    Http2,
}

impl Upstream {
    pub(crate) fn flags(self) -> &'static [&'static str] {
        match self {
            Upstream::Http1 => &[],
            Upstream::Http2 => &["--upstream-http2"],
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Upstream::Http1 => "HTTP/1.1",
            Upstream::Http2 => "HTTP/2",
        }
    }

    pub(crate) fn key(self) -> &'static str {
        match self {
            Upstream::Http1 => "h1",
            Upstream::Http2 => "h2",
        }
    }
}

/// The burst after which RSS must come back under [`SETTLED_MIB`].
pub(crate) const BURST: usize = 10_000;
/// RSS target after a burst, MiB; and peak RSS target for the burst.
pub(crate) const SETTLED_MIB: f64 = 64.0;
pub(crate) const BURST_PEAK_MIB: f64 = 256.0;

impl Plan {
    pub(crate) fn full() -> Self {
        Self {
            quick: false,
            only: None,
            peer_cmd: None,
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
            curve: vec![
                (Upstream::Http1, 100),
                (Upstream::Http2, 100),
                (Upstream::Http1, 1_000),
                (Upstream::Http2, 1_000),
                (Upstream::Http1, BURST),
                (Upstream::Http2, BURST),
            ],
            slow_stream_words: 12,
            slow_delay: Duration::from_millis(500),
            settle_for: Duration::from_secs(10),
            overload_time: Duration::from_secs(3),
        }
    }

    pub(crate) fn quick() -> Self {
        Self {
            quick: true,
            only: None,
            peer_cmd: None,
            unary: vec![(1, 200), (16, 600), (64, 1_000)],
            images: vec![(1, 50), (16, 100), (64, 150)],
            rounds: 2,
            unary_cap: Duration::from_millis(600),
            throughput_concurrency: 128,
            throughput_time: Duration::from_millis(800),
            ttfd_streams: 150,
            ttfd_cap: Duration::from_secs(1),
            stream_cap: Duration::from_secs(5),
            long_stream_words: 2_000,
            long_stream_runs: 1,
            many_streams: 60,
            many_stream_words: 60,
            curve: vec![(Upstream::Http1, 300), (Upstream::Http2, 300)],
            slow_stream_words: 6,
            slow_delay: Duration::from_millis(100),
            settle_for: Duration::ZERO,
            overload_time: Duration::from_millis(300),
        }
    }

    pub(crate) fn runs(&self, part: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|p| p == part))
    }

    /// Open files this process needs: the fake's side of every slow stream over HTTP/1.1 (over
    /// HTTP/2 they share one connection), the direct pool, and slack.
    pub(crate) fn files_needed(&self) -> u64 {
        (self.most_http1_streams() + 2 * self.many_streams + 1_000) as u64
    }

    fn most_http1_streams(&self) -> usize {
        self.curve
            .iter()
            .filter(|(u, _)| *u == Upstream::Http1)
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0)
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
    if let Some(i) = args.iter().position(|a| a == "--peer-cmd") {
        plan.peer_cmd = args.get(i + 1).cloned();
        plan.only = Some(vec!["peer".into()]);
    }
    if !plan.runs("slow") {
        plan.curve.clear();
    }
    if let Some(code) = raise_open_file_limit(&plan, &args) {
        std::process::exit(code);
    }
    let (soft, _) = open_file_limit("self");
    if soft < plan.files_needed() {
        let fit = soft.saturating_sub((2 * plan.many_streams + 1_000) as u64) as usize;
        eprintln!(
            "bench: open-file limit {soft} is below the {} needed; at most {fit} slow streams over HTTP/1.1",
            plan.files_needed(),
        );
        for (upstream, n) in &mut plan.curve {
            if *upstream == Upstream::Http1 {
                *n = (*n).min(fit.max(1));
            }
        }
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

// ------------------------------------------------------------------------------------------------
// The run.

pub(crate) async fn run(plan: Plan) -> Result<(), String> {
    let total = Instant::now();
    let target_dir = Path::new(GATEWAY_BIN)
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf);
    let out_dir = target_dir.join("bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;

    let fake = FakeOpenAi::start().await.map_err(|e| e.to_string())?;
    let mut gw = Gateway::spawn(&fake.base_url(), &out_dir.join("gateway.log"), &[])?;
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
        peer_url: None,
    };

    // Warm-up: connections, pools, lazy statics, allocator, on both sides.
    let part = Instant::now();
    let mut warm_ups = vec![(Op::Unary, if plan.quick { 150 } else { 400 })];
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

    took("warm-up", part);
    if let Some(cmd) = &plan.peer_cmd {
        peer_rows(&plan, cmd, &fake, &gw, &clients, &out_dir, &mut report).await?;
    }

    let part = Instant::now();
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
                if concurrency == 16 {
                    Target::RatioAtLeast(0.8)
                } else {
                    Target::None
                },
            );
            report.figure(
                &format!("unary_c{concurrency}_cpu_per_request"),
                &format!("gateway CPU per request, c={concurrency}"),
                None,
                Some(pair.cpu_per_call()),
                "us",
                match concurrency {
                    1 => Target::AtMost(100.0),
                    16 => Target::AtMost(60.0),
                    _ => Target::None,
                },
            );
        }
    }
    took("unary", part);

    let part = Instant::now();
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
                Target::None,
            );
        }
    }
    took("images", part);

    let part = Instant::now();
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
            Target::None,
        );
    }
    took("throughput", part);

    let part = Instant::now();
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
    took("ttfd", part);

    let part = Instant::now();
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
    took("stream", part);

    let part = Instant::now();
    if plan.runs("streams") {
        // Many concurrent streams, all started at once; through the gateway as it runs above
        // (HTTP/1.1 upstream), then through one speaking HTTP/2 to the fake.
        let events = fake::text_events(MODEL, &words(plan.many_stream_words));
        let n = events.len() as u64;
        let streams = plan.many_streams;
        let block = Block::new(1, streams, streams, plan.stream_cap);
        let queue = || {
            for _ in 0..streams {
                fake.push(Scenario::events(events.clone()));
            }
        };
        for upstream in [Upstream::Http1, Upstream::Http2] {
            let other;
            let (target, clients) = match upstream {
                Upstream::Http1 => (&gw, &clients),
                Upstream::Http2 => {
                    let mut h2 = Gateway::spawn(
                        &fake.base_url(),
                        &out_dir.join("gateway-h2.log"),
                        upstream.flags(),
                    )?;
                    h2.wait_ready().await?;
                    let grpc = connect(&h2).await?;
                    other = (
                        h2,
                        Clients {
                            grpc,
                            ..clients.clone()
                        },
                    );
                    (&other.0, &other.1)
                }
            };
            let pair = compare(target, clients, Op::Stream, block, queue).await?;
            pair.expect_events(n)?;
            let (key, label) = (upstream.key(), upstream.label());
            report.figure(
                &format!("concurrent_streams_events_per_second_{key}"),
                &format!("events/s, {streams} streams x {n}, {label} upstream"),
                Some(pair.direct.per_second(pair.direct.events)),
                Some(pair.gateway.per_second(pair.gateway.events)),
                "ev/s",
                Target::None,
            );
            report.figure(
                &format!("concurrent_streams_cpu_per_event_{key}"),
                &format!("gateway CPU per event, {streams} streams, {label}"),
                None,
                Some(pair.cpu_per_event()),
                "us",
                Target::AtMost(3.0),
            );
        }
    }
    took("streams", part);

    // The direct pool's idle connections would hold file descriptors in the next run.
    drop(clients);

    // Overload: twice the rate the gateway sustains, against its default limits.
    let part = Instant::now();
    if plan.runs("overload") {
        overload(&plan, &fake, &out_dir, &mut report).await?;
    }
    took("overload", part);

    // Many slow streams at once, each count on a fresh gateway: memory per stream, CPU per
    // event, no event lost, and whether memory comes back after the burst.
    let mut lost = None;
    for &(upstream, streams) in &plan.curve {
        let part = Instant::now();
        let mut fresh = Gateway::spawn(
            &fake.base_url(),
            &out_dir.join(format!("gateway-slow-{}-{streams}.log", upstream.key())),
            upstream.flags(),
        )?;
        fresh.wait_ready().await?;
        let settle = if streams >= BURST || plan.quick {
            ((SETTLED_MIB * 1024.0 * 1024.0) as u64, plan.settle_for)
        } else {
            (u64::MAX, Duration::ZERO)
        };
        let slow = slow_streams(&plan, &fake, &fresh, streams, settle).await?;
        report_slow(&mut report, upstream, &slow);
        took(
            &format!("{streams} slow streams, {}", upstream.label()),
            part,
        );
        if lost.is_none() {
            lost = slow.loss();
        }
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
    let name = if plan.peer_cmd.is_some() {
        "gateway-peer.json"
    } else if plan.quick {
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

/// The gRPC clients of [`CHANNELS`] connections to `gw`.
async fn connect(
    gw: &Gateway,
) -> Result<Vec<ResponsesServiceClient<tonic::transport::Channel>>, String> {
    let mut grpc = Vec::new();
    for _ in 0..CHANNELS {
        let channel = gw.channel().connect().await.map_err(|e| e.to_string())?;
        grpc.push(ResponsesServiceClient::new(channel));
    }
    Ok(grpc)
}

/// The rows of one slow-stream run.
fn report_slow(report: &mut Report, upstream: Upstream, slow: &Slow) {
    let (n, label, key) = (slow.streams, upstream.label(), upstream.key());
    let burst = n >= BURST;
    report.figure(
        &format!("slow_{key}_{n}_peak_rss"),
        &format!("{n} slow streams, {label} upstream: peak RSS"),
        None,
        Some(mib(slow.peak_rss)),
        "MiB",
        if burst {
            Target::AtMost(BURST_PEAK_MIB)
        } else {
            Target::None
        },
    );
    report.figure(
        &format!("slow_{key}_{n}_kib_per_stream"),
        &format!("  per open stream (from {:.1} MiB)", mib(slow.rss_before)),
        None,
        Some(slow.kib_per_stream()),
        "KiB",
        Target::None,
    );
    report.figure(
        &format!("slow_{key}_{n}_cpu_per_event"),
        "  gateway CPU per event (set-up included)",
        None,
        Some(slow.cpu_per_event()),
        "us",
        Target::None,
    );
    report.figure(
        &format!("slow_{key}_{n}_lost_events"),
        &format!(
            "  lost events ({} of {} received)",
            slow.received, slow.sent
        ),
        None,
        Some(slow.sent.saturating_sub(slow.received) as f64),
        "events",
        Target::AtMost(0.0),
    );
    report.figure(
        &format!("slow_{key}_{n}_failed"),
        "  streams that failed",
        None,
        Some(slow.errors as f64),
        "streams",
        Target::AtMost(0.0),
    );
    report.figure(
        &format!("slow_{key}_{n}_peak_open"),
        "  streams open at once (peak)",
        None,
        Some(slow.peak_open as f64),
        "streams",
        Target::AtLeast(n as f64),
    );
    if !slow.after.is_empty() && slow.after.len() > 1 || burst {
        let (at, rss) = slow.settled();
        report.figure(
            &format!("slow_{key}_{n}_settled_rss"),
            &format!("  RSS after the burst ({at:.1} s after it ended)"),
            None,
            Some(mib(rss)),
            "MiB",
            if burst {
                Target::AtMost(SETTLED_MIB)
            } else {
                Target::None
            },
        );
    }
    report.extra(&format!("slow_{key}_{n}"), {
        let mut extra = slow.extra.clone();
        extra["rss_after_s_bytes"] = serde_json::json!(slow.after);
        extra
    });
}

/// The overload run: the saturation rate of a gateway with its default load-shedding limits
/// (closed loop, 128 workers), then an open loop at twice that rate.
async fn overload(
    plan: &Plan,
    fake: &FakeOpenAi,
    out_dir: &Path,
    report: &mut Report,
) -> Result<(), String> {
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let mut gw = Gateway::spawn_with(
        &fake.base_url(),
        &out_dir.join("gateway-overload.log"),
        &[],
        &["--metrics-listen", &metrics],
    )?;
    gw.wait_ready().await?;
    let http = reqwest::Client::new();
    let clients = Clients {
        http,
        responses_url: format!("{}/responses", fake.base_url()),
        images_url: format!("{}/images/generations", fake.base_url()),
        grpc: connect(&gw).await?,
        images: Vec::new(),
        unary_body: Bytes::new(),
        stream_body: Bytes::new(),
        image_body: Bytes::new(),
        peer_url: None,
    };
    let saturated = {
        let c = clients.clone();
        sampling::closed_loop(
            plan.throughput_concurrency,
            usize::MAX,
            plan.throughput_time / 2,
            move |i| {
                let c = c.clone();
                async move { scenarios::gateway_unary(&c, i).await }
            },
        )
        .await
    };
    if saturated.ok == 0 {
        return Err(format!(
            "overload: no call succeeded at saturation: {:?}",
            saturated.first_error
        ));
    }
    let rate = saturated.per_second(saturated.ok);
    let scrape = || async {
        reqwest::get(format!("http://{metrics}/metrics"))
            .await
            .map_err(|e| format!("overload: metrics: {e}"))?
            .text()
            .await
            .map_err(|e| format!("overload: metrics: {e}"))
    };
    let before = scrape().await?;
    let run = overload::open_loop(&clients, 2.0 * rate, plan.overload_time).await;
    let mut admitted = run.admitted.clone();
    let p99_ms = sampling::percentile(&mut admitted, 99.0) / 1000.0;
    // Admitted calls share the gateway's default 1,024 slots: at the saturation rate a slot
    // turns over in about 1,024 / rate seconds, which bounds an admitted call's time in the
    // gateway; twice that is the target.
    let bound_ms = 2.0 * 1024.0 / rate * 1000.0;
    let seconds = run.wall.as_secs_f64().max(1e-9);
    // The same calls as the gateway timed them (its duration histogram, doubling buckets: the
    // upper bound of the bucket holding the 99th percentile), without the client's own queueing.
    let after = scrape().await?;
    let name = "gateway_rpc_duration_seconds";
    let inside_p99_ms = histogram_p99(&before, &after, name, "CreateResponse").map(|s| s * 1000.0);
    report.figure(
        "overload_saturation",
        "overload: saturation rate (c=128, default limits)",
        None,
        Some(rate),
        "req/s",
        Target::None,
    );
    report.figure(
        "overload_offered",
        "overload: offered (open loop, 2x saturation)",
        None,
        Some(run.offered as f64 / plan.overload_time.as_secs_f64()),
        "req/s",
        Target::None,
    );
    report.figure(
        "overload_admitted",
        "overload: admitted and answered",
        None,
        Some(run.admitted.len() as f64 / seconds),
        "req/s",
        Target::None,
    );
    report.figure(
        "overload_shed",
        "overload: shed with RESOURCE_EXHAUSTED",
        None,
        Some(run.shed as f64),
        "calls",
        Target::AtLeast(1.0),
    );
    report.figure(
        "overload_failed",
        "overload: failed otherwise",
        None,
        Some(run.failed as f64),
        "calls",
        Target::AtMost(0.0),
    );
    report.figure(
        "overload_admitted_p99",
        "overload: admitted P99",
        None,
        Some(p99_ms),
        "ms",
        Target::AtMost(bound_ms),
    );
    report.figure(
        "overload_admitted_p99_in_gateway",
        "  the same, as the gateway timed them (bucket)",
        None,
        inside_p99_ms,
        "ms",
        Target::AtMost(bound_ms),
    );
    report.figure(
        "overload_slowest_refusal",
        "overload: slowest refusal",
        None,
        Some(run.slowest_shed as f64 / 1e6),
        "ms",
        Target::None,
    );
    report.extra(
        "overload",
        serde_json::json!({
            "saturation_rps": rate, "offered": run.offered, "admitted": run.admitted.len(),
            "shed": run.shed, "failed": run.failed, "first_failure": run.first_failure,
            "admitted_p99_ms": p99_ms, "bound_ms": bound_ms, "wall_s": seconds,
        }),
    );
    if run.failed > 0 {
        return Err(format!(
            "overload: {} calls failed other than by shedding: {:?}",
            run.failed, run.first_failure
        ));
    }
    Ok(())
}

/// The peer comparison: unary calls at c=1 and c=16, short streams and one long stream,
/// direct against this gateway and direct against the peer, each pair in alternating rounds.
async fn peer_rows(
    plan: &Plan,
    cmd: &str,
    fake: &FakeOpenAi,
    gw: &Gateway,
    clients: &Clients,
    out_dir: &Path,
    report: &mut Report,
) -> Result<(), String> {
    let mut peer = peer::Peer::spawn(cmd, &fake.base_url(), &out_dir.join("peer.log"))?;
    let clients = Clients {
        peer_url: Some(format!("{}/responses", peer.base_url())),
        ..clients.clone()
    };
    peer.wait_ready(&clients).await?;
    compare(
        &peer,
        &clients,
        Op::PeerUnary,
        Block::new(1, 16, 400, Duration::from_secs(20)),
        || {},
    )
    .await?;
    for &(concurrency, requests) in plan.unary.iter().filter(|(c, _)| *c <= 16) {
        let block = Block::new(plan.rounds, concurrency, requests, plan.unary_cap);
        let ours = compare(gw, &clients, Op::Unary, block, || {}).await?;
        let theirs = compare(&peer, &clients, Op::PeerUnary, block, || {}).await?;
        for (who, pair) in [("gateway", &ours), ("peer", &theirs)] {
            report.latency(
                &format!("peer_{who}_unary_c{concurrency}"),
                &format!("{who}: unary c={concurrency}"),
                &pair.direct.latencies,
                &pair.gateway.latencies,
                None,
            );
            report.figure(
                &format!("peer_{who}_unary_c{concurrency}_throughput"),
                &format!("{who}: unary c={concurrency} throughput"),
                Some(pair.direct.per_second(pair.direct.ok)),
                Some(pair.gateway.per_second(pair.gateway.ok)),
                "req/s",
                Target::None,
            );
            report.figure(
                &format!("peer_{who}_unary_c{concurrency}_cpu_per_request"),
                &format!("{who}: CPU per request, c={concurrency}"),
                None,
                Some(pair.cpu_per_call()),
                "us",
                Target::None,
            );
        }
    }
    // Streams: the default transcript one at a time (time to first delta), then one long
    // stream as fast as the fake sends it (CPU per event); the peer gets the same SSE.
    let block = Block::new(plan.rounds, 1, plan.ttfd_streams, plan.ttfd_cap);
    let ours = compare(gw, &clients, Op::Stream, block, || {}).await?;
    let theirs = compare(&peer, &clients, Op::PeerStream, block, || {}).await?;
    for (who, pair) in [("gateway", &ours), ("peer", &theirs)] {
        report.latency(
            &format!("peer_{who}_ttfd"),
            &format!("{who}: time to first delta"),
            &pair.direct.first_deltas,
            &pair.gateway.first_deltas,
            None,
        );
        report.figure(
            &format!("peer_{who}_ttfd_cpu_per_stream"),
            &format!("{who}: CPU per short stream"),
            None,
            Some(pair.cpu_per_call()),
            "us",
            Target::None,
        );
    }
    let events = fake::text_events(MODEL, &words(plan.long_stream_words));
    let n = events.len() as u64;
    let runs = plan.long_stream_runs;
    let block = Block::new(runs, 1, runs, plan.stream_cap * runs as u32);
    let queue = || fake.push(Scenario::events(events.clone()));
    let ours = compare(gw, &clients, Op::Stream, block, queue).await?;
    let theirs = compare(&peer, &clients, Op::PeerStream, block, queue).await?;
    for (who, pair) in [("gateway", &ours), ("peer", &theirs)] {
        pair.expect_events(n)?;
        report.figure(
            &format!("peer_{who}_one_stream_events_per_second"),
            &format!("{who}: events/s, one stream of {n}"),
            Some(pair.direct.per_second(pair.direct.events)),
            Some(pair.gateway.per_second(pair.gateway.events)),
            "ev/s",
            Target::None,
        );
        report.figure(
            &format!("peer_{who}_one_stream_cpu_per_event"),
            &format!("{who}: CPU per event, one stream"),
            None,
            Some(pair.cpu_per_event()),
            "us",
            Target::None,
        );
    }
    Ok(())
}

/// How long a part of the run took, on stderr (the table is on stdout).
fn took(part: &str, since: Instant) {
    eprintln!("bench: {part}: {:.1} s", since.elapsed().as_secs_f64());
}

/// The upper bound of the histogram bucket that holds the 99th percentile of `name` for calls
/// of `method` that ended OK between two scrapes of Prometheus text (`None` if there were none).
fn histogram_p99(before: &str, after: &str, name: &str, method: &str) -> Option<f64> {
    let buckets = |text: &str| -> Vec<(f64, f64)> {
        let mut out: Vec<(f64, f64)> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{name}_bucket{{")))
            .filter(|l| l.contains(&format!("method=\"{method}\"")) && l.contains("code=\"Ok\""))
            .filter_map(|l| {
                let le = l.split("le=\"").nth(1)?.split('"').next()?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                let count: f64 = l.rsplit(' ').next()?.parse().ok()?;
                Some((le, count))
            })
            .collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    };
    let (before, after) = (buckets(before), buckets(after));
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| {
            let was = before
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0.0, |(_, n)| *n);
            (*le, n - was)
        })
        .collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    delta
        .iter()
        .find(|(_, cumulative)| *cumulative >= 0.99 * total)
        .map(|(le, _)| *le)
}
