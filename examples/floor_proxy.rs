//! The floor of a proxy hop on this stack, for BENCHMARKS.md ("The floor: a proxy that only
//! forwards bytes"): an HTTP server that forwards `POST /v1/responses` to an upstream and
//! returns its answer byte for byte (a stream's SSE chunk by chunk). It has the gateway's
//! runtime, allocator and upstream client set-up (tokio's multi-thread runtime, mimalloc,
//! reqwest over HTTP/1.1 with `TCP_NODELAY` and up to 64 idle connections, as
//! `src/openai/mod.rs` builds it) and none of the gateway's work: no gRPC, no validation, no
//! JSON or protobuf conversion, no metrics, no logging. Whatever it costs per call is what the
//! gateway cannot go under on the same machine.
//!
//! `scripts/peer-floor.sh` runs it beside the gateway through the benchmark's peer mode
//! (`benches/gateway/peer.rs`), which starts it with `PEER_UPSTREAM` (the fake's `.../v1`) and
//! `PEER_PORT` set. Not a product: it forwards only that one path, and of the headers only
//! `accept` (and the answer's `content-type`).

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    serve::ListenerExt as _,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone)]
struct Upstream {
    client: reqwest::Client,
    url: reqwest::Url,
}

async fn forward(State(up): State<Upstream>, headers: HeaderMap, body: Bytes) -> Response {
    let mut request = up
        .client
        .post(up.url.clone())
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-floor-proxy")
        .body(body);
    if let Some(accept) = headers.get("accept") {
        request = request.header("accept", accept);
    }
    match request.send().await {
        Ok(answer) => {
            let status =
                StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let content_type = answer.headers().get("content-type").cloned();
            // The body streams through chunk by chunk (an SSE stream as it arrives).
            let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
            *response.status_mut() = status;
            if let Some(content_type) = content_type {
                response.headers_mut().insert("content-type", content_type);
            }
            response
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::var("PEER_UPSTREAM")?;
    let port: u16 = std::env::var("PEER_PORT")?.parse()?;
    let upstream = Upstream {
        client: reqwest::Client::builder()
            .http1_only()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(64)
            .build()?,
        url: format!("{}/responses", base.trim_end_matches('/')).parse()?,
    };
    let app = Router::new()
        .route("/v1/responses", post(forward))
        .with_state(upstream);
    // TCP_NODELAY on accepted connections too, as the gateway's server sets it: without it a
    // stream's first small write waits for the client's delayed ACK (about 40 ms).
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await?
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    axum::serve(listener, app).await?;
    Ok(())
}
