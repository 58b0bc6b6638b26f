//! Tests of the fake against real HTTP (reqwest) on loopback.

use std::time::Duration;

use base64::Engine as _;
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use super::media::{self, tests::png_chunks};
use super::*;

/// Safety net only: every wait below is event-driven and finishes long before this.
const SAFETY: Duration = Duration::from_secs(5);

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A small WHATWG-style SSE parser (LF, CR, CRLF, comments, multi-line data): (event, data).
fn parse_sse(body: &[u8]) -> Vec<(Option<String>, String)> {
    let text = String::from_utf8(body.to_vec()).unwrap();
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = Vec::new();
    let (mut event, mut data): (Option<String>, Option<String>) = (None, None);
    for line in text.split('\n') {
        if line.is_empty() {
            if let Some(d) = data.take() {
                out.push((event.take(), d));
            }
            event = None;
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = Some(value.to_string()),
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_string()),
            },
            _ => {}
        }
    }
    out
}

/// Parses an OpenAI-framed SSE body into event JSONs, checking `event:` equals `type`.
fn events_of(body: &[u8]) -> Vec<Value> {
    parse_sse(body)
        .into_iter()
        .map(|(event, data)| {
            let v: Value = serde_json::from_str(&data).unwrap();
            if let Some(event) = event {
                assert_eq!(v["type"], json!(event));
            }
            v
        })
        .collect()
}

fn assert_openai_headers(resp: &reqwest::Response) {
    let h = resp.headers();
    let id = h["x-request-id"].to_str().unwrap();
    assert!(id.starts_with("req_") && id.len() == 36, "{id}");
    assert!(id[4..].chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(h["openai-version"], "2020-10-01");
    assert!(
        h["openai-processing-ms"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );
    for name in [
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
    ] {
        assert!(h.contains_key(name), "{name}");
    }
}

async fn post(fake: &FakeOpenAi, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", fake.base_url()))
        .bearer_auth("sk-test")
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn assert_stream_shape(events: &[Value], terminal: &str) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], json!(i));
    }
    assert_eq!(events[0]["type"], "response.created");
    assert_eq!(events.last().unwrap()["type"], terminal);
    for e in &events[..events.len() - 1] {
        if let Some(r) = e.get("response") {
            assert!(r["usage"].is_null());
        }
        assert!(
            !matches!(
                e["type"].as_str(),
                Some("response.completed" | "response.incomplete" | "response.failed" | "error")
            ),
            "only one terminal event"
        );
    }
}

