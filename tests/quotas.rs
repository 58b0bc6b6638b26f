//! Quotas and key pools on one replica (counted in memory): a caller over its requests, tokens
//! or concurrent streams is refused before any upstream call, with QuotaFailure and RetryInfo;
//! a profile's rate-limited, refused or spent key is set aside and the next healthy key serves.
//! The same with several replicas sharing Redis is `tests/replicas.rs`.

mod common;

use std::time::Duration;

use common::{Harness, drain, reason, text_request, with_metadata};
use openai_grpc_gateway::{
    auth::parse_tokens,
    config::{Profile, limits::Quotas},
    fake::{self, Scenario},
    openai::{ApiKey, KeyOwner},
};
use tonic::{Code, Status};
use tonic_types::StatusExt;

const ALICE: &str = "alice-token-0123456789abcdef";
const BOB: &str = "bob-token-0123456789abcdefgh";

async fn with_limits(limits: &str) -> Harness {
    let limits = Quotas::parse(limits, "test").unwrap();
    Harness::start_with(move |c| {
        c.auth.tokens = parse_tokens(&format!("alice={ALICE},bob={BOB}"), "test").unwrap();
        c.quotas = Some(limits);
    })
    .await
}

/// One non-streamed call by `token`: `Ok` or the refusal.
async fn call(h: &Harness, token: &str) -> Result<(), Status> {
    let request = with_metadata(
        openai_grpc_gateway::pb::CreateResponseRequest {
            stream: Some(false),
            ..text_request("hi")
        },
        &[("authorization", &format!("Bearer {token}"))],
    );
    let (_, end) = h.call(request).await?;
    end.map_or(Ok(()), Err)
}

fn quota_violation(status: &Status) -> (String, String) {
    let details = status.get_error_details();
    let violation = details.quota_failure().expect("QuotaFailure").violations[0].clone();
    (violation.subject, violation.description)
}

