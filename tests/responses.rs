//! End-to-end tests of ResponsesService: a generated gRPC client -> the gateway -> the fake
//! OpenAI, all on loopback.

mod common;

use std::time::{Duration, Instant};

use common::{Harness, TEST_KEY, drain, reason, struct_of, text_request};
use openai_grpc_gateway::{
    fake::{self, Ending, Framing, LineEnding, Scenario},
    pb::{
        self, CreateResponseRequest, CreateResponseResponse, create_response_response::Event,
        output_item,
    },
};
use serde_json::json;
use tonic::{Code, Status};
use tonic_types::StatusExt;

fn deltas(messages: &[CreateResponseResponse]) -> String {
    messages
        .iter()
        .filter_map(|m| match &m.event {
            Some(Event::OutputTextDelta(d)) => d.delta.clone(),
            _ => None,
        })
        .collect()
}

fn completed(messages: &[CreateResponseResponse]) -> &pb::Response {
    match &messages.last().and_then(|m| m.event.as_ref()) {
        Some(Event::Completed(c)) => c.response.as_ref().expect("completed carries the response"),
        other => panic!("last event is not completed: {other:?}"),
    }
}

#[tokio::test]
async fn streamed_deltas_join_to_the_final_output_text() {
    let h = Harness::start().await;
    let (messages, end) = h
        .call(text_request(
            "Write a 1-sentence welcome message for a new user.",
        ))
        .await
        .expect("stream opens");
    assert!(end.is_none(), "stream ended with {end:?}");
    assert!(matches!(messages[0].event, Some(Event::Created(_))));
    assert!(matches!(messages[1].event, Some(Event::InProgress(_))));
    let seqs: Vec<i32> = messages
        .iter()
        .map(|m| m.sequence_number.unwrap())
        .collect();
    assert_eq!(seqs, (0..messages.len() as i32).collect::<Vec<_>>());
    let joined = deltas(&messages);
    let response = completed(&messages);
    assert_eq!(joined, response.output_text);
    assert_eq!(joined, "Welcome aboard - we're glad you're here.");
    assert!(
        messages
            .iter()
            .filter(|m| matches!(m.event, Some(Event::OutputTextDelta(_))))
            .count()
            > 3
    );

    // What went upstream: OpenAI's names, stream on, the key as a bearer token.
    let sent = &h.fake.requests()[0];
    assert_eq!(sent.path, "/v1/responses");
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {TEST_KEY}").as_str())
    );
    let body = sent.json.as_ref().unwrap();
    assert_eq!(body["model"], "gpt-4.1");
    assert_eq!(
        body["input"],
        "Write a 1-sentence welcome message for a new user."
    );
    assert_eq!(body["stream"], true);
    h.stop().await;
}

#[tokio::test]
async fn stream_off_gives_exactly_one_message() {
    let h = Harness::start().await;
    let mut req = text_request("Write a 1-sentence welcome message for a new user.");
    req.stream = Some(false);
    let (messages, end) = h.call(req).await.expect("call succeeds");
    assert!(end.is_none());
    assert_eq!(messages.len(), 1);
    let response = completed(&messages);
    assert_eq!(
        response.output_text,
        "Welcome aboard - we're glad you're here."
    );
    assert_eq!(response.status.as_deref(), Some("completed"));
    assert_eq!(h.fake.requests()[0].json.as_ref().unwrap()["stream"], false);
}

#[tokio::test]
async fn organization_and_project_headers_are_sent() {
    let h = Harness::start_with(|c| {
        c.upstream.organization = Some("org-seed".into());
        c.upstream.project = Some("proj_seed".into());
    })
    .await;
    h.call(text_request("hi")).await.unwrap();
    let sent = &h.fake.requests()[0];
    assert_eq!(sent.header("openai-organization"), Some("org-seed"));
    assert_eq!(sent.header("openai-project"), Some("proj_seed"));
}

#[tokio::test]
async fn tool_call_stream() {
    let h = Harness::start().await;
    let req = CreateResponseRequest {
        tools: vec![pb::Tool {
            tool: Some(pb::tool::Tool::Function(pb::FunctionTool {
                name: "get_weather".into(),
                description: Some("Current weather for a city".into()),
                parameters: Some(struct_of(json!({
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                    "additionalProperties": false
                }))),
                strict: Some(true),
                ..Default::default()
            })),
        }],
        ..text_request("Weather in Paris?")
    };
    let (messages, end) = h.call(req).await.unwrap();
    assert!(end.is_none());
    let args: String = messages
        .iter()
        .filter_map(|m| match &m.event {
            Some(Event::FunctionCallArgumentsDelta(d)) => d.delta.clone(),
            _ => None,
        })
        .collect();
    let done = messages
        .iter()
        .find_map(|m| match &m.event {
            Some(Event::FunctionCallArgumentsDone(d)) => d.arguments.clone(),
            _ => None,
        })
        .expect("arguments.done arrives");
    assert_eq!(args, done);
    serde_json::from_str::<serde_json::Value>(&done).expect("arguments are JSON");
    let response = completed(&messages);
    let Some(output_item::Item::FunctionCall(call)) = &response.output[0].item else {
        panic!(
            "first output item is not a function call: {:?}",
            response.output[0]
        );
    };
    assert_eq!(call.name.as_deref(), Some("get_weather"));
    // "Why does my response have no text?": the model called a tool instead.
    assert_eq!(response.output_text, "");
    // The tool went upstream in OpenAI's flat shape.
    let requests = h.fake.requests();
    let tools = &requests[0].json.as_ref().unwrap()["tools"];
    assert_eq!(tools[0]["type"], "function");
    assert_eq!(tools[0]["name"], "get_weather");
    assert_eq!(tools[0]["parameters"]["required"][0], "city");
}

