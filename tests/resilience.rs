//! Resilience: retries, deadlines, upstream time limits, heartbeats, load shedding, graceful
//! drain, compression. Gateway and fake on loopback; timings come from the fake's records and
//! `Instant`s, never from sleeps used as synchronisation.

mod common;

use std::time::{Duration, Instant};

use common::{Harness, drain, reason, text_request};
use openai_grpc_gateway::{
    fake::{self, Scenario},
    pb::{
        CreateResponseRequest, CreateResponseResponse, create_response_response::Event,
        responses_service_client::ResponsesServiceClient,
    },
};
use tonic::{Code, Request, codec::CompressionEncoding};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::StatusExt;

fn with_timeout(req: CreateResponseRequest, timeout: Duration) -> Request<CreateResponseRequest> {
    let mut r = Request::new(req);
    r.set_timeout(timeout);
    r
}

fn error(status: u16, kind: &str, code: &str, headers: &[(&str, &str)]) -> Scenario {
    Scenario::Error {
        status,
        body: fake::error_body("upstream says no", kind, None, Some(code)),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn assert_clean_stream(messages: &[CreateResponseResponse]) {
    let seqs: Vec<i32> = messages
        .iter()
        .map(|m| m.sequence_number.unwrap())
        .collect();
    assert_eq!(
        seqs,
        (0..messages.len() as i32).collect::<Vec<_>>(),
        "no duplicated or reordered events"
    );
    assert!(matches!(
        messages.last().unwrap().event,
        Some(Event::Completed(_))
    ));
}

// ---- retries ------------------------------------------------------------------------------

#[tokio::test]
async fn rate_limit_with_retry_after_is_retried_after_the_wait() {
    let h = Harness::start().await;
    h.fake.push(error(
        429,
        "requests",
        "rate_limit_exceeded",
        &[("retry-after", "2")],
    ));
    let (messages, end) = h.call(text_request("hi")).await.unwrap();
    assert!(end.is_none(), "{end:?}");
    assert_clean_stream(&messages);
    let requests = h.fake.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].received_at - requests[0].received_at;
    assert!(waited >= Duration::from_secs(2), "retried after {waited:?}");
    assert!(waited < Duration::from_secs(4), "retried after {waited:?}");
    assert_eq!(requests[0].header("x-stainless-retry-count"), Some("0"));
    assert_eq!(requests[1].header("x-stainless-retry-count"), Some("1"));
    assert_eq!(
        requests[0].body, requests[1].body,
        "the same request is resent"
    );
}

#[tokio::test]
async fn insufficient_quota_is_not_retried() {
    let h = Harness::start().await;
    h.fake
        .push(error(429, "insufficient_quota", "insufficient_quota", &[]));
    let status = h
        .responses()
        .create_response(text_request("hi"))
        .await
        .expect_err("quota");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(reason(&status), "UPSTREAM_QUOTA_EXCEEDED");
    assert_eq!(h.fake.requests().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let h = Harness::start_with(|c| c.retry.initial_backoff = Duration::from_millis(10)).await;
    h.fake.push(error(500, "server_error", "server_error", &[]));
    h.fake.push(error(500, "server_error", "server_error", &[]));
    let (messages, end) = h.call(text_request("hi")).await.unwrap();
    assert!(end.is_none(), "{end:?}");
    assert_clean_stream(&messages);
    assert_eq!(h.fake.requests().len(), 3);
}

#[tokio::test]
async fn retries_run_out_with_the_last_error() {
    let h = Harness::start_with(|c| c.retry.initial_backoff = Duration::from_millis(10)).await;
    for _ in 0..3 {
        h.fake.push(error(503, "server_error", "server_error", &[]));
    }
    let status = h
        .responses()
        .create_response(text_request("hi"))
        .await
        .expect_err("503s");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(h.fake.requests().len(), 3, "first attempt + 2 retries");
}

#[tokio::test]
async fn a_failure_after_the_first_event_is_not_retried() {
    let h = Harness::start().await;
    h.fake.push(Scenario::drop_after(3));
    let (messages, end) = h.call(text_request("hi")).await.unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(end.unwrap().code(), Code::Unavailable);
    assert_eq!(h.fake.requests().len(), 1);
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_fails_at_once() {
    let h = Harness::start().await;
    h.fake.push(error(
        429,
        "requests",
        "rate_limit_exceeded",
        &[("retry-after", "30")],
    ));
    let started = Instant::now();
    let status = h
        .responses()
        .create_response(with_timeout(text_request("hi"), Duration::from_secs(5)))
        .await
        .expect_err("not waited for");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(
        status.get_error_details().retry_info().unwrap().retry_delay,
        Some(Duration::from_secs(30))
    );
    assert_eq!(h.fake.requests().len(), 1);
}

// ---- deadlines and upstream time limits -----------------------------------------------------

#[tokio::test]
async fn a_deadline_on_a_slow_stream_is_deadline_exceeded_and_closes_the_upstream() {
    let h = Harness::start().await;
    h.fake.push(Scenario::slow(Duration::from_millis(100)));
    let started = Instant::now();
    let stream = h
        .responses()
        .create_response(with_timeout(text_request("hi"), Duration::from_millis(300)))
        .await
        .unwrap()
        .into_inner();
    let (messages, end) = drain(stream).await;
    let elapsed = started.elapsed();
    let status = end.expect("ends with a status");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(reason(&status), "DEADLINE_EXCEEDED");
    assert!(
        !messages.is_empty() && elapsed < Duration::from_millis(600),
        "{} events in {elapsed:?}",
        messages.len()
    );
    tokio::time::timeout(Duration::from_secs(5), h.fake.client_gone(0))
        .await
        .expect("upstream closed");
    assert_eq!(h.fake.finished(0), Some(false));
}

#[tokio::test]
async fn a_deadline_before_the_body_is_deadline_exceeded_not_cancelled() {
    let h = Harness::start().await;
    // stream=false: the gateway waits for the whole body inside the handler, where tonic's own
    // grpc-timeout handling would answer CANCELLED.
    h.fake.push(Scenario::stall_after(0));
    let mut req = text_request("hi");
    req.stream = Some(false);
    // tonic's Channel would time out locally and report CANCELLED itself; this client sends
    // grpc-timeout but leaves the deadline to the server, so the test sees the gateway's answer.
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<tonic::body::Body>();
    let mut client = ResponsesServiceClient::with_origin(http, h.endpoint().parse().unwrap());
    let mut request = Request::new(req);
    request
        .metadata_mut()
        .insert("grpc-timeout", "300m".parse().unwrap());
    let status = client.create_response(request).await.expect_err("deadline");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    tokio::time::timeout(Duration::from_secs(5), h.fake.client_gone(0))
        .await
        .expect("upstream closed");
}

#[tokio::test]
async fn a_stall_trips_the_idle_timeout() {
    let h = Harness::start_with(|c| c.timeouts.idle = Some(Duration::from_millis(300))).await;
    h.fake.push(Scenario::stall_after(3));
    let (messages, end) = h.call(text_request("hi")).await.unwrap();
    assert_eq!(messages.len(), 3);
    let status = end.expect("timed out");
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert_eq!(reason(&status), "UPSTREAM_TIMEOUT");
    assert!(
        status.message().contains("idle timeout"),
        "{}",
        status.message()
    );
    tokio::time::timeout(Duration::from_secs(5), h.fake.client_gone(0))
        .await
        .expect("upstream closed");
}

#[tokio::test]
async fn no_first_event_trips_the_first_event_timeout() {
    let h =
        Harness::start_with(|c| c.timeouts.first_event = Some(Duration::from_millis(300))).await;
    h.fake.push(Scenario::stall_after(0));
    let (messages, end) = h.call(text_request("hi")).await.unwrap();
    assert!(messages.is_empty());
    let status = end.expect("timed out");
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert!(
        status.message().contains("first-event timeout"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn the_total_timeout_bounds_a_stream_that_keeps_talking() {
    let h = Harness::start_with(|c| c.timeouts.total = Some(Duration::from_millis(300))).await;
    h.fake.push(Scenario::slow(Duration::from_millis(50)));
    let text = "word ".repeat(100);
    let (_, end) = h.call(text_request(&text)).await.unwrap();
    let status = end.expect("timed out");
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert!(
        status.message().contains("total timeout"),
        "{}",
        status.message()
    );
}

// ---- heartbeats ---------------------------------------------------------------------------------

#[tokio::test]
async fn heartbeats_arrive_during_a_long_silence() {
    let h = Harness::start_with(|c| c.heartbeat = Some(Duration::from_millis(100))).await;
    h.fake.push(Scenario::stall_after(2));
    let mut stream = h
        .responses()
        .create_response(text_request("hi"))
        .await
        .unwrap()
        .into_inner();
    let mut keepalives = 0;
    let mut real = 0;
    let started = Instant::now();
    while keepalives < 3 {
        let m = stream
            .message()
            .await
            .unwrap()
            .expect("the stream stays open");
        match (&m.event, m.sequence_number) {
            (Some(Event::Keepalive(_)), None) => keepalives += 1,
            (_, Some(_)) => real += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(real, 2);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

// ---- load shedding --------------------------------------------------------------------------------

/// A gateway that admits one call in flight, and that call: a stream that has sent its first
/// event and then stalls.
async fn full_gateway() -> (
    Harness,
    tonic::Streaming<openai_grpc_gateway::pb::CreateResponseResponse>,
) {
    let h = Harness::start_with(|c| c.limits.max_in_flight = 1).await;
    h.fake.push(Scenario::stall_after(1));
    let mut held = h
        .responses()
        .create_response(text_request("hi"))
        .await
        .unwrap()
        .into_inner();
    held.message().await.unwrap().unwrap();
    (h, held)
}

#[tokio::test]
async fn beyond_the_in_flight_cap_calls_are_refused_at_once() {
    let (h, held) = full_gateway().await;
    let started = Instant::now();
    let status = h
        .responses()
        .create_response(text_request("hi"))
        .await
        .expect_err("shed");
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(reason(&status), "OVERLOADED");
    assert!(status.get_error_details().retry_info().is_some());
    assert_eq!(
        h.fake.requests().len(),
        1,
        "the refused call never went upstream"
    );
    // Freed when the held stream ends.
    drop(held);
    h.fake.client_gone(0).await;
    let stream = h
        .responses()
        .create_response(text_request("hi"))
        .await
        .expect("admitted again");
    assert!(drain(stream.into_inner()).await.1.is_none());
}

#[tokio::test]
async fn a_malformed_request_lists_its_errors_even_when_the_gateway_is_full() {
    // Validation comes before load shedding: a caller fixing its request is told what is wrong,
    // not to retry later.
    let (h, held) = full_gateway().await;
    let mut bad = text_request("hi");
    bad.temperature = Some(3.0);
    let status = h
        .responses()
        .create_response(bad)
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = status
        .get_error_details()
        .bad_request()
        .expect("BadRequest details")
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(fields, ["temperature"]);
    // A valid request at the same moment is shed.
    let status = h
        .responses()
        .create_response(text_request("hi"))
        .await
        .expect_err("shed");
    assert_eq!(status.code(), Code::ResourceExhausted);
    drop(held);
}

#[tokio::test]
async fn beyond_the_per_connection_cap_calls_are_refused() {
    let h = Harness::start_with(|c| c.limits.max_streams_per_connection = 1).await;
    h.fake.push(Scenario::stall_after(1));
    let mut client = h.responses();
    let mut held = client
        .create_response(text_request("hi"))
        .await
        .unwrap()
        .into_inner();
    held.message().await.unwrap().unwrap();
    let status = client
        .create_response(text_request("hi"))
        .await
        .expect_err("same connection");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(reason(&status), "TOO_MANY_STREAMS_ON_CONNECTION");
    // Another connection is fine.
    let other = h
        .responses()
        .create_response(text_request("hi"))
        .await
        .expect("other connection");
    assert!(drain(other.into_inner()).await.1.is_none());
}

// ---- graceful drain ---------------------------------------------------------------------------------

#[tokio::test]
async fn drain_turns_health_off_keeps_serving_then_ends_what_is_left() {
    let mut h = Harness::start_with(|c| {
        c.drain.delay = Duration::from_millis(300);
        c.drain.timeout = Duration::from_millis(300);
    })
    .await;
    let mut health = HealthClient::new(h.channel());
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "openai_gateway.v1.ResponsesService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );

    h.fake.push(Scenario::stall_after(2));
    let mut live = h
        .responses()
        .create_response(text_request("hi"))
        .await
        .unwrap()
        .into_inner();
    live.message().await.unwrap().unwrap();

    h.begin_shutdown();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::NotServing
    );
    // Still serving during the drain delay.
    let during = h
        .responses()
        .create_response(text_request("hi"))
        .await
        .expect("served while draining");
    assert!(drain(during.into_inner()).await.1.is_none());

    // The stalled stream outlives the drain timeout: it ends with UNAVAILABLE, never silently.
    let (_, end) = drain(live).await;
    let status = end.expect("ended by the drain");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason(&status), "SHUTTING_DOWN");
    assert!(status.message().contains("server shutting down"));
    tokio::time::timeout(Duration::from_secs(5), h.fake.client_gone(0))
        .await
        .expect("upstream closed");
    tokio::time::timeout(Duration::from_secs(5), h.stop())
        .await
        .expect("the server returns after the drain");
}

#[tokio::test]
async fn a_stream_that_finishes_within_the_drain_timeout_completes() {
    let mut h = Harness::start_with(|c| c.drain.timeout = Duration::from_secs(5)).await;
    h.fake.push(Scenario::slow(Duration::from_millis(30)));
    let mut stream = h
        .responses()
        .create_response(text_request("hi"))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    h.begin_shutdown();
    let (mut rest, end) = drain(stream).await;
    assert!(end.is_none(), "{end:?}");
    rest.insert(0, first);
    assert_clean_stream(&rest);
    h.stop().await;
}

// ---- HTTP/2 settings and compression ---------------------------------------------------------------

#[tokio::test]
async fn gzip_and_zstd_requests_are_accepted() {
    let h = Harness::start().await;
    for encoding in [CompressionEncoding::Gzip, CompressionEncoding::Zstd] {
        let mut client = h.responses().send_compressed(encoding);
        let stream = client
            .create_response(text_request(&"compress me ".repeat(100)))
            .await
            .expect("accepted");
        assert!(drain(stream.into_inner()).await.1.is_none());
    }
}

#[tokio::test]
async fn oversized_requests_are_refused() {
    let h = Harness::start_with(|c| c.http2.max_request_bytes = 1024).await;
    let status = h
        .responses()
        .create_response(text_request(&"x".repeat(4096)))
        .await
        .expect_err("too big");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(h.fake.requests().is_empty());
}

#[tokio::test]
async fn a_connect_that_hangs_trips_the_connect_timeout() {
    // A listener that never accepts, with its accept queue filled: further connection
    // attempts get no answer, so the gateway's connect hangs (on loopback only).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        if let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_millis(200), s.connect(addr)).await
        {
            fillers.push(stream);
        }
    }
    let h = Harness::start_with(|c| {
        c.upstream =
            openai_grpc_gateway::openai::UpstreamConfig::new(&format!("http://{addr}/v1")).unwrap();
        c.timeouts.connect = Some(Duration::from_millis(300));
        c.retry.max_retries = 0;
    })
    .await;
    let started = Instant::now();
    let status = h
        .responses()
        .create_response(text_request("hi"))
        .await
        .expect_err("no connection");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("connect timeout"),
        "{}",
        status.message()
    );
    drop(listener);
}
