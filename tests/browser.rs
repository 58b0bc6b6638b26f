//! The built-in page in a real browser: Debian's headless Chromium, driven by playwright-core
//! (`web/test/browser.mjs`), against a Harness gateway that serves the page. A person's steps:
//! type a prompt, press Send, watch the output grow; streaming off; a wrong model; Cancel; an
//! image; speech; a page on another origin calling a gateway that allows it (CORS) and wants a
//! caller token. Screenshots of each land in `target/browser/`.
//!
//! Also here: the committed bundle (`web/gen`, `web/dist`) must be what `scripts/build-web.sh`
//! builds from today's protos and sources.
//!
//! The tools are installed on first use by `scripts/web-tools.sh --browser` (npm packages into
//! `target/web-tools`; the `chromium` package with apt-get when it is missing).

mod common;

use std::{
    path::PathBuf,
    process::Stdio,
    sync::OnceLock,
    time::{Duration, Instant},
};

use common::{Harness, repo_root};
use openai_grpc_gateway::{
    config::Cors,
    fake::{Scenario, error_body, tool_call_events},
    pb::{CreateResponseRequest, create_response_response},
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
    sync::Mutex,
};

/// The browser test and the bundle check both keep the 2 cores busy; run them one at a time so
/// the cancel timing measures the gateway, not the machine.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// Waits longer than any step takes on a loaded machine; reached only when something hangs.
const STEP_LIMIT: Duration = Duration::from_secs(60);

/// `target/web-tools`, installed once per test binary (with Chromium).
fn tools() -> PathBuf {
    static SETUP: OnceLock<()> = OnceLock::new();
    SETUP.get_or_init(|| {
        let status = std::process::Command::new("bash")
            .arg(repo_root().join("scripts/web-tools.sh"))
            .arg("--browser")
            .status()
            .expect("run scripts/web-tools.sh");
        assert!(status.success(), "installing the web tools failed");
    });
    repo_root().join("target/web-tools")
}

#[tokio::test]
async fn the_committed_bundle_is_what_the_build_script_makes() {
    let _serial = SERIAL.lock().await;
    tools();
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/build-web.sh"))
        .arg("--check")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run scripts/build-web.sh --check");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Node process driving Chromium: one JSON command per line in, one answer per line out.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Browser {
    async fn start() -> Self {
        let shots = repo_root().join("target/browser");
        std::fs::create_dir_all(&shots).unwrap();
        let mut child = Command::new("node")
            .arg(repo_root().join("web/test/browser.mjs"))
            .arg(tools())
            .arg(&shots)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut browser = Self {
            child,
            stdin,
            lines,
        };
        let (ready, _) = browser.answer().await;
        assert_eq!(ready["ready"], true);
        browser
    }

    /// Reads lines up to the next answer; returns it with the events before it and when each
    /// was read.
    async fn answer(&mut self) -> (Value, Vec<(Value, Instant)>) {
        let mut events = Vec::new();
        loop {
            let line = tokio::time::timeout(STEP_LIMIT, self.lines.next_line())
                .await
                .expect("the browser answers in time")
                .expect("read from the driver")
                .expect("the driver is still running");
            let seen = Instant::now();
            let message: Value = serde_json::from_str(&line).expect("a JSON line");
            if message.get("event").is_some() {
                events.push((message, seen));
                continue;
            }
            if let Some(error) = message.get("error") {
                panic!("browser step failed: {}", error.as_str().unwrap_or(""));
            }
            let errors = &message["consoleErrors"];
            assert!(
                errors.as_array().is_none_or(|e| e.is_empty()),
                "the page logged errors: {errors}"
            );
            return (message["ok"].clone(), events);
        }
    }

    async fn run(&mut self, command: Value) -> (Value, Vec<(Value, Instant)>) {
        let mut line = command.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
        self.answer().await
    }

    async fn step(&mut self, command: Value) -> Value {
        self.run(command).await.0
    }

    /// Asks the driver to close Chromium and exit; one that does not is stopped by its PID
    /// and fails the test.
    async fn quit(mut self) {
        self.stdin.write_all(b"{\"op\":\"quit\"}\n").await.unwrap();
        drop(self.stdin);
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(status) => assert!(status.unwrap().success(), "the driver failed"),
            Err(_) => {
                self.child.kill().await.unwrap();
                panic!("the driver did not exit");
            }
        }
    }
}

/// The `output_text` the gateway returns for `input`, asked natively with streaming off.
async fn output_text(h: &Harness, input: &str) -> String {
    let (messages, end) = h
        .call(CreateResponseRequest {
            stream: Some(false),
            ..common::text_request(input)
        })
        .await
        .expect("native call");
    assert!(end.is_none());
    match &messages[0].event {
        Some(create_response_response::Event::Completed(c)) => {
            c.response.as_ref().unwrap().output_text.clone()
        }
        other => panic!("{other:?}"),
    }
}