#[tokio::test]
async fn reasoning_stream() {
    let h = Harness::start().await;
    let req = CreateResponseRequest {
        model: "o4-mini".into(),
        reasoning: Some(pb::ReasoningConfig {
            effort: Some("low".into()),
            summary: Some("auto".into()),
            ..Default::default()
        }),
        ..text_request("Why is the sky blue?")
    };
    let (messages, end) = h.call(req).await.unwrap();
    assert!(end.is_none());
    let summary: String = messages
        .iter()
        .filter_map(|m| match &m.event {
            Some(Event::ReasoningSummaryTextDelta(d)) => d.delta.clone(),
            _ => None,
        })
        .collect();
    assert!(!summary.is_empty(), "reasoning summary deltas arrive");
    let response = completed(&messages);
    assert!(matches!(
        response.output[0].item,
        Some(output_item::Item::Reasoning(_))
    ));
    assert_eq!(deltas(&messages), response.output_text);
    assert!(!response.output_text.is_empty());
}

#[tokio::test]
async fn unknown_events_pass_through_as_raw_json() {
    let h = Harness::start().await;
    let future = json!({"type": "response.future_thing.delta", "sequence_number": 1, "payload": {"x": [1, 2.5]}});
    h.fake.push(Scenario::Events {
        events: vec![
            json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1", "status": "in_progress", "output": []}}),
            future.clone(),
            json!({"type": "keepalive", "sequence_number": 2}),
            json!({"type": "response.completed", "sequence_number": 3, "response": {"id": "resp_1", "status": "completed", "output": []}}),
        ],
        framing: Framing::default(),
        ending: Ending::Close,
    });
    let (messages, end) = h.call(text_request("hi")).await.unwrap();
    assert!(end.is_none());
    let Some(Event::Unknown(raw)) = &messages[1].event else {
        panic!("not passed through: {:?}", messages[1]);
    };
    assert_eq!(raw.r#type, "response.future_thing.delta");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&raw.json).unwrap(),
        future
    );
    assert_eq!(messages[1].sequence_number, Some(1));
    assert!(matches!(messages[2].event, Some(Event::Keepalive(_))));
}

/// The same transcript framed every legal way gives the same typed events.
#[tokio::test]
async fn sse_framing_variants_give_identical_events() {
    let h = Harness::start().await;
    let (reference, _) = h.call(text_request("hi there")).await.unwrap();
    let framings = [
        Framing {
            line_ending: LineEnding::CrLf,
            ..Default::default()
        },
        Framing {
            line_ending: LineEnding::Cr,
            ..Default::default()
        },
        Framing {
            comments: true,
            ..Default::default()
        },
        Framing {
            multiline_data: true,
            ..Default::default()
        },
        Framing {
            omit_event_lines: true,
            done_marker: true,
            ..Default::default()
        },
        Framing {
            chunk_size: Some(1),
            ..Default::default()
        },
        Framing {
            chunk_size: Some(7),
            line_ending: LineEnding::CrLf,
            comments: true,
            ..Default::default()
        },
    ];
    for framing in framings {
        h.fake.push(Scenario::Default {
            framing: framing.clone(),
            ending: Ending::Close,
        });
        let (messages, end) = h.call(text_request("hi there")).await.unwrap();
        assert!(end.is_none(), "{framing:?}: {end:?}");
        assert_eq!(messages.len(), reference.len(), "{framing:?}");
        for (a, b) in messages.iter().zip(&reference) {
            assert_eq!(a.sequence_number, b.sequence_number, "{framing:?}");
            assert_eq!(
                std::mem::discriminant(a.event.as_ref().unwrap()),
                std::mem::discriminant(b.event.as_ref().unwrap()),
                "{framing:?}"
            );
        }
        assert_eq!(deltas(&messages), deltas(&reference), "{framing:?}");
    }
}

/// Raw bytes split at awkward places: inside "data:", inside a multi-byte character, between
/// CR and LF.
#[tokio::test]
async fn bytes_split_anywhere() {
    let h = Harness::start().await;
    let events = fake::text_events("gpt-4.1", "Héllo wörld – ünïcode ✓");
    let mut bytes = Vec::new();
    for e in &events {
        bytes.extend_from_slice(
            format!(
                "event: {}\r\ndata: {}\r\n\r\n",
                e["type"].as_str().unwrap(),
                e
            )
            .as_bytes(),
        );
    }
    let text = String::from_utf8(bytes.clone()).unwrap();
    let inside_char = text.find('é').unwrap() + 1;
    let between_cr_lf = text.find("\r\n").unwrap() + 1;
    let inside_field = text.find("data:").unwrap() + 2;
    let mut split_at: Vec<usize> = vec![between_cr_lf, inside_field, inside_char];
    split_at.extend((0..bytes.len()).step_by(13));
    split_at.sort();
    split_at.dedup();
    h.fake.push(Scenario::RawSse { bytes, split_at });
    let (messages, end) = h.call(text_request("x")).await.unwrap();
    assert!(end.is_none(), "{end:?}");
    assert_eq!(messages.len(), events.len());
    assert_eq!(deltas(&messages), "Héllo wörld – ünïcode ✓");
    assert_eq!(completed(&messages).output_text, "Héllo wörld – ünïcode ✓");
}

