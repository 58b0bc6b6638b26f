//! Stored responses, background jobs and conversations, over real HTTP.

use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use super::{SAFETY, assert_openai_headers, client, events_of, post};
use crate::fake::{Ending, FakeOpenAi, Framing, Scenario};

const MODEL: &str = "gpt-4.1-mini";
const HOUR: Duration = Duration::from_secs(3600);

async fn send(
    fake: &FakeOpenAi,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client()
        .request(method, format!("{}{path}", fake.base_url()))
        .bearer_auth("sk-test");
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

/// Status and JSON body of a call.
async fn call(fake: &FakeOpenAi, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let resp = send(fake, method, path, body).await;
    assert_openai_headers(&resp);
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn get(fake: &FakeOpenAi, path: &str) -> (u16, Value) {
    call(fake, "GET", path, None).await
}

/// Creates a response (non-streamed) and returns it.
async fn create(fake: &FakeOpenAi, body: Value) -> Value {
    let (status, r) = call(fake, "POST", "/responses", Some(body)).await;
    assert_eq!(status, 200, "{r}");
    r
}

/// Asserts an OpenAI error body with this param and code; returns its message.
fn error_of(body: &Value, param: Option<&str>, code: Option<&str>) -> String {
    let e = &body["error"];
    assert_eq!(e["type"], "invalid_request_error", "{body}");
    assert_eq!(e["param"], json!(param), "{body}");
    assert_eq!(e["code"], json!(code), "{body}");
    e["message"].as_str().unwrap().to_string()
}

fn text_of(r: &Value) -> String {
    r["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().unwrap())
        .filter_map(|p| p["text"].as_str())
        .collect()
}

fn deltas(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect()
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

/// An SSE body read as it arrives: the complete events so far, each with when it arrived.
struct Reader {
    stream: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: Vec<u8>,
    events: Vec<(Value, Instant)>,
}

/// How an SSE body ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Clean,
    Failed,
}

impl Reader {
    fn new(resp: reqwest::Response) -> Self {
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"],
            "text/event-stream; charset=utf-8"
        );
        Reader {
            stream: resp.bytes_stream().boxed(),
            buf: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Reads one chunk; `None` at the end of the body.
    async fn chunk(&mut self) -> Option<End> {
        match tokio::time::timeout(SAFETY, self.stream.next())
            .await
            .expect("the body moves")
        {
            None => Some(End::Clean),
            Some(Err(_)) => Some(End::Failed),
            Some(Ok(bytes)) => {
                let now = Instant::now();
                self.buf.extend_from_slice(&bytes);
                if let Some(cut) = self.buf.windows(2).rposition(|w| w == b"\n\n") {
                    let complete: Vec<u8> = self.buf.drain(..cut + 2).collect();
                    self.events
                        .extend(events_of(&complete).into_iter().map(|e| (e, now)));
                }
                None
            }
        }
    }

    /// Reads until at least `n` events arrived (panics if the body ends first).
    async fn until(&mut self, n: usize) {
        while self.events.len() < n {
            assert_eq!(self.chunk().await, None, "the body ended early");
        }
    }

    /// Reads to the end of the body.
    async fn read_to_end(&mut self) -> End {
        loop {
            if let Some(end) = self.chunk().await {
                return end;
            }
        }
    }

    fn values(&self) -> Vec<Value> {
        self.events.iter().map(|(e, _)| e.clone()).collect()
    }
}

fn assert_contiguous(events: &[Value], from: u64) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], json!(from + i as u64), "{e}");
    }
}

