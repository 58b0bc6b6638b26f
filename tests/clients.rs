//! The client examples in `examples/`, run against a test gateway exactly as a reader would run
//! them: each streams a response (the deltas joined equal `output_text`) and reads the details
//! of a failure (ErrorInfo reason; RetryInfo on a rate limit).
//!
//! * `examples/rust_client.rs` is compiled into this test as a module, and its
//!   `stream_response` called.
//! * `examples/node/client.js` runs under `node`, with its packages (examples/node's lock file)
//!   installed on first use into `target/node-example` by `scripts/example-tools.sh`.

mod common;

#[path = "../examples/rust_client.rs"]
#[allow(dead_code, unreachable_pub)]
mod rust_client;

use std::{sync::OnceLock, time::Duration};

use common::{Harness, repo_root};
use openai_grpc_gateway::fake::{Scenario, error_body};
use serde_json::Value;
use tokio::process::Command;
use tonic::Code;

/// A gateway that hands a rate limit straight back (no retries), so the clients see RetryInfo.
async fn gateway() -> Harness {
    Harness::start_with(|c| c.retry.max_retries = 0).await
}

/// The fake's next answer: 429 with `retry-after-ms: 1500`.
fn rate_limit() -> Scenario {
    Scenario::Error {
        status: 429,
        body: error_body(
            "Rate limit reached for gpt-4.1 on requests per min (RPM): Limit 3, Used 3.",
            "requests",
            None,
            Some("rate_limit_exceeded"),
        ),
        headers: vec![("retry-after-ms".into(), "1500".into())],
    }
}

#[tokio::test]
async fn the_rust_example_streams_and_reads_error_details() {
    let h = gateway().await;
    let endpoint = h.endpoint();

    let mut printed = Vec::new();
    let done = rust_client::stream_response(&endpoint, "gpt-4.1", "Write a haiku", &mut printed)
        .await
        .expect("streams");
    assert!(!done.joined.is_empty());
    assert_eq!(done.joined, done.output_text);
    assert!(
        String::from_utf8(printed)
            .unwrap()
            .starts_with(&done.joined),
        "the deltas were printed as they came"
    );

    let failed = rust_client::stream_response(&endpoint, "does-not-exist", "hi", &mut Vec::new())
        .await
        .expect_err("unknown model");
    assert_eq!(failed.code, Code::NotFound);
    assert_eq!(failed.reason, "UPSTREAM_NOT_FOUND");
    assert_eq!(failed.retry_delay, None);

    h.fake.push(rate_limit());
    let failed = rust_client::stream_response(&endpoint, "gpt-4.1", "hi", &mut Vec::new())
        .await
        .expect_err("rate limited");
    assert_eq!(failed.code, Code::ResourceExhausted);
    assert_eq!(failed.reason, "UPSTREAM_RATE_LIMITED");
    assert_eq!(failed.retry_delay, Some(Duration::from_millis(1500)));
}

/// `target/node-example`, installed once per test binary.
fn node_modules() -> std::path::PathBuf {
    static SETUP: OnceLock<()> = OnceLock::new();
    SETUP.get_or_init(|| {
        let status = std::process::Command::new("bash")
            .arg(repo_root().join("scripts/example-tools.sh"))
            .status()
            .expect("run scripts/example-tools.sh");
        assert!(
            status.success(),
            "installing the Node example's packages failed"
        );
    });
    repo_root().join("target/node-example/node_modules")
}

/// Runs the Node example; returns its JSON summary (the last line) and everything it printed.
async fn node_client(h: &Harness, model: &str) -> (Value, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new("node")
            .arg(repo_root().join("examples/node/client.js"))
            .arg(h.addr.to_string())
            .arg(model)
            .arg(repo_root().join("proto"))
            // CommonJS `require` looks here too: the packages live under target/, not beside
            // the example (where `npm install` puts them for a reader).
            .env("NODE_PATH", node_modules())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the example finishes")
    .expect("node runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .to_string();
    let summary = serde_json::from_str(&last).unwrap_or_else(|e| panic!("{e}: {printed}"));
    (summary, printed)
}

#[tokio::test]
async fn the_node_example_streams_and_reads_error_details() {
    let h = gateway().await;

    let (done, printed) = node_client(&h, "gpt-4.1").await;
    assert_eq!(done["code"], "OK", "{printed}");
    let joined = done["joined"].as_str().unwrap();
    assert!(!joined.is_empty());
    assert_eq!(done["joined"], done["outputText"]);
    assert!(printed.starts_with(joined), "{printed}");

    let (failed, printed) = node_client(&h, "does-not-exist").await;
    assert_eq!(failed["code"], "NOT_FOUND", "{printed}");
    assert_eq!(failed["reason"], "UPSTREAM_NOT_FOUND");
    assert_eq!(failed["domain"], "openai-grpc-gateway");
    assert!(
        failed["upstreamRequestId"]
            .as_str()
            .unwrap()
            .starts_with("req_")
    );

    h.fake.push(rate_limit());
    let (failed, printed) = node_client(&h, "gpt-4.1").await;
    assert_eq!(failed["code"], "RESOURCE_EXHAUSTED", "{printed}");
    assert_eq!(failed["reason"], "UPSTREAM_RATE_LIMITED");
    assert_eq!(failed["retryDelaySeconds"], 1.5);
    assert!(printed.contains("retry after 1.5 s"), "{printed}");
}