// ---- local validation ---------------------------------------------------------------------

#[tokio::test]
async fn missing_model_is_invalid_argument_without_an_upstream_call() {
    let h = Harness::start().await;
    let status = h
        .responses()
        .create_response(CreateResponseRequest {
            input_text: Some("hi".into()),
            ..Default::default()
        })
        .await
        .expect_err("rejected");
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    assert_eq!(
        details.bad_request().unwrap().field_violations[0].field,
        "model"
    );
    assert_eq!(details.error_info().unwrap().reason, "INVALID_REQUEST");
    assert!(h.fake.requests().is_empty(), "no upstream call was made");
}

#[tokio::test]
async fn every_local_problem_is_reported_at_once() {
    let h = Harness::start().await;
    let mut req = text_request("hi");
    req.temperature = Some(3.0);
    req.input_items.push(pb::InputItem::default());
    for i in 0..17 {
        req.metadata.insert(format!("k{i}"), "v".into());
    }
    let status = h
        .responses()
        .create_response(req)
        .await
        .expect_err("rejected");
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = status
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    for expected in ["input_items", "temperature", "metadata"] {
        assert!(
            fields.iter().any(|f| f == expected),
            "{expected} missing from {fields:?}"
        );
    }
    assert!(h.fake.requests().is_empty());
}

// ---- upstream errors before any output -----------------------------------------------------

/// One upstream failure, with retries off so the mapping itself is what is seen.
async fn upstream_error(
    status: u16,
    kind: &str,
    code: Option<&str>,
    headers: Vec<(String, String)>,
) -> (Harness, Status) {
    let h = Harness::start_with(|c| c.retry.max_retries = 0).await;
    h.fake.push(Scenario::Error {
        status,
        body: fake::error_body("upstream says no", kind, None, code),
        headers,
    });
    let err = h
        .responses()
        .create_response(text_request("hi"))
        .await
        .expect_err("fails before streaming");
    (h, err)
}

#[tokio::test]
async fn upstream_http_errors_map_to_grpc_codes() {
    for (http, kind, code, grpc, reason_name) in [
        (
            400,
            "invalid_request_error",
            None,
            Code::InvalidArgument,
            "UPSTREAM_INVALID_REQUEST",
        ),
        (
            401,
            "invalid_request_error",
            Some("invalid_api_key"),
            Code::Unauthenticated,
            "UPSTREAM_UNAUTHENTICATED",
        ),
        (
            403,
            "request_forbidden",
            Some("unsupported_country_region_territory"),
            Code::PermissionDenied,
            "UPSTREAM_PERMISSION_DENIED",
        ),
        (
            404,
            "invalid_request_error",
            Some("model_not_found"),
            Code::NotFound,
            "UPSTREAM_NOT_FOUND",
        ),
        (
            409,
            "invalid_request_error",
            None,
            Code::Aborted,
            "UPSTREAM_CONFLICT",
        ),
        (
            422,
            "invalid_request_error",
            None,
            Code::InvalidArgument,
            "UPSTREAM_INVALID_REQUEST",
        ),
        (
            429,
            "insufficient_quota",
            Some("insufficient_quota"),
            Code::ResourceExhausted,
            "UPSTREAM_QUOTA_EXCEEDED",
        ),
        (
            500,
            "server_error",
            None,
            Code::Unavailable,
            "UPSTREAM_UNAVAILABLE",
        ),
        (
            502,
            "server_error",
            None,
            Code::Unavailable,
            "UPSTREAM_UNAVAILABLE",
        ),
        (
            503,
            "server_error",
            None,
            Code::Unavailable,
            "UPSTREAM_UNAVAILABLE",
        ),
        (
            504,
            "server_error",
            None,
            Code::DeadlineExceeded,
            "UPSTREAM_TIMEOUT",
        ),
    ] {
        let (h, status) = upstream_error(http, kind, code, vec![]).await;
        assert_eq!(status.code(), grpc, "HTTP {http}: {status:?}");
        assert_eq!(reason(&status), reason_name, "HTTP {http}");
        let details = status.get_error_details();
        let info = details.error_info().unwrap();
        assert_eq!(info.domain, "openai-grpc-gateway");
        assert_eq!(info.metadata["upstreamHttpStatus"], http.to_string());
        assert_eq!(info.metadata["upstreamErrorType"], kind);
        // The upstream x-request-id travels in ErrorInfo and RequestInfo.
        let request_id = &info.metadata["upstreamRequestId"];
        assert!(request_id.starts_with("req_"), "{request_id}");
        assert_eq!(&details.request_info().unwrap().request_id, request_id);
        if http == 429 {
            assert!(
                details.retry_info().is_none(),
                "quota errors must not invite a retry"
            );
        }
        assert_eq!(h.fake.requests().len(), 1);
    }
}

#[tokio::test]
async fn wrong_key_is_unauthenticated_with_guidance() {
    let h = Harness::start().await;
    h.fake.require_api_key("sk-the-right-one");
    let status = h
        .responses()
        .create_response(text_request("hi"))
        .await
        .expect_err("401");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("missing, mistyped or revoked"),
        "{}",
        status.message()
    );
    assert!(!status.message().contains(TEST_KEY));
    assert_eq!(reason(&status), "UPSTREAM_UNAUTHENTICATED");
}