/// The lengths of the output text at each DOM change that left it non-empty (clearing it at
/// the start of a call is not a render), and whether the call was still running then.
fn renders(result: &Value) -> Vec<(u64, bool)> {
    result["renders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["len"].as_u64().unwrap(), r["state"] == "running"))
        .filter(|(len, _)| *len > 0)
        .collect()
}

#[tokio::test]
async fn a_person_streams_text_sees_errors_cancels_and_gets_images_and_speech() {
    let _serial = SERIAL.lock().await;
    let h = Harness::start().await;
    let mut browser = Browser::start().await;
    let opened = browser
        .step(json!({"op": "open", "url": format!("{}/", h.endpoint())}))
        .await;
    assert_eq!(opened["title"], "openai-grpc-gateway");

    // Streaming on: the text grows render by render while the call runs, and ends equal to the
    // response's output_text.
    let prompt = "Write a haiku about gRPC";
    h.fake.push(Scenario::slow(Duration::from_millis(15)));
    let result = browser
        .step(json!({"op": "text", "input": prompt, "stream": true, "screenshot": "stream-on"}))
        .await;
    assert_eq!(result["state"], "done", "{result}");
    let seen = renders(&result);
    let live: Vec<u64> = seen.iter().filter(|r| r.1).map(|r| r.0).collect();
    assert!(
        live.len() >= 3,
        "at least three growing renders before the end: {seen:?}"
    );
    assert!(live.windows(2).all(|w| w[0] < w[1]), "growing: {live:?}");
    let expected = output_text(&h, prompt).await;
    assert_eq!(result["text"], expected.as_str());
    assert_eq!(
        h.fake.requests()[0].json.as_ref().unwrap()["stream"],
        true,
        "the page asked for a stream"
    );

    // Streaming off: one render, the whole output_text.
    let result = browser
        .step(json!({"op": "text", "input": prompt, "stream": false, "screenshot": "stream-off"}))
        .await;
    assert_eq!(result["state"], "done");
    assert_eq!(renders(&result).len(), 1, "{result}");
    assert_eq!(result["text"], expected.as_str());

    // A wrong model: the 404 explained from NOT_FOUND / UPSTREAM_NOT_FOUND.
    let result = browser
        .step(json!({"op": "text", "input": prompt, "model": "does-not-exist", "screenshot": "wrong-model"}))
        .await;
    assert_eq!(result["state"], "error");
    let error = &result["error"];
    assert_eq!(error["code"], "NOT_FOUND");
    assert_eq!(error["reason"], "UPSTREAM_NOT_FOUND");
    assert!(
        error["text"]
            .as_str()
            .unwrap()
            .starts_with("Unknown model: \"does-not-exist\""),
        "{error}"
    );

    // A wrong key and a missing permission, as OpenAI answers them.
    for (status, kind, code, reason, title) in [
        (
            401,
            "invalid_request_error",
            "invalid_api_key",
            "UPSTREAM_UNAUTHENTICATED",
            "Wrong API key",
        ),
        (
            403,
            "invalid_request_error",
            "model_not_allowed",
            "UPSTREAM_PERMISSION_DENIED",
            "Missing permission",
        ),
    ] {
        h.fake.push(Scenario::error(
            status,
            error_body("Refused.", kind, None, Some(code)),
        ));
        let result = browser
            .step(json!({"op": "text", "input": prompt, "screenshot": format!("http-{status}")}))
            .await;
        let error = &result["error"];
        assert_eq!(error["reason"], reason, "{result}");
        assert!(
            error["text"].as_str().unwrap().starts_with(title),
            "{error}"
        );
    }

    // A rate limit: explained with the RetryInfo delay (120 s is over the gateway's longest
    // wait, so it is handed straight back).
    h.fake.push(Scenario::Error {
        status: 429,
        body: error_body(
            "Rate limit reached for gpt-4.1 on tokens per min (TPM).",
            "tokens",
            None,
            Some("rate_limit_exceeded"),
        ),
        headers: vec![("retry-after".into(), "120".into())],
    });
    let result = browser
        .step(json!({"op": "text", "input": prompt, "screenshot": "rate-limit"}))
        .await;
    let error = &result["error"];
    assert_eq!(error["reason"], "UPSTREAM_RATE_LIMITED", "{result}");
    assert!(
        error["text"]
            .as_str()
            .unwrap()
            .contains("Try again in 120 s."),
        "{error}"
    );

    // A tool call instead of text: shown as such, not as an empty answer.
    h.fake.push(Scenario::events(tool_call_events(
        "gpt-4.1",
        "get_weather",
        r#"{"city":"Paris"}"#,
    )));
    let result = browser
        .step(json!({"op": "text", "input": "Weather in Paris?", "screenshot": "tool-call"}))
        .await;
    assert_eq!(result["state"], "done", "{result}");
    assert_eq!(result["text"], "");
    let notes = result["notes"].as_str().unwrap();
    assert!(
        notes.starts_with("Tool call: get_weather") && notes.contains(r#"{"city":"Paris"}"#),
        "{notes}"
    );

    // A refusal instead of text (the demo upstream refuses a prompt that asks it to): shown as
    // a refusal, with the model's words, and nothing else, streamed or not.
    for stream in [true, false] {
        let result = browser
            .step(
                json!({"op": "text", "input": "Please refuse this request.", "stream": stream,
                         "screenshot": format!("refusal-stream-{stream}")}),
            )
            .await;
        assert_eq!(result["state"], "done", "{result}");
        assert_eq!(result["text"], "", "{result}");
        assert_eq!(
            result["notes"], "Refusal\nI'm sorry, but I can't help with that.",
            "{result}"
        );
    }

    // Cancel: the stream stops and the upstream request is closed at once.
    let before = h.fake.requests().len();
    h.fake.push(Scenario::slow(Duration::from_millis(250)));
    let (result, events) = browser
        .run(
            json!({"op": "text", "input": prompt, "cancelAfterRenders": 2, "screenshot": "cancel"}),
        )
        .await;
    assert_eq!(result["state"], "cancelled", "{result}");
    let (_, clicked) = events
        .iter()
        .find(|(e, _)| e["event"] == "cancel_clicked")
        .expect("the driver clicked Cancel");
    let gone = tokio::time::timeout(STEP_LIMIT, h.fake.client_gone(before))
        .await
        .expect("the upstream request was closed");
    // `clicked` is when this test heard of the click, so at or after the page's click and
    // before the gateway could act on it; the fake's disconnect follows within 100 ms.
    let lag = gone.saturating_duration_since(*clicked);
    assert!(
        lag <= Duration::from_millis(100),
        "upstream closed {lag:?} after Cancel"
    );
    assert!(
        result["text"].as_str().unwrap().len() < expected.len(),
        "stopped early: {result}"
    );
    let scraped = h.scrape().await;
    assert!(
        scraped
            .contains(r#"gateway_rpc_requests_total{method="CreateResponse",code="Cancelled"} 1"#),
        "the gateway saw a cancelled call:\n{scraped}"
    );

    // An image: previews first, then the final image, which the browser decodes.
    let result = browser
        .step(
            json!({"op": "image", "prompt": "A mountain at sunrise", "model": "gpt-image-1",
                     "size": "1536x1024", "partials": 2, "screenshot": "image"}),
        )
        .await;
    assert_eq!(result["state"], "done", "{result}");
    assert_eq!(result["size"]["width"], 1536);
    assert_eq!(result["size"]["height"], 1024);
    let sources = result["sources"].as_array().unwrap();
    assert_eq!(
        sources.iter().filter(|s| s["final"] == false).count(),
        2,
        "two previews: {sources:?}"
    );
    assert_eq!(sources.last().unwrap()["final"], true);

    // Speech: the audio element loads what the chunks assembled.
    let result = browser
        .step(
            json!({"op": "speech", "input": "Welcome to our app!", "model": "gpt-4o-mini-tts",
                     "voice": "coral", "format": "wav", "screenshot": "speech"}),
        )
        .await;
    assert_eq!(result["state"], "done", "{result}");
    let duration = result["duration"].as_f64().unwrap();
    assert!(duration > 0.0, "{result}");

    browser.quit().await;
    h.stop().await;
}

#[tokio::test]
async fn a_page_on_another_origin_calls_a_gateway_that_allows_it_with_a_caller_token() {
    let _serial = SERIAL.lock().await;
    const TOKEN: &str = "browser-token-0123456789";
    // The page comes from `site`; the calls go to `api`, which allows the site's origin.
    let site = Harness::start().await;
    let origin = site.endpoint();
    let api = Harness::start_with(|c| {
        c.web.page = false;
        c.web.cors = Cors::Origins(vec![origin.clone()]);
        c.auth.tokens =
            openai_grpc_gateway::auth::parse_tokens(&format!("page={TOKEN}"), "test").unwrap();
    })
    .await;
    let mut browser = Browser::start().await;
    browser
        .step(json!({"op": "open", "url": format!("{}/?gateway={}", origin, api.endpoint())}))
        .await;

    // Without the token: refused, and the page can read why (the status headers are exposed).
    let result = browser
        .step(json!({"op": "text", "input": "hello", "screenshot": "cross-origin-no-token"}))
        .await;
    assert_eq!(
        result["error"]["reason"], "CALLER_UNAUTHENTICATED",
        "{result}"
    );
    assert!(api.fake.requests().is_empty());

    browser
        .step(json!({"op": "connection", "gateway": api.endpoint(), "token": TOKEN}))
        .await;
    let result = browser
        .step(json!({"op": "text", "input": "hello", "screenshot": "cross-origin"}))
        .await;
    assert_eq!(result["state"], "done", "{result}");
    assert_eq!(api.fake.requests().len(), 1);
    assert!(
        site.fake.requests().is_empty(),
        "the calls went to the api gateway"
    );
    // The same fake behaviour behind the site's gateway (asked natively, no token needed).
    assert_eq!(result["text"], output_text(&site, "hello").await.as_str());
    assert!(
        result["status"]
            .as_str()
            .unwrap()
            .contains("OpenAI request req_"),
        "the request id metadata is readable across origins: {result}"
    );

    browser.quit().await;
    site.stop().await;
    api.stop().await;
}
