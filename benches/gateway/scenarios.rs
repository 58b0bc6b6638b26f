//! What is measured: the calls made directly to the fake and through the gateway (unary,
//! images, streams), the 10,000 slow streams, and the IO-free hot-path driver for profilers.

use crate::process::{Gateway, open_file_limit};
use crate::{API_KEY, MODEL, PROMPT, Plan};
use std::{
    hint::black_box,
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
use tonic::transport::Channel;

#[derive(Clone)]
pub(crate) struct Clients {
    pub(crate) http: reqwest::Client,
    pub(crate) responses_url: String,
    pub(crate) images_url: String,
    pub(crate) grpc: Vec<ResponsesServiceClient<Channel>>,
    pub(crate) images: Vec<ImagesServiceClient<Channel>>,
    pub(crate) unary_body: Bytes,
    pub(crate) stream_body: Bytes,
    pub(crate) image_body: Bytes,
    /// `POST /v1/responses` of a peer gateway (`--peer-cmd`), if one runs.
    pub(crate) peer_url: Option<String>,
}

impl Clients {
    pub(crate) fn grpc(&self, i: usize) -> ResponsesServiceClient<Channel> {
        self.grpc[i % self.grpc.len()].clone()
    }

    pub(crate) fn images(&self, i: usize) -> ImagesServiceClient<Channel> {
        self.images[i % self.images.len()].clone()
    }
}

/// The image request: a small PNG (256x256, about 1 KiB) as base64, so the figures show the
/// gateway's cost rather than the copying of a large image.
pub(crate) const IMAGE_MODEL: &str = "dall-e-2";
pub(crate) const IMAGE_SIZE: &str = "256x256";

pub(crate) fn image_request() -> CreateImageRequest {
    CreateImageRequest {
        prompt: PROMPT.into(),
        model: Some(IMAGE_MODEL.into()),
        size: Some(IMAGE_SIZE.into()),
        response_format: Some("b64_json".into()),
        ..Default::default()
    }
}

/// CreateImage straight to the fake: POST, parse the JSON, decode the base64 image.
pub(crate) async fn direct_image(c: &Clients) -> Result<Seen, String> {
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
pub(crate) async fn gateway_image(c: &Clients, i: usize) -> Result<Seen, String> {
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

pub(crate) fn grpc_request(stream: bool) -> CreateResponseRequest {
    CreateResponseRequest {
        model: MODEL.into(),
        input_text: Some(PROMPT.into()),
        stream: Some(stream),
        ..Default::default()
    }
}

/// What one operation saw.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Seen {
    /// Events (or messages) received.
    pub(crate) events: u64,
    /// Time to the first text delta, if there was one.
    pub(crate) first_delta: Option<Duration>,
}

/// A non-streamed CreateResponse straight to the fake: POST, read, parse the JSON.
pub(crate) async fn direct_unary(c: &Clients) -> Result<Seen, String> {
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
pub(crate) async fn gateway_unary(c: &Clients, i: usize) -> Result<Seen, String> {
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
pub(crate) async fn direct_stream(c: &Clients) -> Result<Seen, String> {
    sse_stream(c, &c.responses_url, API_KEY, "direct").await
}

/// A streamed CreateResponse over HTTP to `url` (the fake, or a peer gateway's HTTP API) with
/// bearer `key`: decode SSE and parse every event's JSON until the body ends.
pub(crate) async fn sse_stream(
    c: &Clients,
    url: &str,
    key: &str,
    side: &str,
) -> Result<Seen, String> {
    let started = Instant::now();
    let mut response = c
        .http
        .post(url)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .body(c.stream_body.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{side}: HTTP {}", response.status()));
    }
    let mut decoder = SseDecoder::new();
    let mut seen = Seen::default();
    let mut terminal = false;
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        decoder.feed(&chunk);
        while let Some(event) = decoder.next_event().map_err(|e| e.to_string())? {
            // Some OpenAI-compatible servers (LiteLLM's proxy) end with `data: [DONE]`.
            if event.data.as_ref() == b"[DONE]" {
                continue;
            }
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
        return Err(format!(
            "{side}: the stream ended without response.completed"
        ));
    }
    Ok(seen)
}

/// The same stream through the gateway: one typed message per event, until the stream ends.
pub(crate) async fn gateway_stream(c: &Clients, i: usize) -> Result<Seen, String> {
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

/// The operations measured side by side.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    /// CreateResponse with `stream: false`.
    Unary,
    /// CreateImage.
    Image,
    /// CreateResponse streamed to the end.
    Stream,
    /// The non-streamed call through a peer gateway's HTTP API (the "gateway" side of a
    /// comparison), against the same call direct.
    PeerUnary,
    /// The streamed call through a peer gateway's HTTP API (SSE), against the same call direct.
    PeerStream,
}

/// One operation, straight to the fake or through the gateway (`worker` picks the connection).
pub(crate) async fn call(
    c: Clients,
    op: Op,
    through_gateway: bool,
    worker: usize,
) -> Result<Seen, String> {
    match (op, through_gateway) {
        (Op::Unary, false) => direct_unary(&c).await,
        (Op::Unary, true) => gateway_unary(&c, worker).await,
        (Op::Image, false) => direct_image(&c).await,
        (Op::Image, true) => gateway_image(&c, worker).await,
        (Op::Stream, false) => direct_stream(&c).await,
        (Op::Stream, true) => gateway_stream(&c, worker).await,
        (Op::PeerUnary, false) => direct_unary(&c).await,
        (Op::PeerUnary, true) => crate::peer::peer_unary(&c).await,
        (Op::PeerStream, false) => direct_stream(&c).await,
        (Op::PeerStream, true) => crate::peer::peer_stream(&c).await,
    }
}

/// What one run of slow streams measured.
#[derive(Debug, Clone)]
pub(crate) struct Slow {
    pub(crate) streams: usize,
    pub(crate) rss_before: u64,
    pub(crate) peak_rss: u64,
    pub(crate) peak_open: usize,
    pub(crate) sent: u64,
    pub(crate) received: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) cpu: Duration,
    /// RSS samples after the last stream ended: (seconds after, bytes), until it fell under
    /// `settled_under` or `settle_for` passed.
    pub(crate) after: Vec<(f64, u64)>,
    pub(crate) extra: Value,
}

impl Slow {
    /// Peak RSS growth per stream open at the peak, KiB.
    pub(crate) fn kib_per_stream(&self) -> f64 {
        self.peak_rss.saturating_sub(self.rss_before) as f64 / 1024.0 / self.peak_open.max(1) as f64
    }

    /// Gateway CPU per event received, set-up of the streams included.
    pub(crate) fn cpu_per_event(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.received.max(1) as f64
    }

    /// The last RSS sample after the streams ended (the settled value).
    pub(crate) fn settled(&self) -> (f64, u64) {
        self.after.last().copied().unwrap_or((0.0, self.peak_rss))
    }

    /// What was lost or failed, if anything.
    pub(crate) fn loss(&self) -> Option<String> {
        (self.received != self.sent || self.errors > 0).then(|| {
            format!(
                "{} slow streams: {} failed (first: {:?}); {} of {} events arrived",
                self.streams, self.errors, self.first_error, self.received, self.sent
            )
        })
    }
}

/// `streams` streams held open at once, each sending its events with a pause between them; the
/// gateway's RSS is sampled while they run, and every event must arrive. After the last one
/// ends, RSS is sampled until it falls under `settled_under` bytes or `settle_for` passes (a
/// measurement with a bound, not a wait for a condition the run depends on).
pub(crate) async fn slow_streams(
    plan: &Plan,
    fake: &FakeOpenAi,
    gw: &Gateway,
    streams: usize,
    settle: (u64, Duration),
) -> Result<Slow, String> {
    let (settled_under, settle_for) = settle;
    let events = fake::text_events(MODEL, &words(plan.slow_stream_words));
    let per_stream = events.len() as u64;
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
    drop(clients);
    let mut after = Vec::new();
    let ended = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    loop {
        ticker.tick().await;
        let rss = gw.rss().0;
        after.push((ended.elapsed().as_secs_f64(), rss));
        if rss < settled_under || ended.elapsed() >= settle_for {
            break;
        }
    }
    Ok(Slow {
        streams,
        rss_before,
        peak_rss,
        peak_open: peak,
        sent,
        received: got,
        errors,
        first_error: first_error.clone(),
        cpu,
        after,
        extra: json!({
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
    })
}

/// About `n` words of English-like text (the fake splits it into about 1.2 deltas per word).
pub(crate) fn words(n: usize) -> String {
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

// ------------------------------------------------------------------------------------------------
// The hot path without IO, for callgrind: `--hot-path stream N` decodes, converts and encodes N
// copies of a realistic text stream; `--hot-path unary N` does N non-streamed calls' work.

/// One SSE event block per event, as OpenAI frames them (one body chunk each).
pub(crate) fn sse_chunks(events: &[Value]) -> Vec<Bytes> {
    events
        .iter()
        .map(|e| {
            let ty = e.get("type").and_then(Value::as_str).unwrap_or_default();
            Bytes::from(format!("event: {ty}\ndata: {e}\n\n"))
        })
        .collect()
}

pub(crate) fn hot_path(kind: &str, n: usize) {
    let meta = UpstreamMeta {
        request_id: Some("req_0123456789abcdef0123456789abcdef".into()),
        retry_after: None,
        rate_limit_reset: None,
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
pub(crate) fn hot_stream(chunks: &[Bytes], meta: &UpstreamMeta, n: usize) -> (u64, u64) {
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
pub(crate) fn hot_unary(
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
