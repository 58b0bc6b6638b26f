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

#[test]
fn demo_serves_and_sigterm_exits_cleanly() {
    let mut child = gateway(&[
        "--demo",
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--drain-delay",
        "0",
    ])
    .stderr(Stdio::null())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    // The first "serving gRPC" log line says the address.
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
        while let Some(_m) = stream.message().await.unwrap() {
            count += 1;
        }
        assert!(count > 5);
    });
    // SIGTERM: the process drains and exits 0.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = std::time::Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
}