#[tokio::test]
async fn rate_limit_is_resource_exhausted_with_retry_info() {
    let (_h, status) = upstream_error(
        429,
        "requests",
        Some("rate_limit_exceeded"),
        vec![("retry-after".into(), "2".into())],
    )
    .await;
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(reason(&status), "UPSTREAM_RATE_LIMITED");
    let details = status.get_error_details();
    assert_eq!(
        details.retry_info().unwrap().retry_delay,
        Some(Duration::from_secs(2))
    );
}

#[tokio::test]
async fn unknown_model_is_not_found() {
    let h = Harness::start().await;
    let mut req = text_request("hi");
    req.model = "does-not-exist".into();
    let status = h.responses().create_response(req).await.expect_err("404");
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status.message().contains("check the model id"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn connection_refused_is_unavailable() {
    // A port that was bound and released: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let h = Harness::start_with(|c| {
        c.upstream = openai_grpc_gateway::openai::UpstreamConfig::new(&format!(
            "http://127.0.0.1:{port}/v1"
        ))
        .unwrap();
    })
    .await;
    let status = h
        .responses()
        .create_response(text_request("hi"))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason(&status), "UPSTREAM_UNREACHABLE");
}

#[tokio::test]
async fn upstream_http2_streams_over_h2c() {
    use openai_grpc_gateway::openai::UpstreamProtocol;
    // Negotiated (the default) on a plaintext upstream is HTTP/1.1.
    let h1 = Harness::start().await;
    let (_, end) = h1.call(text_request("hi")).await.unwrap();
    assert!(end.is_none());
    assert_eq!(h1.fake.requests()[0].version, "HTTP/1.1");
    // --upstream-http2: h2c with prior knowledge, several streams at once, each complete.
    let h2 = Harness::start_with(|c| c.upstream.protocol = UpstreamProtocol::Http2).await;
    let calls = (0..4).map(|i| h2.call(text_request(&format!("hello {i}"))));
    for result in futures_util::future::join_all(calls).await {
        let (messages, end) = result.expect("stream opens");
        assert!(end.is_none(), "{end:?}");
        assert!(!deltas(&messages).is_empty());
        completed(&messages);
    }
    let requests = h2.fake.requests();
    assert_eq!(requests.len(), 4);
    assert!(
        requests.iter().all(|r| r.version == "HTTP/2.0"),
        "{:?}",
        requests.iter().map(|r| &r.version).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn after_the_terminal_event_the_upstream_body_is_read_to_its_end() {
    use openai_grpc_gateway::openai::UpstreamProtocol;
    // A server that ends its body a second after `response.completed`: the caller's stream ends
    // at once, and the gateway still reads the upstream body to its end instead of resetting
    // the request (over HTTP/2, resets whose end arrives late use up the connection's budget of
    // local error resets, and then every stream on it fails).
    for protocol in [UpstreamProtocol::Negotiated, UpstreamProtocol::Http2] {
        let h = Harness::start_with(|c| c.upstream.protocol = protocol).await;
        h.fake.push(Scenario::Default {
            framing: Framing {
                pause_before_end: Some(Duration::from_secs(1)),
                ..Framing::default()
            },
            ending: Ending::Close,
        });
        let (messages, end) = h.call(text_request("hi")).await.unwrap();
        assert!(end.is_none(), "{protocol:?}: {end:?}");
        completed(&messages);
        assert_eq!(
            h.fake.finished(0),
            None,
            "{protocol:?}: when the caller's stream has ended the upstream body is still running (neither dropped nor waited for)"
        );
        assert!(
            h.fake.body_ended(0).await,
            "{protocol:?}: the upstream body was dropped before its end"
        );
    }
}

#[tokio::test]
async fn undecodable_bodies_are_internal() {
    let h = Harness::start().await;
    // Not an event stream at all.
    h.fake.push(Scenario::Body {
        status: 200,
        content_type: "text/html".into(),
        chunks: vec!["<html>proxy error</html>".into()],
        delay: None,
        headers: vec![],
    });
    let status = h
        .responses()
        .create_response(text_request("hi"))
        .await
        .expect_err("html");
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(reason(&status), "UPSTREAM_UNDECODABLE");
    // An event stream whose data is not JSON: fails in the stream.
    h.fake.push(Scenario::RawSse {
        bytes: b"event: response.created\ndata: {not json\n\n".to_vec(),
        split_at: vec![],
    });
    let (messages, end) = h.call(text_request("hi")).await.unwrap();
    assert!(messages.is_empty());
    assert_eq!(end.unwrap().code(), Code::Internal);
}

// ---- failures after output started -----------------------------------------------------------

#[tokio::test]
async fn mid_stream_error_event_is_forwarded_then_the_status_ends_the_stream() {
    let h = Harness::start().await;
    let mut events = fake::text_events("gpt-4.1", "never finished");
    events.truncate(2);
    events.push(fake::error_event(
        2,
        "tokens",
        "rate_limit_exceeded",
        "Rate limit reached. Please try again in 6.5s.",
        None,
    ));
    h.fake.push(Scenario::Events {
        events,
        framing: Framing::default(),
        ending: Ending::Close,
    });
    let (messages, end) = h.call(text_request("hi")).await.unwrap();
    assert_eq!(messages.len(), 3);
    let Some(Event::Error(e)) = &messages[2].event else {
        panic!("{:?}", messages[2])
    };
    assert_eq!(
        e.error.as_ref().unwrap().code.as_deref(),
        Some("rate_limit_exceeded")
    );
    let status = end.expect("the stream ends with a status");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(
        status.get_error_details().retry_info().unwrap().retry_delay,
        Some(Duration::from_secs_f64(6.5))
    );
}

#[tokio::test]
async fn response_failed_is_forwarded_then_unavailable() {
    let h = Harness::start().await;
    h.fake.push(Scenario::Events {
        events: fake::failed_events("gpt-4.1"),
        framing: Framing::default(),
        ending: Ending::Close,
    });
    let (messages, end) = h.call(text_request("hi")).await.unwrap();
    assert!(matches!(
        messages.last().unwrap().event,
        Some(Event::Failed(_))
    ));
    let status = end.expect("status after failed");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason(&status), "UPSTREAM_RESPONSE_FAILED");
}

#[tokio::test]
async fn incomplete_is_a_normal_ending() {
    let h = Harness::start().await;
    h.fake.push(Scenario::Events {
        events: fake::incomplete_events("gpt-4.1", "cut short"),
        framing: Framing::default(),
        ending: Ending::Close,
    });
    let (messages, end) = h.call(text_request("hi")).await.unwrap();
    assert!(end.is_none(), "{end:?}");
    let Some(Event::Incomplete(i)) = &messages.last().unwrap().event else {
        panic!()
    };
    let response = i.response.as_ref().unwrap();
    assert_eq!(
        response
            .incomplete_details
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("max_output_tokens")
    );
}

#[tokio::test]
async fn connection_dropped_mid_stream_is_unavailable() {
    let h = Harness::start().await;
    h.fake.push(Scenario::drop_after(4));
    let (messages, end) = h.call(text_request("hi")).await.unwrap();
    assert_eq!(messages.len(), 4);
    let status = end.expect("never a silent close");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason(&status), "UPSTREAM_CONNECTION_LOST");
}