#[tokio::test]
async fn stored_response_get_input_items_delete() {
    let fake = FakeOpenAi::start().await.unwrap();
    let r = create(
        &fake,
        json!({"model": MODEL, "instructions": "Be brief.", "input": [
            {"role": "user", "content": "Hello there"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "second"}]},
        ]}),
    )
    .await;
    let id = r["id"].as_str().unwrap().to_string();
    assert_eq!(
        get(&fake, &format!("/responses/{id}")).await,
        (200, r.clone())
    );
    let (status, again) = get(
        &fake,
        &format!("/responses/{id}?include[]=message.output_text.logprobs&include%5B%5D=reasoning.encrypted_content&include=x"),
    )
    .await;
    assert_eq!((status, &again), (200, &r));

    // Input items: instructions are not items; newest first by default.
    let (status, items) = get(&fake, &format!("/responses/{id}/input_items")).await;
    assert_eq!(status, 200);
    assert_eq!(items["object"], "list");
    assert_eq!(items["has_more"], false);
    let data = items["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(
        data[0]["content"],
        json!([{"type": "input_text", "text": "second"}])
    );
    assert_eq!(
        data[1]["content"],
        json!([{"type": "input_text", "text": "Hello there"}])
    );
    for item in data {
        assert!(item["id"].as_str().unwrap().starts_with("msg_"), "{item}");
        assert_eq!(item["type"], "message");
        assert_eq!(item["status"], "completed");
        assert_eq!(item["role"], "user");
    }
    assert_eq!(items["first_id"], data[0]["id"]);
    assert_eq!(items["last_id"], data[1]["id"]);
    let (_, page) = get(
        &fake,
        &format!("/responses/{id}/input_items?order=asc&limit=1"),
    )
    .await;
    assert_eq!(ids(&page), [data[1]["id"].as_str().unwrap()]);
    assert_eq!(page["has_more"], true);
    let after = data[1]["id"].as_str().unwrap();
    let (_, page) = get(
        &fake,
        &format!("/responses/{id}/input_items?order=asc&limit=1&after={after}&include[]=x"),
    )
    .await;
    assert_eq!(ids(&page), [data[0]["id"].as_str().unwrap()]);
    assert_eq!(page["has_more"], false);
    for (query, param, code) in [
        ("limit=0", "limit", "integer_below_min_value"),
        ("limit=101", "limit", "integer_above_max_value"),
        ("limit=ten", "limit", "invalid_type"),
        ("order=sideways", "order", "invalid_value"),
    ] {
        let (status, err) = get(&fake, &format!("/responses/{id}/input_items?{query}")).await;
        assert_eq!(status, 400, "{query}");
        error_of(&err, Some(param), Some(code));
    }
    let (_, page) = get(&fake, &format!("/responses/{id}/input_items?limit=100")).await;
    assert_eq!(ids(&page).len(), 2);

    // A stored foreground response cannot be streamed or cancelled.
    let (status, err) = get(&fake, &format!("/responses/{id}?stream=true")).await;
    assert_eq!(status, 400);
    error_of(&err, Some("stream"), None);
    let (status, err) = call(&fake, "POST", &format!("/responses/{id}/cancel"), None).await;
    assert_eq!(status, 400);
    assert_eq!(
        error_of(&err, None, None),
        "Only responses created with background=true can be cancelled."
    );

    // Delete, then it is gone everywhere.
    let (status, deleted) = call(&fake, "DELETE", &format!("/responses/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        deleted,
        json!({"id": id, "object": "response", "deleted": true})
    );
    let not_found = format!("Response with id '{id}' not found.");
    for (method, path) in [
        ("GET", format!("/responses/{id}")),
        ("DELETE", format!("/responses/{id}")),
        ("GET", format!("/responses/{id}/input_items")),
        ("POST", format!("/responses/{id}/cancel")),
    ] {
        let (status, err) = call(&fake, method, &path, None).await;
        assert_eq!(status, 404, "{method} {path}");
        assert_eq!(error_of(&err, None, None), not_found);
    }
    let (status, err) = call(
        &fake,
        "POST",
        "/responses",
        Some(json!({"model": MODEL, "input": "more", "previous_response_id": id})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        error_of(
            &err,
            Some("previous_response_id"),
            Some("previous_response_not_found")
        ),
        format!("Previous response with id '{id}' not found.")
    );

    // store: false keeps nothing.
    let r = create(&fake, json!({"model": MODEL, "input": "x", "store": false})).await;
    assert_eq!(r["store"], false);
    let (status, _) = get(&fake, &format!("/responses/{}", r["id"].as_str().unwrap())).await;
    assert_eq!(status, 404);

    // Unknown routes stay OpenAI's 404.
    for (method, path) in [
        ("GET", "/responses/resp_1/nope".to_string()),
        ("PUT", "/responses/resp_1".to_string()),
        ("GET", "/conversations".to_string()),
        ("GET", "/responses/".to_string()),
    ] {
        let (status, err) = call(&fake, method, &path, None).await;
        assert_eq!(status, 404);
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Invalid URL"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn previous_response_chain_and_token_counts() {
    let fake = FakeOpenAi::start().await.unwrap();
    let a = create(&fake, json!({"model": MODEL, "input": "My name is Ada"})).await;
    let b = create(
        &fake,
        json!({"model": MODEL, "input": "What is my name?", "previous_response_id": a["id"]}),
    )
    .await;
    assert_eq!(b["previous_response_id"], a["id"]);
    let text = text_of(&b);
    assert!(
        text.contains("turn 2") && text.contains("\"My name is Ada\""),
        "{text}"
    );
    let c = create(
        &fake,
        json!({"model": MODEL, "input": "Again?", "previous_response_id": b["id"]}),
    )
    .await;
    let text = text_of(&c);
    assert!(
        text.contains("turn 3") && text.contains("\"What is my name?\""),
        "{text}"
    );
    // Without history the reply has no turn note.
    assert!(!text_of(&a).contains("turn"));

    // input_tokens counts the chain, and agrees with a create's usage for the same body.
    let alone = json!({"model": MODEL, "input": "x"});
    let chained = json!({"model": MODEL, "input": "x", "previous_response_id": c["id"]});
    let (status, n_alone) = call(&fake, "POST", "/responses/input_tokens", Some(alone)).await;
    assert_eq!(status, 200);
    assert_eq!(n_alone["object"], "response.input_tokens");
    let (_, n_chained) = call(
        &fake,
        "POST",
        "/responses/input_tokens",
        Some(chained.clone()),
    )
    .await;
    let (n_alone, n_chained) = (
        n_alone["input_tokens"].as_u64().unwrap(),
        n_chained["input_tokens"].as_u64().unwrap(),
    );
    assert!(n_chained > n_alone + 5, "{n_alone} vs {n_chained}");
    let d = create(&fake, chained).await;
    assert_eq!(d["usage"]["input_tokens"], n_chained);

    // No body at all is fine; unknown references are not.
    let resp = client()
        .post(format!("{}/responses/input_tokens", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.json::<Value>().await.unwrap()["input_tokens"].is_u64());
    let (status, err) = call(
        &fake,
        "POST",
        "/responses/input_tokens",
        Some(json!({"previous_response_id": "resp_nope"})),
    )
    .await;
    assert_eq!(status, 400);
    error_of(
        &err,
        Some("previous_response_id"),
        Some("previous_response_not_found"),
    );
    let (status, err) = call(
        &fake,
        "POST",
        "/responses/input_tokens",
        Some(json!({"conversation": "conv_nope"})),
    )
    .await;
    assert_eq!(status, 404);
    error_of(&err, Some("conversation"), None);
    let resp = client()
        .post(format!("{}/responses/input_tokens", fake.base_url()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn conversations_crud_and_items() {
    let fake = FakeOpenAi::start().await.unwrap();
    // An empty body is fine.
    let resp = client()
        .post(format!("{}/conversations", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let empty: Value = resp.json().await.unwrap();
    assert_eq!(empty["metadata"], json!({}));

    let (status, conv) = call(
        &fake,
        "POST",
        "/conversations",
        Some(json!({"metadata": {"topic": "demo"}, "items": [
            {"role": "user", "content": "one"},
            {"type": "message", "role": "assistant", "content": "two"},
        ]})),
    )
    .await;
    assert_eq!(status, 200);
    let id = conv["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("conv_") && id.len() == 53, "{id}");
    assert_eq!(conv["object"], "conversation");
    assert!(conv["created_at"].is_u64());
    assert_eq!(conv["metadata"], json!({"topic": "demo"}));
    assert_eq!(
        get(&fake, &format!("/conversations/{id}")).await,
        (200, conv.clone())
    );

    let (status, updated) = call(
        &fake,
        "POST",
        &format!("/conversations/{id}"),
        Some(json!({"metadata": {"topic": "changed", "k": "v"}})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(updated["metadata"], json!({"topic": "changed", "k": "v"}));
    assert_eq!(updated["id"], conv["id"]);
    let (status, err) = call(
        &fake,
        "POST",
        &format!("/conversations/{id}"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 400);
    error_of(&err, Some("metadata"), Some("missing_required_parameter"));

    let (status, added) = call(
        &fake,
        "POST",
        &format!("/conversations/{id}/items?include[]=message.output_text.logprobs"),
        Some(json!({"items": [
            {"role": "user", "content": "three"},
            {"type": "function_call_output", "call_id": "call_1", "output": "{}"},
        ]})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(added["object"], "list");
    assert_eq!(added["has_more"], false);
    let added_ids = ids(&added);
    assert_eq!(added_ids.len(), 2);
    assert_eq!(added["first_id"], json!(added_ids[0]));
    assert_eq!(added["last_id"], json!(added_ids[1]));
    assert_eq!(
        added["data"][0]["content"],
        json!([{"type": "input_text", "text": "three"}])
    );

    // Four items now: one, two, three, the call output. Newest first by default.
    let (_, all) = get(&fake, &format!("/conversations/{id}/items")).await;
    let all_ids = ids(&all);
    assert_eq!(all_ids.len(), 4);
    assert_eq!(all_ids[0], added_ids[1]);
    assert_eq!(all["data"][3]["content"][0]["text"], "one");
    assert_eq!(all["data"][2]["content"][0]["type"], "output_text");
    let (_, page) = get(
        &fake,
        &format!("/conversations/{id}/items?order=asc&limit=2"),
    )
    .await;
    assert_eq!(ids(&page), [all_ids[3].clone(), all_ids[2].clone()]);
    assert_eq!(page["has_more"], true);
    let (_, page) = get(
        &fake,
        &format!(
            "/conversations/{id}/items?order=asc&limit=2&after={}",
            all_ids[2]
        ),
    )
    .await;
    assert_eq!(ids(&page), [all_ids[1].clone(), all_ids[0].clone()]);
    assert_eq!(page["has_more"], false);
    let (status, err) = get(&fake, &format!("/conversations/{id}/items?limit=0")).await;
    assert_eq!(status, 400);
    error_of(&err, Some("limit"), Some("integer_below_min_value"));

    let item_path = format!("/conversations/{id}/items/{}", all_ids[1]);
    let (status, item) = get(&fake, &format!("{item_path}?include[]=x")).await;
    assert_eq!(status, 200);
    assert_eq!(item["content"][0]["text"], "three");
    let (status, after_delete) = call(&fake, "DELETE", &item_path, None).await;
    assert_eq!(status, 200);
    assert_eq!(after_delete["object"], "conversation");
    assert_eq!(after_delete["id"], conv["id"]);
    for method in ["GET", "DELETE"] {
        let (status, err) = call(&fake, method, &item_path, None).await;
        assert_eq!(status, 404);
        error_of(&err, None, None);
    }
    let (_, all) = get(&fake, &format!("/conversations/{id}/items")).await;
    assert_eq!(ids(&all).len(), 3);

    // Limits and bad input.
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"role": "user", "content": format!("m{i}")}))
        .collect();
    for (path, body, param) in [
        (
            "/conversations".to_string(),
            json!({"items": many.clone()}),
            "items",
        ),
        (
            format!("/conversations/{id}/items"),
            json!({"items": many}),
            "items",
        ),
        (
            format!("/conversations/{id}/items"),
            json!({"items": []}),
            "items",
        ),
        (format!("/conversations/{id}/items"), json!({}), "items"),
        (
            format!("/conversations/{id}/items"),
            json!({"items": [{"role": "user", "content": 1}]}),
            "items[0].content",
        ),
        (
            "/conversations".to_string(),
            json!({"metadata": {"k": "v".repeat(513)}}),
            "metadata",
        ),
        (
            "/conversations".to_string(),
            json!({"metadata": {"k".repeat(65): "v"}}),
            "metadata",
        ),
        (
            "/conversations".to_string(),
            json!({"metadata": (0..17).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<String, Value>>()}),
            "metadata",
        ),
        (
            format!("/conversations/{id}"),
            json!({"metadata": "x"}),
            "metadata",
        ),
    ] {
        let (status, err) = call(&fake, "POST", &path, Some(body.clone())).await;
        assert_eq!(status, 400, "{path} {body}");
        assert_eq!(err["error"]["param"], param, "{err}");
    }
    let resp = client()
        .post(format!("{}/conversations", fake.base_url()))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // Delete: then 404 everywhere.
    let (status, deleted) = call(&fake, "DELETE", &format!("/conversations/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        deleted,
        json!({"id": id, "object": "conversation.deleted", "deleted": true})
    );
    let message = format!("Conversation with id '{id}' not found.");
    for (method, path, body) in [
        ("GET", format!("/conversations/{id}"), None),
        ("DELETE", format!("/conversations/{id}"), None),
        (
            "POST",
            format!("/conversations/{id}"),
            Some(json!({"metadata": {}})),
        ),
        ("GET", format!("/conversations/{id}/items"), None),
        (
            "POST",
            format!("/conversations/{id}/items"),
            Some(json!({"items": [{"role": "user", "content": "x"}]})),
        ),
        (
            "GET",
            format!("/conversations/{id}/items/{}", all_ids[0]),
            None,
        ),
    ] {
        let (status, err) = call(&fake, method, &path, body).await;
        assert_eq!(status, 404, "{method} {path}");
        assert_eq!(error_of(&err, None, None), message);
    }
}

#[tokio::test]
async fn responses_in_a_conversation() {
    let fake = FakeOpenAi::start().await.unwrap();
    let (_, conv) = call(
        &fake,
        "POST",
        "/conversations",
        Some(json!({"items": [{"role": "user", "content": "Earlier question"}]})),
    )
    .await;
    let conv_id = conv["id"].as_str().unwrap().to_string();
    let r1 = create(
        &fake,
        json!({"model": MODEL, "input": "Next question", "conversation": conv_id}),
    )
    .await;
    assert_eq!(r1["conversation"], json!({"id": conv_id}));
    let text = text_of(&r1);
    assert!(
        text.contains("turn 2") && text.contains("\"Earlier question\""),
        "{text}"
    );

    // The response's input then output items were appended, with the same ids.
    let (_, items) = get(&fake, &format!("/conversations/{conv_id}/items?order=asc")).await;
    let data = items["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    let (_, input) = get(
        &fake,
        &format!("/responses/{}/input_items", r1["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(data[1], input["data"][0]);
    assert_eq!(data[1]["content"][0]["text"], "Next question");
    assert_eq!(data[2], r1["output"][0]);
    assert_eq!(data[2]["role"], "assistant");

    // The object form works too, and the history grows.
    let r2 = create(
        &fake,
        json!({"model": MODEL, "input": "Third", "conversation": {"id": conv_id}}),
    )
    .await;
    assert_eq!(r2["conversation"], json!({"id": conv_id}));
    assert!(text_of(&r2).contains("turn 3"), "{}", text_of(&r2));

    // A background response adds its items when it finishes; a cancelled one adds none.
    fake.set_background_pacing(Duration::ZERO, Duration::ZERO);
    let bg = create(
        &fake,
        json!({"model": MODEL, "input": "Fourth", "conversation": conv_id, "background": true}),
    )
    .await;
    assert_eq!(bg["status"], "queued");
    assert_eq!(bg["conversation"], json!({"id": conv_id}));
    let (_, done) = get(&fake, &format!("/responses/{}", bg["id"].as_str().unwrap())).await;
    assert_eq!(done["status"], "completed");
    let (_, items) = get(&fake, &format!("/conversations/{conv_id}/items?limit=100")).await;
    assert_eq!(ids(&items).len(), 7);
    assert_eq!(items["data"][0], done["output"][0]);
    fake.set_background_pacing(HOUR, HOUR);
    let bg = create(
        &fake,
        json!({"model": MODEL, "input": "Fifth", "conversation": conv_id, "background": true}),
    )
    .await;
    let (_, cancelled) = call(
        &fake,
        "POST",
        &format!("/responses/{}/cancel", bg["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(cancelled["status"], "cancelled");
    let (_, items) = get(&fake, &format!("/conversations/{conv_id}/items?limit=100")).await;
    assert_eq!(ids(&items).len(), 7);

    // Unknown conversation; both references at once.
    let (status, err) = call(
        &fake,
        "POST",
        "/responses",
        Some(json!({"model": MODEL, "input": "x", "conversation": "conv_nope"})),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        error_of(&err, Some("conversation"), None),
        "Conversation with id 'conv_nope' not found."
    );
    let (status, err) = call(
        &fake,
        "POST",
        "/responses",
        Some(json!({"model": MODEL, "input": "x", "conversation": conv_id, "previous_response_id": r1["id"]})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["param"], "conversation");
}

#[tokio::test]
async fn background_job_states_and_cancel() {
    let fake = FakeOpenAi::start().await.unwrap();
    let body = json!({"model": MODEL, "input": "Take your time", "background": true});

    // Stuck in queued.
    fake.set_background_pacing(HOUR, HOUR);
    let q = create(&fake, body.clone()).await;
    let id = q["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("resp_"));
    assert_eq!(q["status"], "queued");
    assert_eq!(q["background"], true);
    assert_eq!(q["output"], json!([]));
    assert!(q["usage"].is_null());
    let (_, now) = get(&fake, &format!("/responses/{id}")).await;
    assert_eq!(now["status"], "queued");
    let (_, items) = get(&fake, &format!("/responses/{id}/input_items")).await;
    assert_eq!(items["data"][0]["content"][0]["text"], "Take your time");
    let (status, c) = call(&fake, "POST", &format!("/responses/{id}/cancel"), None).await;
    assert_eq!(status, 200);
    assert_eq!(c["id"], json!(id));
    assert_eq!(c["status"], "cancelled");
    assert_eq!(c["background"], true);
    assert!(c["usage"].is_null());
    assert_eq!(c["output"], json!([]));
    assert_eq!(
        get(&fake, &format!("/responses/{id}")).await,
        (200, c.clone())
    );
    // Cancelling again changes nothing.
    assert_eq!(
        call(&fake, "POST", &format!("/responses/{id}/cancel"), None).await,
        (200, c.clone())
    );
    // Its stream has the two events from before the cancel, then closes cleanly.
    let mut reader =
        Reader::new(send(&fake, "GET", &format!("/responses/{id}?stream=true"), None).await);
    assert_eq!(reader.read_to_end().await, End::Clean);
    let types: Vec<Value> = reader.values().iter().map(|e| e["type"].clone()).collect();
    assert_eq!(types, [json!("response.created"), json!("response.queued")]);

    // In progress (no items yet).
    fake.set_background_pacing(Duration::ZERO, HOUR);
    let p = create(&fake, body.clone()).await;
    assert_eq!(
        p["status"], "queued",
        "the create always answers with the queued response"
    );
    let (_, now) = get(&fake, &format!("/responses/{}", p["id"].as_str().unwrap())).await;
    assert_eq!(now["status"], "in_progress");
    assert_eq!(now["output"], json!([]));

    // Finished at once; cancelling a finished job returns it unchanged.
    fake.set_background_pacing(Duration::ZERO, Duration::ZERO);
    let f = create(&fake, body.clone()).await;
    let fid = f["id"].as_str().unwrap();
    let (_, done) = get(&fake, &format!("/responses/{fid}")).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["background"], true);
    assert!(done["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert!(text_of(&done).contains("Take your time"));
    assert_eq!(
        call(&fake, "POST", &format!("/responses/{fid}/cancel"), None).await,
        (200, done)
    );

    // Background needs store.
    let (status, err) = call(
        &fake,
        "POST",
        "/responses",
        Some(json!({"model": MODEL, "input": "x", "background": true, "store": false})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        err["error"]["message"],
        "Background mode requires store=true."
    );
    let (status, _) = call(&fake, "POST", "/responses/resp_nope/cancel", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn background_stream_is_paced_and_replayable() {
    let fake = FakeOpenAi::start().await.unwrap();
    let (queued, per) = (Duration::from_millis(80), Duration::from_millis(10));
    fake.set_background_pacing(queued, per);
    let sent = Instant::now();
    let resp = post(
        &fake,
        "/responses",
        json!({"model": MODEL, "input": "Stream it slowly", "background": true, "stream": true}),
    )
    .await;
    let mut reader = Reader::new(resp);
    assert_eq!(reader.read_to_end().await, End::Clean);
    let events = reader.values();
    assert_contiguous(&events, 0);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types[..3],
        [
            "response.created",
            "response.queued",
            "response.in_progress"
        ]
    );
    assert_eq!(types.last(), Some(&"response.completed"));
    assert_eq!(events[0]["response"]["status"], "queued");
    assert_eq!(events[1]["response"]["status"], "queued");
    assert_eq!(events[2]["response"]["status"], "in_progress");
    assert!(
        events
            .iter()
            .all(|e| e.get("response").is_none_or(|r| r["background"] == true))
    );
    // Never early: event i (i >= 2) is due `queued + (i - 2) * per` after the job started,
    // which was after the request was sent.
    for (i, (e, at)) in reader.events.iter().enumerate().skip(2) {
        let due = queued + per * (i as u32 - 2);
        assert!(
            at.duration_since(sent) >= due,
            "event {i} ({}) came early",
            e["type"]
        );
    }
    let last = &events.last().unwrap()["response"];
    assert_eq!(text_of(last), deltas(&events));
    assert!(deltas(&events).contains("Stream it slowly"));
    assert!(events.iter().any(|e| e.get("obfuscation").is_some()));

    // GET now gives the final Response, and the stream replays the very same events.
    let id = last["id"].as_str().unwrap();
    assert_eq!(
        get(&fake, &format!("/responses/{id}")).await,
        (200, last.clone())
    );
    let mut replay =
        Reader::new(send(&fake, "GET", &format!("/responses/{id}?stream=true"), None).await);
    assert_eq!(replay.read_to_end().await, End::Clean);
    assert_eq!(replay.values(), events);
    let mut tail = Reader::new(
        send(
            &fake,
            "GET",
            &format!("/responses/{id}?stream=true&starting_after=5&include_obfuscation=false"),
            None,
        )
        .await,
    );
    assert_eq!(tail.read_to_end().await, End::Clean);
    let expected: Vec<Value> = events[6..]
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.as_object_mut().unwrap().remove("obfuscation");
            e
        })
        .collect();
    assert_eq!(tail.values(), expected);
    // Past the end: nothing, closed.
    let n = events.len();
    let mut none = Reader::new(
        send(
            &fake,
            "GET",
            &format!("/responses/{id}?stream=true&starting_after={}", n - 1),
            None,
        )
        .await,
    );
    assert_eq!(none.read_to_end().await, End::Clean);
    assert!(none.events.is_empty());
}

#[tokio::test]
async fn mid_job_get_shows_the_output_so_far() {
    let fake = FakeOpenAi::start().await.unwrap();
    fake.set_background_pacing(Duration::ZERO, Duration::from_millis(50));
    let q = create(
        &fake,
        json!({"model": MODEL, "input": "a fairly long question so that the answer takes a while to stream", "background": true}),
    )
    .await;
    let id = q["id"].as_str().unwrap();
    let mut reader =
        Reader::new(send(&fake, "GET", &format!("/responses/{id}?stream=true"), None).await);
    while !reader
        .values()
        .iter()
        .any(|e| e["type"] == "response.output_text.delta")
    {
        assert_eq!(reader.chunk().await, None);
    }
    let seen = deltas(&reader.values());
    let (_, now) = get(&fake, &format!("/responses/{id}")).await;
    assert_eq!(reader.read_to_end().await, End::Clean);
    let final_text = text_of(&reader.values().last().unwrap()["response"]);
    // Whatever moment the GET saw, it is consistent with the stream.
    match now["status"].as_str().unwrap() {
        "in_progress" => {
            assert!(now["usage"].is_null());
            let so_far = now["output"][0]["content"][0]["text"].as_str().unwrap();
            assert!(so_far.starts_with(&seen), "{so_far:?} vs {seen:?}");
            assert!(final_text.starts_with(so_far));
            assert_eq!(now["output"][0]["status"], "in_progress");
        }
        "completed" => assert_eq!(text_of(&now), final_text),
        other => panic!("unexpected status {other}"),
    }
}

#[tokio::test]
async fn cancel_stops_a_background_stream() {
    let fake = FakeOpenAi::start().await.unwrap();
    fake.set_background_pacing(Duration::from_millis(10), Duration::from_millis(40));
    let q = create(
        &fake,
        json!({"model": MODEL, "input": "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen", "background": true}),
    )
    .await;
    let id = q["id"].as_str().unwrap();
    let mut reader =
        Reader::new(send(&fake, "GET", &format!("/responses/{id}?stream=true"), None).await);
    while reader
        .values()
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .count()
        < 2
    {
        assert_eq!(reader.chunk().await, None);
    }
    let (status, c) = call(&fake, "POST", &format!("/responses/{id}/cancel"), None).await;
    assert_eq!(status, 200);
    assert_eq!(c["status"], "cancelled");
    assert!(c["usage"].is_null());
    assert_eq!(c["background"], true);
    // The stream ends cleanly, without a terminal event, having sent exactly what was due
    // before the cancel: the cancelled Response's text.
    assert_eq!(reader.read_to_end().await, End::Clean);
    let events = reader.values();
    assert_contiguous(&events, 0);
    assert!(
        events
            .iter()
            .all(|e| e["type"] != "response.completed" && e["type"] != "response.output_item.done")
    );
    assert_eq!(deltas(&events), text_of(&c));
    assert_eq!(c["output"][0]["status"], "in_progress");
    assert_eq!(get(&fake, &format!("/responses/{id}")).await, (200, c));
    assert_eq!(fake.finished(1), Some(true));
}

#[tokio::test]
async fn background_stream_drop_then_resume() {
    let fake = FakeOpenAi::start().await.unwrap();
    fake.set_background_pacing(Duration::from_millis(20), Duration::from_millis(5));
    fake.push(Scenario::drop_after(5));
    let resp = post(
        &fake,
        "/responses",
        json!({"model": MODEL, "input": "resume me", "background": true, "stream": true}),
    )
    .await;
    let mut first = Reader::new(resp);
    assert_eq!(first.read_to_end().await, End::Failed);
    let head = first.values();
    assert_eq!(head.len(), 5, "five whole events, then half of one");
    assert_contiguous(&head, 0);
    assert_eq!(fake.finished(0), Some(false));
    let id = head[0]["response"]["id"].as_str().unwrap().to_string();

    // Resume after the last event seen.
    let mut rest = Reader::new(
        send(
            &fake,
            "GET",
            &format!("/responses/{id}?stream=true&starting_after=4"),
            None,
        )
        .await,
    );
    assert_eq!(rest.read_to_end().await, End::Clean);
    let mut all = head.clone();
    all.extend(rest.values());
    assert_contiguous(&all, 0);
    assert_eq!(all.last().unwrap()["type"], "response.completed");
    assert_eq!(
        text_of(&all.last().unwrap()["response"]),
        deltas(&all),
        "every delta exactly once"
    );
    let requests = fake.requests();
    assert_eq!(requests[1].method, "GET");
    assert_eq!(
        requests[1].path,
        format!("/v1/responses/{id}?stream=true&starting_after=4")
    );

    // A GET stream can be cut too, counting its own events: here it stalls after two.
    fake.push(Scenario::stall_after(2));
    let mut stalled = Reader::new(
        send(
            &fake,
            "GET",
            &format!("/responses/{id}?stream=true&starting_after=10"),
            None,
        )
        .await,
    );
    stalled.until(2).await;
    assert_eq!(stalled.events[0].0, all[11]);
    assert_eq!(stalled.events[1].0, all[12]);
    let index = fake.requests().len() - 1;
    drop(stalled);
    tokio::time::timeout(SAFETY, fake.client_gone(index))
        .await
        .expect("the stalled body was never finished");

    // Other framings apply to background streams as well.
    fake.push(Scenario::Default {
        framing: Framing {
            done_marker: true,
            chunk_size: Some(7),
            ..Framing::default()
        },
        ending: Ending::Close,
    });
    let body = send(
        &fake,
        "GET",
        &format!("/responses/{id}?stream=true&starting_after=2"),
        None,
    )
    .await
    .bytes()
    .await
    .unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let (events, done) = text.rsplit_once("data: [DONE]").unwrap();
    assert_eq!(done, "\n\n");
    assert_eq!(events_of(events.as_bytes()), all[3..]);
}

#[tokio::test]
async fn compact_keeps_user_messages() {
    let fake = FakeOpenAi::start().await.unwrap();
    let (status, err) = call(
        &fake,
        "POST",
        "/responses/compact",
        Some(json!({"input": "x"})),
    )
    .await;
    assert_eq!(status, 400);
    error_of(&err, Some("model"), Some("missing_required_parameter"));
    let prev = create(&fake, json!({"model": MODEL, "input": "First thing"})).await;
    let (status, c) = call(
        &fake,
        "POST",
        "/responses/compact",
        Some(
            json!({"model": MODEL, "previous_response_id": prev["id"], "input": [
            {"role": "user", "content": "Second thing"},
            {"type": "function_call_output", "call_id": "call_1", "output": "{\"ok\":true}"},
        ], "prompt_cache_key": "k", "service_tier": "auto", "instructions": "Be brief."}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{c}");
    assert!(c["id"].as_str().unwrap().starts_with("cmp_"));
    assert_eq!(c["object"], "response.compaction");
    assert!(c["created_at"].is_u64());
    let output = c["output"].as_array().unwrap();
    assert_eq!(output.len(), 3);
    assert_eq!(output[0]["content"][0]["text"], "First thing");
    assert_eq!(output[1]["content"][0]["text"], "Second thing");
    assert!(
        output[..2]
            .iter()
            .all(|i| i["role"] == "user" && i["type"] == "message")
    );
    let compaction = &output[2];
    assert_eq!(compaction["type"], "compaction");
    assert!(compaction["id"].as_str().unwrap().starts_with("cmp_"));
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(compaction["encrypted_content"].as_str().unwrap())
        .unwrap();
    assert!(!decoded.is_empty());
    let usage = &c["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
    );
    assert!(usage["input_tokens_details"]["cached_tokens"].is_u64());
    assert!(usage["output_tokens_details"]["reasoning_tokens"].is_u64());
    let (status, err) = call(
        &fake,
        "POST",
        "/responses/compact",
        Some(json!({"model": MODEL, "previous_response_id": "resp_nope"})),
    )
    .await;
    assert_eq!(status, 400);
    error_of(
        &err,
        Some("previous_response_id"),
        Some("previous_response_not_found"),
    );
}

#[tokio::test]
async fn scenarios_and_bad_input_on_lifecycle_routes() {
    let fake = FakeOpenAi::start().await.unwrap();
    let r = create(&fake, json!({"model": MODEL, "input": "x"})).await;
    let id = r["id"].as_str().unwrap();
    fake.push(Scenario::error(
        503,
        crate::fake::error_body("busy", "server_error", None, None),
    ));
    let (status, err) = get(&fake, &format!("/responses/{id}")).await;
    assert_eq!(status, 503);
    assert_eq!(err["error"]["message"], "busy");
    assert_eq!(get(&fake, &format!("/responses/{id}")).await.0, 200);

    for (body, param) in [
        (json!({"model": MODEL, "input": 5}), "input"),
        (json!({"model": MODEL, "input": ["x"]}), "input[0]"),
        (
            json!({"model": MODEL, "input": [{"role": "user"}]}),
            "input[0].content",
        ),
        (json!({"model": MODEL, "background": "yes"}), "background"),
        (json!({"model": MODEL, "store": 1}), "store"),
        (json!({"model": MODEL, "conversation": 5}), "conversation"),
        (
            json!({"model": MODEL, "previous_response_id": 5}),
            "previous_response_id",
        ),
    ] {
        let (status, err) = call(&fake, "POST", "/responses", Some(body.clone())).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(err["error"]["param"], param, "{err}");
    }
    for query in ["stream=maybe", "stream=true&starting_after=x"] {
        let (status, _) = get(&fake, &format!("/responses/{id}?{query}")).await;
        assert_eq!(status, 400, "{query}");
    }
}
