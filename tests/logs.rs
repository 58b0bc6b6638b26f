//! Log output, captured at trace level by one process-wide subscriber (a thread-local one
//! races with tracing's callsite cache when tests run in parallel): the per-RPC JSON line with
//! its fields, W3C trace context continued upstream, no secret in any line or error, and the
//! start-up warning that caller bindings live in memory only.

mod common;

use std::{
    io::Write,
    sync::{Arc, Mutex, OnceLock},
};

use common::{Harness, TEST_KEY, drain, text_request, with_metadata};
use openai_grpc_gateway::{
    auth::parse_tokens,
    config::{Config, Drain, RedisUrl},
    fake::{self, Scenario},
    openai::{ApiKey, UpstreamConfig},
};
use tracing::Instrument as _;

const SVC_TOKEN: &str = "svc-token-0123456789abcdef";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything logged by this test binary, at trace level, as JSON lines.
fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .init();
        captured
    })
}

fn text() -> String {
    String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned()
}

#[tokio::test]
async fn one_json_log_line_per_rpc_with_its_fields_and_the_trace_continued_upstream() {
    logs();
    let h = Harness::start().await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = format!("00-{trace}-00f067aa0ba902b7-01");
    let request = with_metadata(
        text_request("Write a 1-sentence welcome message for a new user."),
        &[("traceparent", &parent), ("tracestate", "vendor=abc")],
    );
    let stream = h
        .responses()
        .create_response(request)
        .await
        .unwrap()
        .into_inner();
    assert!(drain(stream).await.1.is_none());
    // The upstream request continues the caller's trace with the gateway's own span id.
    let sent = h.fake.requests()[0].clone();
    let traceparent = sent
        .header("traceparent")
        .expect("traceparent sent upstream");
    assert!(
        traceparent.starts_with(&format!("00-{trace}-")),
        "{traceparent}"
    );
    assert!(traceparent.ends_with("-01"));
    assert!(
        !traceparent.contains("00f067aa0ba902b7"),
        "a new span id for the gateway's hop"
    );
    assert_eq!(sent.header("tracestate"), Some("vendor=abc"));
    h.stop().await;

    let logs = text();
    let line = logs
        .lines()
        .find(|l| l.contains("rpc finished") && l.contains(trace))
        .unwrap_or_else(|| panic!("no rpc line for the trace in:\n{logs}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let span = &v["span"];
    assert_eq!(span["method"], "CreateResponse");
    assert_eq!(span["model"], "gpt-4.1");
    assert_eq!(span["profile"], "");
    assert_eq!(span["code"], "Ok");
    assert_eq!(span["trace_id"], trace);
    assert!(
        span["upstream_request_id"]
            .as_str()
            .unwrap()
            .starts_with("req_")
    );
    assert!(span["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(span["ttfe_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(span["input_tokens"], 20);
    assert_eq!(span["output_tokens"], 12);
}

/// Runs the suite's scenarios with every log at trace level captured, and checks that no key
/// or caller token appears in the logs or in any status returned to a caller.
#[tokio::test]
async fn no_secret_appears_in_logs_or_errors_at_trace_level() {
    logs();
    let caller_key = "sk-callers-secret-key-777";
    let other_token = "other-token-0123456789abcd";
    let h = Harness::start_with(|c| {
        c.auth.tokens =
            parse_tokens(&format!("svc={SVC_TOKEN},other={other_token}"), "test").unwrap();
        c.profiles.allow_caller_keys = true;
        c.retry.max_retries = 1;
        c.retry.initial_backoff = std::time::Duration::from_millis(5);
    })
    .await;
    let bearer = format!("Bearer {SVC_TOKEN}");
    let mut statuses = Vec::new();
    // Success, streamed and not.
    let ok = h
        .responses()
        .create_response(with_metadata(
            text_request("Write a 1-sentence welcome message for a new user."),
            &[("authorization", &bearer)],
        ))
        .await
        .unwrap();
    assert!(drain(ok.into_inner()).await.1.is_none());
    let mut whole = with_metadata(
        text_request("Write a 1-sentence welcome message for a new user."),
        &[("authorization", &bearer)],
    );
    whole.get_mut().stream = Some(false);
    assert!(h.call(whole).await.unwrap().1.is_none());
    // Upstream 401 (OpenAI echoes a masked key), a retried 500, a mid-stream error.
    h.fake.require_api_key("sk-some-other-key");
    statuses.push(
        h.responses()
            .create_response(with_metadata(
                text_request("Write a 1-sentence welcome message for a new user."),
                &[("authorization", &bearer)],
            ))
            .await
            .expect_err("401"),
    );
    h.fake.require_api_key(TEST_KEY);
    h.fake.push(Scenario::Error {
        status: 500,
        body: fake::error_body("boom", "server_error", None, None),
        headers: vec![],
    });
    let retried = h
        .responses()
        .create_response(with_metadata(
            text_request("Write a 1-sentence welcome message for a new user."),
            &[("authorization", &bearer)],
        ))
        .await
        .unwrap();
    assert!(drain(retried.into_inner()).await.1.is_none());
    let mut events = fake::text_events("gpt-4.1", "cut");
    events.truncate(2);
    events.push(fake::error_event(
        2,
        "tokens",
        "rate_limit_exceeded",
        "slow down",
        None,
    ));
    h.fake.push(Scenario::Events {
        events,
        framing: fake::Framing::default(),
        ending: fake::Ending::Close,
    });
    let failed = h
        .responses()
        .create_response(with_metadata(
            text_request("Write a 1-sentence welcome message for a new user."),
            &[("authorization", &bearer)],
        ))
        .await
        .unwrap();
    statuses.push(
        drain(failed.into_inner())
            .await
            .1
            .expect("mid-stream error"),
    );
    // A caller's own key (the fake accepts only the gateway's, so OpenAI's 401 echoes it back
    // masked), and a bad caller token.
    statuses.push(
        h.responses()
            .create_response(with_metadata(
                text_request("Write a 1-sentence welcome message for a new user."),
                &[("authorization", &bearer), ("x-openai-api-key", caller_key)],
            ))
            .await
            .expect_err("the fake refuses the caller's key"),
    );
    statuses.push(
        h.responses()
            .create_response(with_metadata(
                text_request("Write a 1-sentence welcome message for a new user."),
                &[("authorization", "Bearer wrong-token-but-long-enough")],
            ))
            .await
            .expect_err("bad token"),
    );
    let scraped = h.scrape().await;
    h.stop().await;

    let logs = text();
    assert!(
        logs.lines().count() > 100,
        "trace logging was captured ({} lines)",
        logs.lines().count()
    );
    assert!(logs.contains("rpc finished"));
    let errors: String = statuses.iter().map(|s| format!("{s:?}")).collect();
    for secret in [
        TEST_KEY,
        caller_key,
        SVC_TOKEN,
        other_token,
        "sk-some-other-key",
    ] {
        assert!(!logs.contains(secret), "{secret} appears in the logs");
        assert!(!errors.contains(secret), "{secret} appears in an error");
        assert!(!scraped.contains(secret), "{secret} appears in the metrics");
    }
}

/// Starts a gateway configured by `tweak` and stops it at once, inside a span naming `case`:
/// the JSON lines it logged meanwhile (the span tells them from the lines of tests running in
/// parallel).
async fn startup_lines(case: &str, tweak: impl FnOnce(&mut Config)) -> Vec<serde_json::Value> {
    logs();
    // Nothing is called upstream: the gateway only starts and stops.
    let mut upstream = UpstreamConfig::new("http://127.0.0.1:9/v1").unwrap();
    upstream.api_key = Some(ApiKey::new(TEST_KEY).unwrap());
    let mut config = Config::new(upstream);
    config.drain = Drain {
        delay: std::time::Duration::ZERO,
        timeout: std::time::Duration::from_secs(5),
    };
    tweak(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    openai_grpc_gateway::server::run_with_metrics(listener, None, config, std::future::ready(()))
        .instrument(tracing::info_span!("startup", case))
        .await
        .expect("the gateway starts and stops");
    text()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| {
            v["spans"]
                .as_array()
                .is_some_and(|spans| spans.iter().any(|s| s["case"] == case))
        })
        .collect()
}

/// The start-up lines that say caller bindings do not survive a restart.
fn restart_warnings(lines: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    lines
        .iter()
        .filter(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("do not survive a restart"))
        })
        .collect()
}

#[tokio::test]
async fn with_auth_and_no_shared_store_start_up_says_bindings_do_not_survive_a_restart() {
    let tokens = format!("svc={SVC_TOKEN}");
    let lines = startup_lines("auth-in-memory", |c| {
        c.auth.tokens = parse_tokens(&tokens, "test").unwrap();
    })
    .await;
    assert!(!lines.is_empty(), "the start-up was captured");
    let warnings = restart_warnings(&lines);
    assert_eq!(warnings.len(), 1, "{lines:#?}");
    assert_eq!(warnings[0]["level"], "WARN");
    assert!(
        warnings[0]["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("--redis-url"),
        "the warning names the fix: {}",
        warnings[0]
    );

    // Without caller auth there is one caller and nothing to isolate; with Redis the bindings
    // are shared and outlive a restart. Neither warns.
    let lines = startup_lines("no-auth", |_| {}).await;
    assert!(!lines.is_empty(), "the start-up was captured");
    assert!(restart_warnings(&lines).is_empty(), "{lines:#?}");
    let lines = startup_lines("auth-redis", |c| {
        c.auth.tokens = parse_tokens(&tokens, "test").unwrap();
        // Connected lazily: nothing listens there, and nothing is stored during this start.
        c.shared.redis = Some(RedisUrl::new("redis://127.0.0.1:9").unwrap());
    })
    .await;
    assert!(restart_warnings(&lines).is_empty(), "{lines:#?}");
    assert!(
        lines.iter().any(|v| v["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("through Redis"))),
        "{lines:#?}"
    );
}