#[tokio::test]
async fn a_caller_over_its_requests_per_minute_is_refused_before_any_upstream_call() {
    let h = with_limits(r#"{"default":{"requests_per_minute":3}}"#).await;
    for _ in 0..3 {
        call(&h, ALICE).await.unwrap();
    }
    let asked = h.fake.requests().len();
    let refused = call(&h, ALICE).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert_eq!(reason(&refused), "QUOTA_EXCEEDED");
    assert_eq!(
        quota_violation(&refused),
        ("caller:alice".into(), "requests_per_minute: 3".into())
    );
    let retry = refused
        .get_error_details()
        .retry_info()
        .unwrap()
        .retry_delay
        .unwrap();
    assert!(
        retry > Duration::from_secs(15) && retry <= Duration::from_secs(20),
        "{retry:?}"
    );
    assert_eq!(h.fake.requests().len(), asked, "no upstream call");
    call(&h, BOB)
        .await
        .expect("another caller has its own allowance");
    let metrics = h.scrape().await;
    assert!(
        metrics.contains(
            r#"gateway_quota_refusals_total{subject="caller:alice",limit="requests_per_minute"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"gateway_quota_usage{subject="caller:bob",limit="requests_per_minute"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn without_caller_auth_the_caller_is_anonymous() {
    let limits = Quotas::parse(
        r#"{"callers":{"anonymous":{"requests_per_minute":1}}}"#,
        "t",
    )
    .unwrap();
    let h = Harness::start_with(move |c| c.quotas = Some(limits)).await;
    h.call(text_request("one")).await.unwrap();
    let refused = h.call(text_request("two")).await.unwrap_err();
    assert_eq!(quota_violation(&refused).0, "caller:anonymous");
}

#[tokio::test]
async fn a_profile_limit_is_shared_by_its_callers() {
    let h = with_limits(r#"{"profiles":{"default":{"requests_per_minute":2}}}"#).await;
    call(&h, ALICE).await.unwrap();
    call(&h, BOB).await.unwrap();
    let refused = call(&h, ALICE).await.unwrap_err();
    assert_eq!(quota_violation(&refused).0, "profile:default");
}

#[tokio::test]
async fn tokens_are_counted_from_usage_failed_responses_included() {
    // What one call to "hi" uses, measured (the fake is deterministic for one input), and what
    // the fake's failed run reports (12): a limit between the two sums admits the first call
    // and the failed run (tokens are charged after the fact) and refuses the next one only
    // because the failed run's usage counts.
    let probe = Harness::start().await;
    let (messages, _) = probe
        .call(openai_grpc_gateway::pb::CreateResponseRequest {
            stream: Some(false),
            ..text_request("hi")
        })
        .await
        .unwrap();
    let Some(openai_grpc_gateway::pb::create_response_response::Event::Completed(done)) =
        &messages[0].event
    else {
        panic!("{messages:?}")
    };
    let used = done
        .response
        .as_ref()
        .unwrap()
        .usage
        .as_ref()
        .unwrap()
        .total_tokens
        .unwrap();
    let limit = used + 6;
    let h = with_limits(&format!(r#"{{"default":{{"tokens_per_minute":{limit}}}}}"#)).await;
    call(&h, ALICE).await.unwrap();
    h.fake
        .push(Scenario::events(fake::failed_events("gpt-4.1")));
    let streamed = with_metadata(
        text_request("this run fails"),
        &[("authorization", &format!("Bearer {ALICE}"))],
    );
    let (_, end) = h.call(streamed).await.unwrap();
    assert_eq!(reason(&end.unwrap()), "UPSTREAM_RESPONSE_FAILED");
    let refused = call(&h, ALICE).await.unwrap_err();
    assert_eq!(reason(&refused), "QUOTA_EXCEEDED");
    assert_eq!(
        quota_violation(&refused).1,
        format!("tokens_per_minute: {limit}")
    );
    call(&h, BOB).await.expect("bob's tokens are his own");
}

#[tokio::test]
async fn a_cancelled_response_is_charged_the_tokens_its_cancel_reports() {
    // A background job cancelled mid-run has spent tokens. The fake's own cancel reports no
    // usage (src/fake/store.rs, `response_at`), so this cancel gets the answer OpenAI gives
    // when it does report them: the Response, `cancelled`, with its usage (80 + 40 tokens,
    // over a limit of 100). Only that charge can put alice in debt: her other call reports no
    // usage yet (a queued background job).
    let h = with_limits(r#"{"default":{"tokens_per_minute":100}}"#).await;
    h.fake
        .set_background_pacing(Duration::from_secs(60), Duration::from_secs(1));
    let auth = [("authorization", format!("Bearer {ALICE}"))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (messages, end) = h
        .call(with_metadata(
            openai_grpc_gateway::pb::CreateResponseRequest {
                background: Some(true),
                stream: Some(false),
                ..text_request("a long job")
            },
            &auth,
        ))
        .await
        .unwrap();
    assert!(end.is_none(), "{end:?}");
    let Some(openai_grpc_gateway::pb::create_response_response::Event::Queued(queued)) =
        &messages[0].event
    else {
        panic!("{messages:?}")
    };
    let id = queued.response.as_ref().unwrap().id.clone().unwrap();
    let answer = serde_json::json!({
        "id": id,
        "object": "response",
        "created_at": 1_700_000_000,
        "status": "cancelled",
        "model": "gpt-4.1",
        "output": [],
        "usage": {
            "input_tokens": 80,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 40,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 120,
        },
    });
    h.fake.push(Scenario::Body {
        status: 200,
        content_type: "application/json".into(),
        chunks: vec![answer.to_string().into()],
        delay: None,
        headers: vec![],
    });
    let cancelled = h
        .responses()
        .cancel_response(with_metadata(
            openai_grpc_gateway::pb::CancelResponseRequest {
                response_id: id.clone(),
            },
            &auth,
        ))
        .await
        .unwrap()
        .into_inner()
        .response
        .unwrap();
    assert_eq!(cancelled.status.as_deref(), Some("cancelled"));
    let sent = h.fake.requests().last().unwrap().clone();
    assert_eq!(sent.path, format!("/v1/responses/{id}/cancel"));
    let metrics = h.scrape().await;
    assert!(
        metrics.contains(
            r#"gateway_quota_usage{subject="caller:alice",limit="tokens_per_minute"} 120"#
        ),
        "{metrics}"
    );
    let refused = call(&h, ALICE).await.unwrap_err();
    assert_eq!(reason(&refused), "QUOTA_EXCEEDED");
    assert_eq!(
        quota_violation(&refused),
        ("caller:alice".into(), "tokens_per_minute: 100".into())
    );
    call(&h, BOB).await.expect("bob's tokens are his own");
}

#[tokio::test]
async fn concurrent_streams_are_leased_for_the_life_of_a_stream() {
    let h = with_limits(r#"{"default":{"concurrent_streams":1}}"#).await;
    h.fake.push(Scenario::slow(Duration::from_millis(200)));
    let auth = [("authorization", format!("Bearer {ALICE}"))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut first = h
        .responses()
        .create_response(with_metadata(text_request("slow"), &auth))
        .await
        .unwrap()
        .into_inner();
    first.message().await.unwrap().unwrap();
    let refused = h
        .responses()
        .create_response(with_metadata(text_request("second"), &auth))
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "QUOTA_EXCEEDED");
    assert_eq!(quota_violation(&refused).1, "concurrent_streams: 1");
    // A unary call does not take a stream.
    openai_grpc_gateway::pb::responses_service_client::ResponsesServiceClient::new(h.channel())
        .get_response(with_metadata(
            openai_grpc_gateway::pb::GetResponseRequest {
                response_id: "resp_x".into(),
                ..Default::default()
            },
            &auth,
        ))
        .await
        .unwrap_err();
    drain(first).await;
    let again = h
        .responses()
        .create_response(with_metadata(text_request("third"), &auth))
        .await
        .unwrap()
        .into_inner();
    assert!(
        drain(again).await.1.is_none(),
        "the lease came back when the stream ended"
    );
}

/// A gateway whose default profile holds three keys.
async fn pooled() -> Harness {
    Harness::start_with(|c| {
        let mut upstream = c.upstream.clone();
        upstream.api_key = Some(ApiKey::new("sk-pool-key-one-0000").unwrap());
        upstream.extra_keys = ["sk-pool-key-two-0000", "sk-pool-key-three-00"]
            .map(|k| ApiKey::new(k).unwrap())
            .to_vec();
        upstream.key_owner = KeyOwner::Profile("pool".into());
        c.profiles.default = "pool".into();
        c.profiles.named.insert(
            "pool".into(),
            Profile {
                upstream,
                callers: None,
            },
        );
    })
    .await
}

fn keys_seen(h: &Harness) -> Vec<String> {
    h.fake
        .requests()
        .iter()
        .map(|r| {
            r.header("authorization")
                .unwrap_or("")
                .trim_start_matches("Bearer ")
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_rate_limited_key_cools_down_and_the_next_key_serves_the_call() {
    let h = pooled().await;
    h.fake
        .refuse_key("sk-pool-key-one-0000", Scenario::rate_limited(30));
    for _ in 0..4 {
        let (_, end) = h.call(text_request("hi")).await.unwrap();
        assert!(end.is_none(), "{end:?}");
    }
    let seen = keys_seen(&h);
    assert_eq!(
        seen.iter().filter(|k| *k == "sk-pool-key-one-0000").count(),
        1,
        "{seen:?}"
    );
    assert_eq!(
        seen.len(),
        5,
        "one refusal, then four calls on healthy keys"
    );
    let metrics = h.scrape().await;
    assert!(
        metrics.contains("gateway_key_cooldowns_total{key=\"pool#0:"),
        "{metrics}"
    );
    assert!(metrics.contains("reason=\"rate_limited\"} 1"), "{metrics}");
    assert!(!metrics.contains("sk-pool"), "no key in the metrics");
}

#[tokio::test]
async fn refused_and_spent_keys_are_set_aside() {
    let h = pooled().await;
    h.fake.refuse_key(
        "sk-pool-key-one-0000",
        Scenario::error(
            401,
            fake::error_body(
                "Incorrect API key provided",
                "invalid_request_error",
                None,
                Some("invalid_api_key"),
            ),
        ),
    );
    h.fake.refuse_key(
        "sk-pool-key-two-0000",
        Scenario::error(
            429,
            fake::error_body(
                "You exceeded your current quota",
                "insufficient_quota",
                None,
                Some("insufficient_quota"),
            ),
        ),
    );
    for _ in 0..3 {
        let (_, end) = h.call(text_request("hi")).await.unwrap();
        assert!(end.is_none(), "{end:?}");
    }
    let seen = keys_seen(&h);
    assert!(
        seen[seen.len() - 3..]
            .iter()
            .all(|k| k == "sk-pool-key-three-00"),
        "{seen:?}"
    );
    let metrics = h.scrape().await;
    assert!(
        metrics.contains("reason=\"refused\"} 1") && metrics.contains("reason=\"out_of_quota\"} 1"),
        "{metrics}"
    );
}