#[tokio::test]
async fn clean_close_without_terminal_event_is_unavailable() {
    let h = Harness::start().await;
    let mut events = fake::text_events("gpt-4.1", "half");
    events.truncate(3);
    h.fake.push(Scenario::Events {
        events,
        framing: Framing::default(),
        ending: Ending::Close,
    });
    let (messages, end) = h.call(text_request("hi")).await.unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(end.expect("not silent").code(), Code::Unavailable);
}

// ---- cost safety and backpressure -----------------------------------------------------------

#[tokio::test]
async fn cancel_closes_the_upstream_request_within_100ms() {
    let h = Harness::start().await;
    h.fake.push(Scenario::stall_after(3));
    let mut stream = h
        .responses()
        .create_response(text_request("hi"))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..3 {
        stream.message().await.unwrap().expect("an event");
    }
    let cancelled_at = Instant::now();
    drop(stream);
    let gone_at = tokio::time::timeout(Duration::from_secs(5), h.fake.client_gone(0))
        .await
        .expect("the upstream request was closed");
    let after = gone_at.saturating_duration_since(cancelled_at);
    assert!(
        after < Duration::from_millis(100),
        "upstream closed {after:?} after the cancel"
    );
    assert_eq!(h.fake.finished(0), Some(false));
}

#[tokio::test]
async fn a_slow_reader_slows_the_upstream_read() {
    let h = Harness::start().await;
    // 1,000 deltas of 64 KiB: ~64 MiB, far more than what sits in flight between the hops
    // (two TCP connections' buffers, the HTTP/2 window and the bounded channel: ~11 MiB seen on
    // loopback). The final Response stays small so it fits a default 4 MiB client.
    let piece = "x".repeat(64 * 1024);
    let mut events = vec![
        json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_big", "status": "in_progress", "output": []}}),
    ];
    for i in 1..=1000 {
        events.push(json!({"type": "response.output_text.delta", "sequence_number": i, "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": piece, "logprobs": []}));
    }
    events.push(json!({"type": "response.completed", "sequence_number": 1001, "response": {"id": "resp_big", "status": "completed", "output": []}}));
    let total: usize = events.iter().map(|e| e.to_string().len()).sum();
    h.fake.push(Scenario::Events {
        events,
        framing: Framing::default(),
        ending: Ending::Close,
    });
    let mut stream = h
        .responses()
        .create_response(text_request("hi"))
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().expect("first event");
    // The caller is slow: it stops reading for a while. Not synchronisation: the scenario.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = h.fake.sent_bytes(0) as usize;
    assert!(
        sent < total / 3,
        "upstream sent {sent} of {total} bytes to a caller that read one event"
    );
    // Nothing is lost once it reads on.
    let (rest, end) = drain(stream).await;
    assert!(end.is_none(), "{end:?}");
    assert_eq!(rest.len(), 1001);
    assert_eq!(deltas(&rest).len(), 1000 * piece.len());
    assert_eq!(h.fake.finished(0), Some(true));
}

// ---- every field, tool and item of OpenAI's spec -----------------------------------------------