#[tokio::test]
async fn default_text_stream() {
    let fake = FakeOpenAi::start().await.unwrap();
    let resp = post(
        &fake,
        "/responses",
        json!({"model": "gpt-4.1-mini", "input": "Say hi", "stream": true, "metadata": {"k": "v"}}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    assert_openai_headers(&resp);
    let body = resp.bytes().await.unwrap();
    assert!(!String::from_utf8_lossy(&body).contains("[DONE]"));
    assert!(body.starts_with(
        b"event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,"
    ));
    let events = events_of(&body);
    assert_stream_shape(&events, "response.completed");
    let deltas: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .collect();
    assert!(deltas.len() > 5);
    assert!(deltas.iter().all(|d| d["obfuscation"].is_string()));
    let joined: String = deltas
        .iter()
        .map(|d| d["delta"].as_str().unwrap())
        .collect();
    let done = &events.last().unwrap()["response"];
    assert_eq!(done["output"][0]["content"][0]["text"], json!(joined));
    assert!(joined.contains("\"Say hi\""), "{joined}");
    assert_eq!(done["status"], "completed");
    assert_eq!(done["metadata"], json!({"k": "v"}));
    assert_eq!(
        done["usage"]["input_tokens_details"]["cache_write_tokens"],
        0
    );
    let usage = &done["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
    );
    assert_eq!(fake.finished(0), Some(true));
}

#[tokio::test]
async fn non_stream_returns_the_response_object() {
    let fake = FakeOpenAi::start().await.unwrap();
    let resp = post(
        &fake,
        "/responses",
        json!({"model": "gpt-4.1-mini", "input": [
            {"role": "developer", "content": "Be nice."},
            {"role": "user", "content": [{"type": "input_text", "text": "Write a welcome message"}]}
        ], "temperature": 0.5, "instructions": "Be brief."}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_openai_headers(&resp);
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["object"], "response");
    assert_eq!(r["status"], "completed");
    assert!(r["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(r["temperature"], 0.5);
    assert_eq!(r["top_p"], 1.0);
    assert_eq!(r["instructions"], "Be brief.");
    assert_eq!(r["service_tier"], "default");
    assert_eq!(
        r["output"][0]["content"][0]["text"],
        "Welcome aboard - we're glad you're here."
    );
    assert!(r["completed_at"].is_u64());
}

#[tokio::test]
async fn a_prompt_asking_for_a_refusal_gets_one() {
    let fake = FakeOpenAi::start().await.unwrap();
    let resp = post(
        &fake,
        "/responses",
        json!({"model": "gpt-4.1-mini", "input": "Please refuse this request.", "stream": true}),
    )
    .await;
    let events = events_of(&resp.bytes().await.unwrap());
    assert_stream_shape(&events, "response.completed");
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "response.refusal.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "I'm sorry, but I can't help with that.");
    assert!(
        events
            .iter()
            .all(|e| e["type"] != "response.output_text.delta")
    );
    let item = &events.last().unwrap()["response"]["output"][0];
    assert_eq!(item["type"], "message");
    assert_eq!(
        item["content"],
        json!([{"type": "refusal", "refusal": "I'm sorry, but I can't help with that."}])
    );
}

#[tokio::test]
async fn tool_call_then_tool_output() {
    let fake = FakeOpenAi::start().await.unwrap();
    let tools = json!([{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"]}}]);
    let resp = post(
        &fake,
        "/responses",
        json!({"model": "gpt-4.1-mini", "input": "Weather in Paris?", "tools": tools, "stream": true}),
    )
    .await;
    let events = events_of(&resp.bytes().await.unwrap());
    assert_stream_shape(&events, "response.completed");
    let item = &events.last().unwrap()["response"]["output"][0];
    assert_eq!(item["type"], "function_call");
    assert_eq!(item["name"], "get_weather");
    let args: Value = serde_json::from_str(item["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris", "unit": "celsius"}));
    let joined: String = events
        .iter()
        .filter(|e| e["type"] == "response.function_call_arguments.delta")
        .map(|e| {
            assert_eq!(e["item_id"], item["id"]);
            e["delta"].as_str().unwrap()
        })
        .collect();
    assert_eq!(joined, item["arguments"].as_str().unwrap());
    assert_eq!(
        events.last().unwrap()["response"]["tools"][0]["strict"],
        true
    );

    let r: Value = post(
        &fake,
        "/responses",
        json!({"model": "gpt-4.1-mini", "tools": tools, "input": [
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": item["call_id"], "name": "get_weather", "arguments": item["arguments"]},
            {"type": "function_call_output", "call_id": item["call_id"], "output": "{\"temp_c\":18}"}
        ]}),
    )
    .await
    .json()
    .await
    .unwrap();
    let text = r["output"][0]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("{\"temp_c\":18}"), "{text}");
}

#[tokio::test]
async fn reasoning_with_summary_and_budget() {
    let fake = FakeOpenAi::start().await.unwrap();
    let resp = post(
        &fake,
        "/responses",
        json!({"model": "o4-mini", "input": "Why is the sky blue?", "reasoning": {"effort": "low", "summary": "auto"}, "stream": true}),
    )
    .await;
    let events = events_of(&resp.bytes().await.unwrap());
    assert_stream_shape(&events, "response.completed");
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"response.reasoning_summary_part.added"));
    assert!(types.contains(&"response.reasoning_summary_text.delta"));
    let r = &events.last().unwrap()["response"];
    assert_eq!(
        r["reasoning"],
        json!({"effort": "low", "summary": "detailed"})
    );
    assert_eq!(r["output"][0]["type"], "reasoning");
    assert_eq!(r["output"][1]["type"], "message");
    assert!(
        r["usage"]["output_tokens_details"]["reasoning_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );

    // gpt-5 without a summary: reasoning item added/done with summary [] only.
    let r: Value = post(
        &fake,
        "/responses",
        json!({"model": "gpt-5", "input": "hi"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["output"][0]["summary"], json!([]));

    // max_output_tokens smaller than the pieces => response.incomplete.
    let long = "word ".repeat(60);
    let resp = post(
        &fake,
        "/responses",
        json!({"model": "gpt-4.1-mini", "input": long, "max_output_tokens": 16, "stream": true}),
    )
    .await;
    let events = events_of(&resp.bytes().await.unwrap());
    assert_stream_shape(&events, "response.incomplete");
    let r = &events.last().unwrap()["response"];
    assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(r["usage"]["output_tokens"], 16);

    let resp = post(
        &fake,
        "/responses",
        json!({"model": "gpt-4.1-mini", "input": "x", "max_output_tokens": 5}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let resp = post(
        &fake,
        "/responses",
        json!({"model": "does-not-exist", "input": "x"}),
    )
    .await;
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found");
}

#[test]
fn every_event_type_covers_the_catalogue() {
    const SPEC: [&str; 58] = [
        "response.created",
        "response.queued",
        "response.in_progress",
        "response.completed",
        "response.incomplete",
        "response.failed",
        "error",
        "response.output_item.added",
        "response.output_item.done",
        "response.content_part.added",
        "response.content_part.done",
        "response.output_text.delta",
        "response.output_text.done",
        "response.output_text.annotation.added",
        "response.refusal.delta",
        "response.refusal.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_part.done",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.web_search_call.in_progress",
        "response.web_search_call.searching",
        "response.web_search_call.completed",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.code_interpreter_call.in_progress",
        "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call_code.done",
        "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call.completed",
        "response.image_generation_call.in_progress",
        "response.image_generation_call.generating",
        "response.image_generation_call.partial_image",
        "response.image_generation_call.completed",
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed",
        "response.mcp_list_tools.failed",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
        "response.shell_call_command.added",
        "response.shell_call_command.delta",
        "response.shell_call_command.done",
        "response.shell_call_output_content.delta",
        "response.shell_call_output_content.done",
        "response.audio.delta",
        "response.audio.done",
        "response.audio.transcript.delta",
        "response.audio.transcript.done",
    ];
    let events = every_event_type();
    assert_eq!(events.len(), 60);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for ty in SPEC {
        assert_eq!(types.iter().filter(|t| **t == ty).count(), 1, "{ty}");
    }
    assert!(types.contains(&"keepalive"));
    let unknown: Vec<&&str> = types
        .iter()
        .filter(|t| !SPEC.contains(t) && **t != "keepalive")
        .collect();
    assert_eq!(unknown.len(), 1);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], json!(i));
    }
    assert_eq!(events[0]["type"], "response.created");
}

#[tokio::test]
async fn error_scenario_and_auth() {
    let fake = FakeOpenAi::start().await.unwrap();
    let body = error_body(
        "Rate limit reached for gpt-4.1-mini. Please try again in 2s.",
        "tokens",
        None,
        Some("rate_limit_exceeded"),
    );
    fake.push(Scenario::Error {
        status: 429,
        body: body.clone(),
        headers: vec![("retry-after".into(), "2".into())],
    });
    let resp = post(
        &fake,
        "/responses",
        json!({"model": "gpt-4.1-mini", "input": "x", "stream": true}),
    )
    .await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "2");
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_openai_headers(&resp);
    assert_eq!(resp.json::<Value>().await.unwrap(), body);

    fake.require_api_key("sk-right-key-0123456789");
    fake.push(Scenario::error(500, json!({})));
    let resp = post(
        &fake,
        "/responses",
        json!({"model": "gpt-4.1-mini", "input": "x"}),
    )
    .await;
    assert_eq!(resp.status(), 401);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "invalid_api_key");
    assert_eq!(err["error"]["type"], "invalid_request_error");
    let resp = client()
        .post(format!("{}/responses", fake.base_url()))
        .bearer_auth("sk-right-key-0123456789")
        .json(&json!({"model": "gpt-4.1-mini", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        500,
        "the scenario waited for an authorized request"
    );
}

#[tokio::test]
async fn requests_are_recorded() {
    let fake = FakeOpenAi::start().await.unwrap();
    let url = format!("{}/responses?x=1", fake.base_url());
    let task = tokio::spawn(async move {
        client()
            .post(url)
            .bearer_auth("sk-abc")
            .header("X-Stainless-Retry-Count", "0")
            .json(&json!({"model": "gpt-4.1-mini", "input": "hello"}))
            .send()
            .await
            .unwrap()
            .status()
    });
    let reqs = tokio::time::timeout(SAFETY, fake.wait_requests(1))
        .await
        .unwrap();
    assert_eq!(task.await.unwrap(), 200);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/responses?x=1");
    assert_eq!(r.header("authorization"), Some("Bearer sk-abc"));
    assert_eq!(r.header("x-stainless-retry-count"), Some("0"));
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.json.as_ref().unwrap()["input"], "hello");
    assert_eq!(fake.requests().len(), 1);

    let resp = client()
        .get(format!("{}/models", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_openai_headers(&resp);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["message"], "Invalid URL (GET /v1/models)");
}

#[tokio::test]
async fn raw_sse_and_framings() {
    let fake = FakeOpenAi::start().await.unwrap();
    let raw = b"event: response.created\ndata: {\"type\":\"response.created\"}\n\n".to_vec();
    fake.push(Scenario::RawSse {
        bytes: raw.clone(),
        split_at: vec![3, 10, 10, 999],
    });
    let resp = post(&fake, "/responses", json!({"model": "m", "stream": true})).await;
    assert_eq!(
        resp.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    assert_eq!(resp.bytes().await.unwrap().to_vec(), raw);
    assert_eq!(fake.finished(0), Some(true));
    assert_eq!(fake.sent_bytes(0), raw.len() as u64);

    let events = text_events("gpt-4.1-mini", "Hello there, friend!");
    let framings = [
        Framing {
            line_ending: LineEnding::CrLf,
            comments: true,
            multiline_data: true,
            done_marker: true,
            chunk_size: Some(1),
            ..Framing::default()
        },
        Framing {
            line_ending: LineEnding::Cr,
            omit_event_lines: true,
            chunk_size: Some(7),
            delay: Some(Duration::from_millis(1)),
            ..Framing::default()
        },
    ];
    for framing in framings {
        let done = framing.done_marker;
        fake.push(Scenario::Events {
            events: events.clone(),
            framing,
            ending: Ending::Close,
        });
        let body = post(&fake, "/responses", json!({"model": "m", "stream": true}))
            .await
            .bytes()
            .await
            .unwrap();
        let mut parsed = parse_sse(&body);
        if done {
            assert_eq!(parsed.pop().unwrap().1, "[DONE]");
        }
        let got: Vec<Value> = parsed
            .iter()
            .map(|(_, d)| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(got, events);
    }
}

#[tokio::test]
async fn stall_then_client_goes_away() {
    let fake = FakeOpenAi::start().await.unwrap();
    fake.push(Scenario::Default {
        framing: Framing::default(),
        ending: Ending::Stall,
    });
    let resp = post(
        &fake,
        "/responses",
        json!({"model": "gpt-4.1-mini", "input": "hi", "stream": true}),
    )
    .await;
    let mut stream = resp.bytes_stream();
    let mut got = Vec::new();
    // All events but the terminal one arrive, then nothing.
    while !got.ends_with(b"\n\n")
        || !String::from_utf8_lossy(&got).contains("response.output_item.done")
    {
        let chunk = tokio::time::timeout(SAFETY, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        got.extend_from_slice(&chunk);
    }
    let events = events_of(&got);
    assert_eq!(events.last().unwrap()["type"], "response.output_item.done");
    assert_eq!(fake.finished(0), None);
    let before = std::time::Instant::now();
    drop(stream);
    let at = tokio::time::timeout(SAFETY, fake.client_gone(0))
        .await
        .expect("hyper noticed the closed connection");
    assert!(at >= before);
    assert_eq!(fake.finished(0), Some(false));
}

#[tokio::test]
async fn drop_ending_aborts_mid_event() {
    let fake = FakeOpenAi::start().await.unwrap();
    fake.push(Scenario::Events {
        events: text_events("gpt-4.1-mini", "one two three"),
        framing: Framing {
            limit: Some(3),
            ..Framing::default()
        },
        ending: Ending::Drop,
    });
    let resp = post(&fake, "/responses", json!({"model": "m", "stream": true})).await;
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut got = Vec::new();
    let mut failed = false;
    while let Some(chunk) = tokio::time::timeout(SAFETY, stream.next()).await.unwrap() {
        match chunk {
            Ok(c) => got.extend_from_slice(&c),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the body must end with an error");
    assert_eq!(
        events_of(&got).len(),
        3,
        "three whole events, then half of one"
    );
    assert!(!got.ends_with(b"\n\n"));
    assert_eq!(fake.finished(0), Some(false));
}

#[tokio::test]
async fn dropping_the_fake_ends_a_stalled_body() {
    let fake = FakeOpenAi::start().await.unwrap();
    fake.push(Scenario::Default {
        framing: Framing {
            limit: Some(0),
            ..Framing::default()
        },
        ending: Ending::Stall,
    });
    let resp = post(
        &fake,
        "/responses",
        json!({"model": "m", "input": "x", "stream": true}),
    )
    .await;
    drop(fake);
    let body = tokio::time::timeout(SAFETY, resp.bytes()).await.unwrap();
    assert!(body.is_err());
}

#[tokio::test]
async fn images_are_valid_pngs() {
    let fake = FakeOpenAi::start().await.unwrap();
    let resp = post(
        &fake,
        "/images/generations",
        json!({"model": "gpt-image-1", "prompt": "a red fox", "size": "64x48", "n": 2, "background": "transparent"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_openai_headers(&resp);
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["data"].as_array().unwrap().len(), 2);
    assert_eq!(r["size"], "64x48");
    assert_eq!(r["background"], "transparent");
    assert_eq!(r["quality"], "medium");
    assert_eq!(r["output_format"], "png");
    assert!(r["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let png = base64::engine::general_purpose::STANDARD
        .decode(r["data"][0]["b64_json"].as_str().unwrap())
        .unwrap();
    let chunks = png_chunks(&png);
    assert_eq!(&chunks[0].0, b"IHDR");
    assert_eq!(
        u32::from_be_bytes(chunks[0].1[0..4].try_into().unwrap()),
        64
    );
    assert_eq!(
        u32::from_be_bytes(chunks[0].1[4..8].try_into().unwrap()),
        48
    );

    let r: Value = post(
        &fake,
        "/images/generations",
        json!({"prompt": "a fox", "size": "256x256"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(
        r["data"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with("https://fake-openai.invalid/images/")
    );
    assert!(r.get("usage").is_none());
    let r: Value = post(
        &fake,
        "/images/generations",
        json!({"model": "dall-e-3", "prompt": "a fox", "response_format": "b64_json"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(r["data"][0]["revised_prompt"].is_string());
    assert!(r["data"][0]["b64_json"].is_string());

    let resp = post(
        &fake,
        "/images/generations",
        json!({"model": "gpt-image-1", "prompt": "a fox", "size": "32x32", "stream": true, "partial_images": 2}),
    )
    .await;
    assert_eq!(
        resp.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let events = events_of(&resp.bytes().await.unwrap());
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "image_generation.partial_image",
            "image_generation.partial_image",
            "image_generation.completed"
        ]
    );
    assert_eq!(events[1]["partial_image_index"], 1);
    let png = base64::engine::general_purpose::STANDARD
        .decode(events[2]["b64_json"].as_str().unwrap())
        .unwrap();
    png_chunks(&png);
}

#[tokio::test]
async fn speech_is_a_valid_wav() {
    let fake = FakeOpenAi::start().await.unwrap();
    let resp = post(
        &fake,
        "/audio/speech",
        json!({"model": "gpt-4o-mini-tts", "input": "Welcome to our app!", "voice": "alloy", "response_format": "wav"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "audio/wav");
    assert_openai_headers(&resp);
    let wav = resp.bytes().await.unwrap();
    assert_eq!(&wav[0..4], b"RIFF");
    assert_eq!(&wav[8..16], b"WAVEfmt ");
    assert_eq!(u32::from_le_bytes(wav[24..28].try_into().unwrap()), 24_000);
    let data_len = u32::from_le_bytes(wav[40..44].try_into().unwrap()) as usize;
    assert_eq!(data_len + 44, wav.len());
    assert!(data_len >= 24_000, "at least half a second");
    assert!(fake.sent_bytes(0) == wav.len() as u64);

    let resp = post(
        &fake,
        "/audio/speech",
        json!({"model": "tts-1", "input": "hi", "voice": "alloy", "response_format": "pcm"}),
    )
    .await;
    assert_eq!(resp.headers()["content-type"], "audio/pcm");
    assert_eq!(resp.bytes().await.unwrap().len(), 24_000);
    let resp = post(
        &fake,
        "/audio/speech",
        json!({"model": "tts-1", "input": "hi"}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["param"], "voice");

    let resp = post(
        &fake,
        "/audio/speech",
        json!({"model": "gpt-4o-mini-tts", "input": "hello", "voice": "alloy", "stream_format": "sse"}),
    )
    .await;
    let events = events_of(&resp.bytes().await.unwrap());
    let done = events.last().unwrap();
    assert_eq!(done["type"], "speech.audio.done");
    assert!(done["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let audio: Vec<u8> = events[..events.len() - 1]
        .iter()
        .flat_map(|e| {
            assert_eq!(e["type"], "speech.audio.delta");
            base64::engine::general_purpose::STANDARD
                .decode(e["audio"].as_str().unwrap())
                .unwrap()
        })
        .collect();
    assert_eq!(&audio[0..4], b"RIFF");
    assert_eq!(
        media::wav_header((audio.len() - 44) as u32)[..],
        audio[..44]
    );
}

#[tokio::test]
async fn handle_and_waiters_are_send() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let fake = FakeOpenAi::start().await.unwrap();
    send_sync(&fake);
    send(&fake.wait_requests(0));
    send(&fake.client_gone(0));
    assert!(fake.wait_requests(0).await.is_empty());
}

#[tokio::test]
async fn h2c_stream_and_client_gone() {
    let fake = FakeOpenAi::start().await.unwrap();
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let request = json!({"model": "gpt-4.1-mini", "input": "hi", "stream": true});
    let resp = h2
        .post(format!("{}/responses", fake.base_url()))
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let events = events_of(&resp.bytes().await.unwrap());
    assert_stream_shape(&events, "response.completed");

    fake.push(Scenario::Default {
        framing: Framing {
            limit: Some(2),
            ..Framing::default()
        },
        ending: Ending::Stall,
    });
    let resp = h2
        .post(format!("{}/responses", fake.base_url()))
        .json(&request)
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    let first = tokio::time::timeout(SAFETY, stream.next()).await.unwrap();
    assert!(first.unwrap().is_ok());
    drop(stream);
    tokio::time::timeout(SAFETY, fake.client_gone(1))
        .await
        .expect("the h2 stream reset drops the body");
    assert_eq!(fake.finished(1), Some(false));
    assert_eq!(fake.finished(0), Some(true));
}

mod lifecycle;
