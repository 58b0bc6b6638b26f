//! The `openai-grpc-gateway` binary as an operator runs it: configuration errors, `--help`,
//! demo mode, and a clean exit on SIGTERM.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

const BIN: &str = env!("CARGO_BIN_EXE_openai-grpc-gateway");

/// A command with an empty environment, so the developer's own variables never leak in.
fn gateway(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().args(args);
    cmd
}

#[test]
fn no_key_and_no_demo_refuses_to_start_with_exit_64() {
    let out = gateway(&["--listen", "127.0.0.1:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("OPENAI_API_KEY") && err.contains("--demo"),
        "{err}"
    );
}

#[test]
fn bad_config_exits_64_before_binding() {
    for args in [
        &["--demo", "--listen", "not-an-address"][..],
        &["--demo", "--base-url", "ftp://example.com"][..],
        &["--demo", "--stream-buffer", "0"][..],
        &["--demo", "--no-such-flag"][..],
    ] {
        let out = gateway(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(64),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn help_documents_the_environment_and_hides_the_key() {
    let out = gateway(&["--help"])
        .env("OPENAI_API_KEY", "sk-must-not-appear")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for name in [
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
        "GATEWAY_LISTEN",
        "--demo",
    ] {
        assert!(help.contains(name), "--help does not mention {name}");
    }
    assert!(!help.contains("sk-must-not-appear"));
}

/// Starts the binary with `args` and returns it with the gRPC address from its first log line.
fn spawn_serving(args: &[&str]) -> (std::process::Child, String) {
    let mut child = gateway(args)
        .stderr(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the gateway logs before exiting")
            .unwrap();
        if line.contains("serving gRPC") {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            break v["fields"]["addr"].as_str().unwrap().to_owned();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

fn terminate(mut child: std::process::Child) -> Option<i32> {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Wait for the exit itself (no polling), bounded in time.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the gateway exits after SIGTERM")
        .unwrap()
        .code()
}

#[test]
fn traces_are_exported_over_otlp_continuing_the_callers_trace() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // A fake server stands in for the OTLP collector: it records what it receives.
    let collector = rt
        .block_on(openai_grpc_gateway::fake::FakeOpenAi::start())
        .unwrap();
    let endpoint = format!("http://{}", collector.addr());
    let (child, addr) = spawn_serving(&[
        "--demo",
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--drain-delay",
        "0",
        "--otlp-endpoint",
        &endpoint,
    ]);
    let trace = "0af7651916cd43dd8448eb211c80319c";
    rt.block_on(async {
        use openai_grpc_gateway::pb::{
            CreateResponseRequest, responses_service_client::ResponsesServiceClient,
        };
        let mut client = ResponsesServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let mut request = tonic::Request::new(CreateResponseRequest {
            model: "gpt-4.1".into(),
            input_text: Some("hi".into()),
            ..Default::default()
        });
        request.metadata_mut().insert(
            "traceparent",
            format!("00-{trace}-b7ad6b7169203331-01").parse().unwrap(),
        );
        let mut stream = client.create_response(request).await.unwrap().into_inner();
        while stream.message().await.unwrap().is_some() {}
    });
    // Shutting down flushes the batch exporter.
    assert_eq!(terminate(child), Some(0));
    let exported: Vec<_> = collector
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/traces")
        .collect();
    assert!(!exported.is_empty(), "no OTLP export arrived");
    let body: Vec<u8> = exported.iter().flat_map(|r| r.body.to_vec()).collect();
    let trace_bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    assert!(
        body.windows(16).any(|w| w == trace_bytes),
        "the exported span is in the caller's trace"
    );
    for text in [
        "rpc",
        "CreateResponse",
        "upstream_request_id",
        "openai-grpc-gateway",
    ] {
        assert!(
            body.windows(text.len()).any(|w| w == text.as_bytes()),
            "{text} not in the exported span"
        );
    }
    assert_eq!(
        exported[0].header("content-type"),
        Some("application/x-protobuf")
    );
}

#[test]
fn demo_serves_and_sigterm_exits_cleanly() {
    let (child, addr) = spawn_serving(&[
        "--demo",
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--drain-delay",
        "0",
    ]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use openai_grpc_gateway::pb::{
            CreateResponseRequest, responses_service_client::ResponsesServiceClient,
        };
        let mut client = ResponsesServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let mut stream = client
            .create_response(CreateResponseRequest {
                model: "gpt-4.1".into(),
                input_text: Some("Write a 1-sentence welcome message for a new user.".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut count = 0;
        while stream.message().await.unwrap().is_some() {
            count += 1;
        }
        assert!(count > 5);
    });
    // SIGTERM: the process drains and exits 0.
    assert_eq!(terminate(child), Some(0));
}

#[test]
fn a_bad_limits_file_exits_64_naming_the_offending_path() {
    let dir = std::env::temp_dir().join(format!("gw-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (text, path) in [
        (
            r#"{"callers":{"billing":{"requests_per_minute":0}}}"#,
            "callers.billing.requests_per_minute",
        ),
        (r#"{"profiles":{"p":{"tokens_per_minut":5}}}"#, "profiles.p"),
        (
            r#"{"default":{"concurrent_streams":"two"}}"#,
            "default.concurrent_streams",
        ),
    ] {
        let file = dir.join("limits.json");
        std::fs::write(&file, text).unwrap();
        let out = gateway(&["--demo", "--limits-file", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--limits-file") && err.contains(path),
            "{text}: {err}"
        );
    }
    let missing = gateway(&["--demo", "--limits-file", "/nonexistent/limits.json"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(64));
    std::fs::remove_dir_all(&dir).unwrap();
}