/// The request-side parts of `message` that are not typed: a `Struct` catch-all (`other`) or a
/// non-empty `extra_json` of a replayed item.
fn untyped_request_parts(message: &prost_reflect::DynamicMessage, path: &str) -> Vec<String> {
    use prost_reflect::{ReflectMessage, Value as PValue};
    let mut found = Vec::new();
    for (field, value) in message.fields() {
        let here = format!("{path}.{}", field.name());
        match value {
            _ if field.name() == "other" && field.containing_oneof().is_some() => found.push(here),
            PValue::String(s) if field.name() == "extra_json" && !s.is_empty() => found.push(here),
            PValue::Message(m) if !m.descriptor().full_name().starts_with("google.protobuf.") => {
                found.extend(untyped_request_parts(m, &here));
            }
            PValue::List(items) => {
                for (i, v) in items.iter().enumerate() {
                    if let PValue::Message(m) = v {
                        found.extend(untyped_request_parts(m, &format!("{here}[{i}]")));
                    }
                }
            }
            PValue::Map(entries) => {
                for (k, v) in entries {
                    if let PValue::Message(m) = v {
                        found.extend(untyped_request_parts(m, &format!("{here}[{k:?}]")));
                    }
                }
            }
            _ => {}
        }
    }
    found
}

/// A CreateResponse body in OpenAI's JSON, as the generated type: every member must land in a
/// typed field (the request messages have no `extra_json`, so anything untyped would be lost and
/// the upstream body would differ).
fn typed_request(body: &serde_json::Value) -> CreateResponseRequest {
    use prost::Message;
    use prost_reflect::ReflectMessage;
    let desc = openai_grpc_gateway::pb::pool()
        .get_message_by_name("openai_gateway.v1.CreateResponseRequest")
        .unwrap();
    let request: CreateResponseRequest = openai_grpc_gateway::convert::schema()
        .decode_json(&desc, body)
        .expect("decodes");
    let dynamic =
        prost_reflect::DynamicMessage::decode(desc, request.encode_to_vec().as_slice()).unwrap();
    let untyped = untyped_request_parts(&dynamic, "request");
    assert!(untyped.is_empty(), "not typed: {untyped:?}");
    assert_eq!(dynamic.descriptor().name(), "CreateResponseRequest");
    request
}

#[tokio::test]
async fn every_tool_choice_reaches_the_upstream_unchanged() {
    let h = Harness::start().await;
    let mut choices = vec![
        json!({"type": "function", "name": "get_weather"}),
        json!({"type": "mcp", "server_label": "internal", "name": "search"}),
        json!({"type": "custom", "name": "run_sql"}),
        json!({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "image_generation"}]}),
    ];
    for hosted in [
        "file_search",
        "web_search_preview",
        "web_search_preview_2025_03_11",
        "computer",
        "computer_use_preview",
        "computer_use",
        "image_generation",
        "code_interpreter",
        "programmatic_tool_calling",
        "apply_patch",
        "shell",
    ] {
        choices.push(json!({"type": hosted}));
    }
    for (i, choice) in choices.iter().enumerate() {
        let request =
            typed_request(&json!({"model": "gpt-4.1", "input": "hi", "tool_choice": choice}));
        h.call(request).await.expect("accepted");
        let sent = h.fake.requests()[i].json.clone().unwrap();
        assert_eq!(sent["tool_choice"], *choice);
    }
}

