//! What operators see: Prometheus metrics after real calls. (The per-RPC log line and trace
//! context: tests/logs.rs.)

mod common;

use common::{Harness, text_request};
use openai_grpc_gateway::fake::{self, Scenario};

/// The value of the first sample line starting with `prefix`.
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no sample {prefix}\n{text}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_show_a_streamed_call_under_the_right_labels() {
    let h = Harness::start_with(|c| c.retry.initial_backoff = std::time::Duration::from_millis(5))
        .await;
    h.fake.push(Scenario::Error {
        status: 503,
        body: fake::error_body("busy", "server_error", None, None),
        headers: vec![],
    });
    let mut stream = h
        .responses()
        .create_response(text_request(
            "Write a 1-sentence welcome message for a new user.",
        ))
        .await
        .unwrap()
        .into_inner();
    while stream.message().await.unwrap().is_some() {}
    let invalid = h
        .responses()
        .create_response(openai_grpc_gateway::pb::CreateResponseRequest::default())
        .await;
    assert!(invalid.is_err());

    let text = h.scrape().await;
    assert_eq!(
        sample(
            &text,
            r#"gateway_rpc_requests_total{method="CreateResponse",code="Ok"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"gateway_rpc_requests_total{method="CreateResponse",code="InvalidArgument"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"gateway_rpc_duration_seconds_count{method="CreateResponse",code="Ok"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"gateway_time_to_first_event_seconds_count{method="CreateResponse"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"gateway_streams_in_flight{method="CreateResponse"}"#
        ),
        0.0
    );
    assert_eq!(
        sample(
            &text,
            r#"gateway_overhead_seconds_count{method="CreateResponse"}"#
        ),
        2.0
    );
    // The fake's usage for this prompt: 20 input tokens, 12 output tokens, none cached.
    let model = "gen_ai_response_model=\"gpt-4.1\"";
    assert_eq!(
        sample(
            &text,
            &format!("gen_ai_client_token_usage_sum{{{model},gen_ai_token_type=\"input\"}}")
        ),
        20.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("gen_ai_client_token_usage_sum{{{model},gen_ai_token_type=\"output\"}}")
        ),
        12.0
    );
    assert_eq!(
        sample(
            &text,
            r#"gateway_upstream_responses_total{profile="default",status="503"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"gateway_upstream_responses_total{profile="default",status="200"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"gateway_upstream_retries_total{profile="default"}"#
        ),
        1.0
    );
    assert!(!text.contains(common::TEST_KEY));
}

#[tokio::test]
async fn in_flight_streams_are_counted_while_open() {
    let h = Harness::start().await;
    h.fake.push(Scenario::stall_after(1));
    let mut stream = h
        .responses()
        .create_response(text_request(
            "Write a 1-sentence welcome message for a new user.",
        ))
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().unwrap();
    let text = h.scrape().await;
    assert_eq!(
        sample(
            &text,
            r#"gateway_streams_in_flight{method="CreateResponse"}"#
        ),
        1.0
    );
    drop(stream);
    h.fake.client_gone(0).await;
}