#[tokio::test]
async fn a_completed_response_with_every_output_item_type_arrives_typed() {
    let h = Harness::start().await;
    h.fake.push(Scenario::events(fake::every_item_events()));
    let (messages, end) = h.call(text_request("hi")).await.unwrap();
    assert!(end.is_none(), "{end:?}");
    let response = completed(&messages);
    assert_eq!(response.output.len(), 28);
    use output_item::Item as I;
    let kinds: Vec<&str> = response
        .output
        .iter()
        .map(|item| match item.item.as_ref().expect("typed") {
            I::Message(_) => "message",
            I::FileSearchCall(_) => "file_search_call",
            I::FunctionCall(_) => "function_call",
            I::FunctionCallOutput(_) => "function_call_output",
            I::WebSearchCall(_) => "web_search_call",
            I::ComputerCall(_) => "computer_call",
            I::ComputerCallOutput(_) => "computer_call_output",
            I::Reasoning(_) => "reasoning",
            I::Program(_) => "program",
            I::ProgramOutput(_) => "program_output",
            I::ToolSearchCall(_) => "tool_search_call",
            I::ToolSearchOutput(_) => "tool_search_output",
            I::AdditionalTools(_) => "additional_tools",
            I::Compaction(_) => "compaction",
            I::ImageGenerationCall(_) => "image_generation_call",
            I::CodeInterpreterCall(_) => "code_interpreter_call",
            I::LocalShellCall(_) => "local_shell_call",
            I::LocalShellCallOutput(_) => "local_shell_call_output",
            I::ShellCall(_) => "shell_call",
            I::ShellCallOutput(_) => "shell_call_output",
            I::ApplyPatchCall(_) => "apply_patch_call",
            I::ApplyPatchCallOutput(_) => "apply_patch_call_output",
            I::McpCall(_) => "mcp_call",
            I::McpListTools(_) => "mcp_list_tools",
            I::McpApprovalRequest(_) => "mcp_approval_request",
            I::McpApprovalResponse(_) => "mcp_approval_response",
            I::CustomToolCall(_) => "custom_tool_call",
            I::CustomToolCallOutput(_) => "custom_tool_call_output",
            I::Unknown(raw) => panic!("untyped item {}", raw.r#type),
        })
        .collect();
    let expected: Vec<String> = fake::every_output_item_type()
        .iter()
        .map(|i| i["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, expected);
    // A few typed values a client of the shell, apply-patch and computer tools reads.
    let Some(I::ShellCallOutput(shell)) = &response.output[19].item else {
        panic!()
    };
    let outcome = shell.output[0].outcome.as_ref().unwrap();
    assert_eq!(
        (outcome.r#type.as_deref(), outcome.exit_code),
        (Some("exit"), Some(0))
    );
    let Some(I::ApplyPatchCall(patch)) = &response.output[20].item else {
        panic!()
    };
    assert_eq!(
        patch.operation.as_ref().unwrap().path.as_deref(),
        Some("src/main.rs")
    );
    let Some(I::ComputerCall(computer)) = &response.output[5].item else {
        panic!()
    };
    assert_eq!(computer.actions.len(), 8);
    assert_eq!(
        computer.action.as_ref().unwrap().button.as_deref(),
        Some("left")
    );
    let Some(I::McpCall(mcp)) = &response.output[22].item else {
        panic!()
    };
    assert_eq!(mcp.error_detail.as_ref().unwrap().code, Some(503));
    assert_eq!(
        response
            .moderation
            .as_ref()
            .unwrap()
            .input
            .as_ref()
            .unwrap()
            .flagged,
        Some(false)
    );
}

/// JSON equality where numbers compare by value (a double-typed field sends back `1.0`).
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) => x.as_f64() == y.as_f64(),
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Every request field, input item type and tool the spec has, in OpenAI's JSON.
fn every_request_feature() -> serde_json::Value {
    // Every output item can be replayed as input (function_call_output is the input form, which
    // has no `created_by`); then an easy-form user message with every part field, an item
    // reference, and a compaction trigger (which must come last).
    let mut input: Vec<serde_json::Value> = fake::every_output_item_type();
    for item in &mut input {
        if item["type"] == "function_call_output" {
            item.as_object_mut().unwrap().remove("created_by");
        }
    }
    input.push(json!({"type": "message", "role": "user", "phase": "commentary", "content": [
        {"type": "input_text", "text": "What about tomorrow?", "prompt_cache_breakpoint": {"mode": "explicit"}},
        {"type": "input_image", "image_url": "https://example.com/sky.png", "detail": "original", "prompt_cache_breakpoint": {"mode": "explicit"}},
        {"type": "input_file", "file_id": "file-notes", "detail": "high", "prompt_cache_breakpoint": {"mode": "explicit"}}
    ]}));
    input.push(json!({"type": "item_reference", "id": "msg_earlier"}));
    input.push(json!({"type": "compaction_trigger"}));
    let any = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false});
    json!({
        "model": "gpt-5.6-terra",
        "input": input,
        "instructions": "Be brief.",
        "max_output_tokens": 2048,
        "max_tool_calls": 12,
        "top_logprobs": 5,
        "include": ["message.output_text.logprobs", "web_search_call.results"],
        "service_tier": "ultrafast",
        "prompt": {"id": "pmpt_68f2a1", "version": "3", "variables": {
            "greeting": {"type": "input_text", "text": "Hello"},
            "photo": {"type": "input_image", "file_id": "file-photo", "detail": "auto"},
            "brief": {"type": "input_file", "file_url": "https://example.com/brief.pdf"}
        }},
        "stream_options": {"include_obfuscation": false},
        "context_management": [{"type": "compaction", "compact_threshold": 200000}],
        "prompt_cache_options": {"ttl": "30m", "mode": "explicit"},
        "prompt_cache_retention": "24h",
        "moderation": {"model": "omni-moderation-latest", "policy": {"input": {"mode": "block"}, "output": {"mode": "score"}}},
        "reasoning": {"effort": "max", "summary": "auto", "context": "all_turns", "mode": "pro", "generate_summary": "concise"},
        "tool_choice": {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "get_weather"}]},
        "tools": [
            {"type": "function", "name": "get_weather", "description": "Current weather", "parameters": any, "strict": true,
             "output_schema": {"type": "object", "properties": {"temp_c": {"type": "number"}}}, "defer_loading": true,
             "allowed_callers": ["direct", "programmatic"]},
            {"type": "web_search", "external_web_access": false, "search_context_size": "high",
             "filters": {"allowed_domains": ["example.com"]}, "user_location": {"type": "approximate", "city": "Paris"}},
            {"type": "web_search_2025_08_26", "external_web_access": true},
            {"type": "file_search", "vector_store_ids": ["vs_1"], "max_num_results": 8},
            {"type": "code_interpreter", "container": {"type": "auto", "memory_limit": "4g"}, "allowed_callers": ["programmatic"]},
            {"type": "image_generation", "model": "gpt-image-2", "input_fidelity": "high", "action": "edit",
             "input_image_mask": {"image_url": "data:image/png;base64,iVBORw0KGgo="}, "output_compression": 100, "partial_images": 0},
            {"type": "mcp", "server_label": "internal", "tunnel_id": "tunnel_0123456789abcdefghijklmnopqrstuv",
             "allowed_callers": ["direct"], "defer_loading": true, "require_approval": "never"},
            {"type": "custom", "name": "run_sql", "description": "Runs SQL", "allowed_callers": ["direct"], "defer_loading": false,
             "format": {"type": "grammar", "syntax": "lark", "definition": "start: \"SELECT\" /.+/"}},
            {"type": "computer"},
            {"type": "computer_use_preview", "environment": "browser", "display_width": 1280, "display_height": 800},
            {"type": "local_shell"},
            {"type": "shell", "environment": {"type": "container_auto", "memory_limit": "1g", "file_ids": ["file-data"]},
             "allowed_callers": ["direct"]},
            {"type": "apply_patch", "allowed_callers": ["direct"]},
            {"type": "namespace", "name": "weather", "description": "Weather tools", "tools": [
                {"type": "function", "name": "get_forecast", "parameters": any, "strict": true},
                {"type": "custom", "name": "describe_sky", "format": {"type": "text"}}
            ]},
            {"type": "tool_search", "execution": "client", "description": "Finds tools", "parameters": {}},
            {"type": "web_search_preview", "search_content_types": ["text", "image"], "search_context_size": "low"},
            {"type": "web_search_preview_2025_03_11", "user_location": {"type": "approximate", "country": "FR"}},
            {"type": "programmatic_tool_calling"}
        ]
    })
}

#[tokio::test]
async fn every_new_field_tool_and_input_item_reaches_the_upstream_unchanged() {
    let h = Harness::start().await;
    let body = every_request_feature();
    let mut request = typed_request(&body);
    // A bare-string prompt variable (the JSON decoder above reads objects only).
    request.prompt.as_mut().unwrap().variables.insert(
        "city".into(),
        pb::PromptVariable {
            value: Some(pb::prompt_variable::Value::Text("Paris".into())),
        },
    );
    let (_, end) = h.call(request).await.expect("accepted");
    assert!(end.is_none(), "{end:?}");
    let sent = h.fake.requests()[0].json.clone().unwrap();
    let mut expected = body;
    expected["prompt"]["variables"]["city"] = json!("Paris");
    expected["stream"] = json!(true);
    assert!(
        same(&sent, &expected),
        "the upstream body differs:\n sent:     {sent}\n expected: {expected}"
    );
}

#[tokio::test]
async fn requests_refused_before_are_accepted() {
    let h = Harness::start().await;
    let image = |detail: &str| pb::InputItem {
        item: Some(pb::input_item::Item::Message(pb::InputMessage {
            role: "user".into(),
            content: vec![pb::InputContent {
                part: Some(pb::input_content::Part::InputImage(pb::InputImagePart {
                    image_url: Some("https://example.com/a.png".into()),
                    detail: Some(detail.into()),
                    ..Default::default()
                })),
            }],
            ..Default::default()
        })),
    };
    // 1. An image part at `detail: "original"`.
    let mut original = text_request("");
    original.input_text = None;
    original.input_items.push(image("original"));
    // 2. An MCP server reached through a Secure MCP Tunnel, without server_url / connector_id.
    let mut tunnel = text_request("Which issues are open?");
    tunnel.tools.push(pb::Tool {
        tool: Some(pb::tool::Tool::Mcp(pb::McpTool {
            server_label: "internal".into(),
            tunnel_id: Some("tunnel_0123456789abcdefghijklmnopqrstuv".into()),
            ..Default::default()
        })),
    });
    // 3. The input and the model come from a stored prompt template.
    let template = CreateResponseRequest {
        prompt: Some(pb::Prompt {
            id: "pmpt_68f2a1".into(),
            version: Some("3".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    for (name, request) in [
        ("original", original),
        ("tunnel", tunnel),
        ("template", template),
    ] {
        let (messages, end) = h
            .call(request)
            .await
            .unwrap_or_else(|s| panic!("{name}: refused: {s:?}"));
        assert!(end.is_none(), "{name}: {end:?}");
        assert!(matches!(
            messages.last().and_then(|m| m.event.as_ref()),
            Some(Event::Completed(_))
        ));
    }
    let sent: Vec<serde_json::Value> = h
        .fake
        .requests()
        .iter()
        .map(|r| r.json.clone().unwrap())
        .collect();
    assert_eq!(sent[0]["input"][0]["content"][0]["detail"], "original");
    assert_eq!(
        sent[1]["tools"][0]["tunnel_id"],
        "tunnel_0123456789abcdefghijklmnopqrstuv"
    );
    assert!(sent[1]["tools"][0].get("server_url").is_none());
    assert_eq!(
        sent[2]["prompt"],
        json!({"id": "pmpt_68f2a1", "version": "3"})
    );
    assert!(
        sent[2].get("model").is_none() && sent[2].get("input").is_none(),
        "{}",
        sent[2]
    );
    // (4, `quality: "auto"` on dall-e, is in tests/images.rs.)
}

#[tokio::test]
async fn max_output_tokens_below_the_spec_minimum_is_refused_locally() {
    let h = Harness::start().await;
    let mut request = text_request("hi");
    request.max_output_tokens = Some(15);
    let status = h.call(request).await.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    let violations = status
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations
        .clone();
    assert_eq!(violations[0].field, "max_output_tokens");
    assert!(h.fake.requests().is_empty(), "no upstream call");
    let mut request = text_request("hi");
    request.max_output_tokens = Some(16);
    h.call(request).await.expect("16 is the minimum");
}

#[tokio::test]
async fn openai_beta_metadata_is_sent_as_the_openai_beta_header() {
    let h = Harness::start().await;
    let mut request = tonic::Request::new(text_request("hi"));
    request
        .metadata_mut()
        .append("openai-beta", "responses_multi_agent=v1".parse().unwrap());
    request
        .metadata_mut()
        .append("openai-beta", "another_beta=v2".parse().unwrap());
    h.call(request).await.unwrap();
    h.call(text_request("hi")).await.unwrap();
    let requests = h.fake.requests();
    assert_eq!(
        requests[0].header("openai-beta"),
        Some("responses_multi_agent=v1,another_beta=v2")
    );
    assert_eq!(
        requests[1].header("openai-beta"),
        None,
        "only when the caller asks"
    );
}
