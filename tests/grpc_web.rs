//! gRPC-Web on the gRPC port, seen from the wire: raw HTTP requests (reqwest, no gRPC library)
//! whose frames the tests encode and decode themselves, so what a browser library would get is
//! checked byte for byte: both `application/grpc-web` and `-text`, over HTTP/1.1 and HTTP/2,
//! every service, CORS, the page's routes, and the token check, metrics, limits and drain that
//! apply to native calls.

mod common;

use std::time::Duration;

use base64::Engine as _;
use bytes::{Buf, Bytes, BytesMut};
use common::{Harness, repo_root};
use openai_grpc_gateway::{
    config::{Cors, Drain},
    fake::Scenario,
    pb::{
        CreateImageRequest, CreateImageResponse, CreateResponseRequest, CreateResponseResponse,
        CreateSpeechRequest, CreateSpeechResponse, create_image_response, create_response_response,
        create_speech_response,
    },
};
use prost::Message;
use reqwest::{Client, Version, header::HeaderMap};
use tonic::{Code, Status};
use tonic_types::StatusExt;

const CREATE_RESPONSE: &str = "/openai_gateway.v1.ResponsesService/CreateResponse";
const PLAIN: &str = "application/grpc-web+proto";
const TEXT: &str = "application/grpc-web-text+proto";
/// Long enough for any of these calls on a loaded 2-core machine; never reached when they work.
const LIMIT: Duration = Duration::from_secs(20);

/// One gRPC-Web frame: flag byte (0 = message), big-endian length, payload.
fn frame(message: &impl Message) -> Vec<u8> {
    let payload = message.encode_to_vec();
    let mut out = vec![0u8];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// A gRPC-Web answer, decoded frame by frame as the body arrived.
#[derive(Debug)]
struct WebAnswer {
    version: Version,
    headers: HeaderMap,
    /// Each message frame's payload, with the index of the body chunk that completed it.
    messages: Vec<(Bytes, usize)>,
    /// The final status: from the trailer frame, or from the headers of a Trailers-Only answer.
    status: Status,
}

impl WebAnswer {
    fn decode<M: Message + Default>(&self) -> Vec<M> {
        self.messages
            .iter()
            .map(|(m, _)| M::decode(m.clone()).expect("a valid message"))
            .collect()
    }

    /// How many different body chunks carried the messages: more than one means they were
    /// streamed, not buffered to the end.
    fn chunks(&self) -> usize {
        let mut seen: Vec<usize> = self.messages.iter().map(|(_, c)| *c).collect();
        seen.dedup();
        seen.len()
    }
}

/// POSTs one gRPC-Web request and reads the whole answer. `text` selects
/// `application/grpc-web-text` (base64 both ways).
async fn call(
    client: &Client,
    url: String,
    request: &impl Message,
    text: bool,
    extra: &[(&str, &str)],
) -> WebAnswer {
    let content_type = if text { TEXT } else { PLAIN };
    let body = if text {
        base64::engine::general_purpose::STANDARD
            .encode(frame(request))
            .into_bytes()
    } else {
        frame(request)
    };
    let mut builder = client
        .post(url)
        .header("content-type", content_type)
        .header("accept", content_type)
        .header("x-grpc-web", "1")
        .body(body);
    for (k, v) in extra {
        builder = builder.header(*k, *v);
    }
    let mut response = tokio::time::timeout(LIMIT, builder.send())
        .await
        .expect("answered in time")
        .expect("HTTP works");
    assert_eq!(response.status(), 200, "gRPC-Web answers HTTP 200");
    let version = response.version();
    let headers = response.headers().clone();
    assert_eq!(
        headers["content-type"].to_str().unwrap(),
        content_type,
        "{headers:?}"
    );
    let mut raw = BytesMut::new();
    let mut base64_pending = Vec::new();
    let mut messages = Vec::new();
    let mut trailers = None;
    let mut chunk_index = 0;
    while let Some(chunk) = tokio::time::timeout(LIMIT, response.chunk())
        .await
        .expect("the stream moves")
        .expect("the body reads")
    {
        chunk_index += 1;
        if text {
            // Each frame is base64-encoded on its own, padding included, so 4-character groups
            // decode independently.
            base64_pending.extend_from_slice(&chunk);
            let whole = base64_pending.len() / 4 * 4;
            for quad in base64_pending[..whole].chunks(4) {
                raw.extend_from_slice(
                    &base64::engine::general_purpose::STANDARD
                        .decode(quad)
                        .expect("valid base64"),
                );
            }
            base64_pending.drain(..whole);
        } else {
            raw.extend_from_slice(&chunk);
        }
        while raw.len() >= 5 {
            let len = u32::from_be_bytes(raw[1..5].try_into().unwrap()) as usize;
            if raw.len() < 5 + len {
                break;
            }
            let flag = raw[0];
            raw.advance(5);
            let payload = raw.split_to(len).freeze();
            if flag & 0x80 != 0 {
                trailers = Some(payload);
            } else {
                messages.push((payload, chunk_index));
            }
        }
    }
    assert!(raw.is_empty() && base64_pending.is_empty(), "a cut frame");
    let status_headers = match trailers {
        Some(block) => {
            let mut map = tonic::codegen::http::HeaderMap::new();
            for line in std::str::from_utf8(&block).unwrap().split("\r\n") {
                if let Some((k, v)) = line.split_once(':') {
                    map.insert(
                        tonic::codegen::http::HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
                        v.trim().parse().unwrap(),
                    );
                }
            }
            map
        }
        // Trailers-Only: the status travels in the headers.
        None => headers.clone(),
    };
    let status = Status::from_header_map(&status_headers).expect("a grpc-status");
    WebAnswer {
        version,
        headers,
        messages,
        status,
    }
}

fn http1() -> Client {
    Client::builder().http1_only().build().unwrap()
}

fn url(h: &Harness, path: &str) -> String {
    format!("{}{path}", h.endpoint())
}

fn request(input: &str) -> CreateResponseRequest {
    common::text_request(input)
}

fn reason(status: &Status) -> String {
    common::reason(status)
}

/// The streamed text and the final Response's `output_text`.
fn text_of(events: &[CreateResponseResponse]) -> (String, String) {
    let mut joined = String::new();
    let mut output_text = String::new();
    for e in events {
        match &e.event {
            Some(create_response_response::Event::OutputTextDelta(d)) => {
                joined.push_str(d.delta.as_deref().unwrap_or(""))
            }
            Some(create_response_response::Event::Completed(c)) => {
                output_text = c.response.as_ref().unwrap().output_text.clone()
            }
            _ => {}
        }
    }
    (joined, output_text)
}

#[tokio::test]
async fn http1_grpc_web_streams_typed_events() {
    let h = Harness::start().await;
    h.fake.push(Scenario::slow(Duration::from_millis(20)));
    let answer = call(
        &http1(),
        url(&h, CREATE_RESPONSE),
        &request("Write a 1-sentence welcome message for a new user."),
        false,
        &[],
    )
    .await;
    assert_eq!(answer.version, Version::HTTP_11);
    assert_eq!(answer.status.code(), Code::Ok, "{:?}", answer.status);
    // The upstream's request id comes back as metadata, as for native gRPC.
    assert!(
        answer.headers["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    let events: Vec<CreateResponseResponse> = answer.decode();
    assert!(matches!(
        events[0].event,
        Some(create_response_response::Event::Created(_))
    ));
    assert!(matches!(
        events.last().unwrap().event,
        Some(create_response_response::Event::Completed(_))
    ));
    let (joined, output_text) = text_of(&events);
    assert_eq!(joined, "Welcome aboard - we're glad you're here.");
    assert_eq!(joined, output_text);
    assert!(
        answer.chunks() >= 3,
        "events arrive as they happen, not at the end: {} chunks",
        answer.chunks()
    );
}

#[tokio::test]
async fn grpc_web_text_and_http2_work_too() {
    let h = Harness::start().await;
    // -text over HTTP/1.1 (what grpc-web's text mode sends).
    h.fake.push(Scenario::slow(Duration::from_millis(10)));
    let answer = call(
        &http1(),
        url(&h, CREATE_RESPONSE),
        &request("hi"),
        true,
        &[],
    )
    .await;
    assert_eq!(answer.status.code(), Code::Ok, "{:?}", answer.status);
    let (joined, output_text) = text_of(&answer.decode());
    assert!(!joined.is_empty());
    assert_eq!(joined, output_text);
    assert!(answer.chunks() >= 3, "{} chunks", answer.chunks());

    // Binary gRPC-Web over HTTP/2 (a browser on a TLS port negotiates h2).
    let h2 = Client::builder().http2_prior_knowledge().build().unwrap();
    let answer = call(&h2, url(&h, CREATE_RESPONSE), &request("hi"), false, &[]).await;
    assert_eq!(answer.version, Version::HTTP_2);
    assert_eq!(answer.status.code(), Code::Ok, "{:?}", answer.status);
    let (joined, output_text) = text_of(&answer.decode());
    assert_eq!(joined, output_text);
    assert!(!joined.is_empty());
}

#[tokio::test]
async fn every_service_speaks_grpc_web() {
    let h = Harness::start().await;
    let client = http1();

    let health = call(
        &client,
        url(&h, "/grpc.health.v1.Health/Check"),
        &tonic_health::pb::HealthCheckRequest {
            service: "openai_gateway.v1.SpeechService".into(),
        },
        false,
        &[],
    )
    .await;
    assert_eq!(health.status.code(), Code::Ok);
    let serving: Vec<tonic_health::pb::HealthCheckResponse> = health.decode();
    assert_eq!(
        serving[0].status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let image = call(
        &client,
        url(&h, "/openai_gateway.v1.ImagesService/CreateImage"),
        &CreateImageRequest {
            prompt: "A lighthouse".into(),
            model: Some("gpt-image-1".into()),
            size: Some("1024x1024".into()),
            ..Default::default()
        },
        false,
        &[],
    )
    .await;
    assert_eq!(image.status.code(), Code::Ok, "{:?}", image.status);
    let events: Vec<CreateImageResponse> = image.decode();
    let png: Vec<u8> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(create_image_response::Event::ImageChunk(c)) => Some(c.data.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG arrives");
    assert!(matches!(
        events.last().unwrap().event,
        Some(create_image_response::Event::Result(_))
    ));

    let speech = call(
        &client,
        url(&h, "/openai_gateway.v1.SpeechService/CreateSpeech"),
        &CreateSpeechRequest {
            input: "Welcome".into(),
            model: "gpt-4o-mini-tts".into(),
            voice: "coral".into(),
            response_format: Some("wav".into()),
            ..Default::default()
        },
        false,
        &[],
    )
    .await;
    assert_eq!(speech.status.code(), Code::Ok, "{:?}", speech.status);
    let events: Vec<CreateSpeechResponse> = speech.decode();
    assert!(matches!(
        &events[0].event,
        Some(create_speech_response::Event::Start(s)) if s.content_type == "audio/wav"
    ));
    assert!(
        events
            .iter()
            .any(|e| matches!(e.event, Some(create_speech_response::Event::Audio(_))))
    );

    // Reflection is bidirectional streaming, which gRPC-Web cannot carry in general, but one
    // request followed by the end of the body is served.
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, ServerReflectionResponse, server_reflection_request,
        server_reflection_response,
    };
    let listing = call(
        &client,
        url(
            &h,
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        ),
        &ServerReflectionRequest {
            host: String::new(),
            message_request: Some(server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        },
        false,
        &[],
    )
    .await;
    assert_eq!(listing.status.code(), Code::Ok, "{:?}", listing.status);
    let replies: Vec<ServerReflectionResponse> = listing.decode();
    let Some(server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        &replies[0].message_response
    else {
        panic!("{replies:?}")
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "openai_gateway.v1.ResponsesService")
    );
}

/// An OPTIONS preflight as Chromium sends it before a gRPC-Web call from `origin`.
async fn preflight(h: &Harness, origin: &str) -> reqwest::Response {
    http1()
        .request(reqwest::Method::OPTIONS, url(h, CREATE_RESPONSE))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-grpc-web,x-openai-profile,x-user-agent,grpc-timeout",
        )
        .send()
        .await
        .unwrap()
}

fn header<'a>(r: &'a HeaderMap, name: &str) -> &'a str {
    r.get(name).map_or("", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn cors_lets_named_origins_in_and_no_other() {
    let h = Harness::start_with(|c| {
        c.web.cors = Cors::Origins(vec![
            "http://app.example".into(),
            "https://other.example:8443".into(),
        ])
    })
    .await;
    let allowed = preflight(&h, "http://app.example").await;
    assert!(allowed.status().is_success(), "{allowed:?}");
    let headers = allowed.headers();
    assert_eq!(
        header(headers, "access-control-allow-origin"),
        "http://app.example"
    );
    assert!(header(headers, "access-control-allow-methods").contains("POST"));
    let allow_headers = header(headers, "access-control-allow-headers");
    for name in [
        "authorization",
        "content-type",
        "x-grpc-web",
        "x-openai-profile",
        "x-user-agent",
        "grpc-timeout",
    ] {
        assert!(allow_headers.contains(name), "{name}: {allow_headers}");
    }

    let refused = preflight(&h, "http://evil.example").await;
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "{refused:?}"
    );
    // Nothing looser than the exact origin: another port or scheme is another origin.
    let refused = preflight(&h, "https://other.example").await;
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    // The call itself: its status and metadata headers are readable by the page.
    let answer = call(
        &http1(),
        url(&h, CREATE_RESPONSE),
        &CreateResponseRequest {
            model: "does-not-exist".into(),
            ..request("hi")
        },
        false,
        &[("origin", "http://app.example")],
    )
    .await;
    assert_eq!(answer.status.code(), Code::NotFound);
    assert_eq!(reason(&answer.status), "UPSTREAM_NOT_FOUND");
    assert_eq!(
        header(&answer.headers, "access-control-allow-origin"),
        "http://app.example"
    );
    let exposed = header(&answer.headers, "access-control-expose-headers");
    for name in [
        "grpc-status",
        "grpc-message",
        "grpc-status-details-bin",
        "x-request-id",
        "openai-processing-ms",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
    ] {
        assert!(exposed.contains(name), "{name}: {exposed}");
    }
}

#[tokio::test]
async fn cors_is_off_unless_asked_and_star_only_when_asked() {
    let h = Harness::start().await;
    let off = preflight(&h, "http://app.example").await;
    assert!(off.headers().get("access-control-allow-origin").is_none());
    let answer = call(
        &http1(),
        url(&h, CREATE_RESPONSE),
        &request("hi"),
        false,
        &[("origin", "http://app.example")],
    )
    .await;
    assert_eq!(answer.status.code(), Code::Ok);
    assert!(answer.headers.get("access-control-allow-origin").is_none());

    let any = Harness::start_with(|c| c.web.cors = Cors::AnyOrigin).await;
    let star = preflight(&any, "http://anything.example").await;
    assert_eq!(header(star.headers(), "access-control-allow-origin"), "*");
}

#[tokio::test]
async fn the_page_is_served_at_root_and_off_with_no_web() {
    let h = Harness::start().await;
    let client = http1();
    let page = client.get(h.endpoint()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(header(page.headers(), "content-type").starts_with("text/html"));
    let html = page.text().await.unwrap();
    let committed = std::fs::read_to_string(repo_root().join("web/dist/index.html")).unwrap();
    assert_eq!(html, committed, "the binary serves the committed build");
    let script = client
        .get(url(&h, "/app.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let committed = std::fs::read_to_string(repo_root().join("web/dist/app.js")).unwrap();
    assert!(script == committed, "app.js is the committed build");
    let missing = client.get(url(&h, "/favicon.ico")).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    let off = Harness::start_with(|c| c.web.page = false).await;
    let page = client.get(off.endpoint()).send().await.unwrap();
    assert_eq!(page.status(), 404);
    let script = client.get(url(&off, "/app.js")).send().await.unwrap();
    assert_eq!(script.status(), 404);
    // gRPC-Web and native gRPC are still served.
    let answer = call(
        &client,
        url(&off, CREATE_RESPONSE),
        &request("hi"),
        false,
        &[],
    )
    .await;
    assert_eq!(answer.status.code(), Code::Ok);
    let (messages, end) = off.call(request("hi")).await.expect("native call");
    assert!(end.is_none() && !messages.is_empty());
    // An unknown gRPC method still gets gRPC's UNIMPLEMENTED, not an HTTP error.
    let unknown = Status::from_header_map(&tonic::codegen::http::HeaderMap::from_iter(
        client
            .post(url(&off, "/openai_gateway.v1.NoSuchService/Call"))
            .header("content-type", "application/grpc")
            .send()
            .await
            .unwrap()
            .headers()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    ))
    .expect("a gRPC status");
    assert_eq!(unknown.code(), Code::Unimplemented);
}

#[tokio::test]
async fn grpc_web_calls_pass_the_token_check_and_count_in_metrics() {
    const TOKEN: &str = "browser-token-0123456789";
    let h = Harness::start_with(|c| {
        c.auth.tokens =
            openai_grpc_gateway::auth::parse_tokens(&format!("page={TOKEN}"), "test").unwrap()
    })
    .await;
    let client = http1();
    let refused = call(
        &client,
        url(&h, CREATE_RESPONSE),
        &request("hi"),
        false,
        &[],
    )
    .await;
    assert_eq!(refused.status.code(), Code::Unauthenticated);
    assert_eq!(reason(&refused.status), "CALLER_UNAUTHENTICATED");
    assert!(refused.messages.is_empty(), "Trailers-Only");
    assert!(
        h.fake.requests().is_empty(),
        "refused before any upstream call"
    );

    let bearer = format!("Bearer {TOKEN}");
    let answer = call(
        &client,
        url(&h, CREATE_RESPONSE),
        &request("hi"),
        false,
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(answer.status.code(), Code::Ok, "{:?}", answer.status);
    // The call path counted it like a native call (the refused one never reached it, as
    // for native calls: the token check runs in front of every service).
    let scraped = h.scrape().await;
    let line = r#"gateway_rpc_requests_total{method="CreateResponse",code="Ok"} 1"#;
    assert!(scraped.contains(line), "{line} missing from\n{scraped}");
}

#[tokio::test]
async fn grpc_web_calls_are_load_shed_and_drained() {
    let mut h = Harness::start_with(|c| {
        c.limits.max_in_flight = 1;
        c.drain = Drain {
            delay: Duration::ZERO,
            timeout: Duration::from_millis(300),
        };
    })
    .await;
    h.fake.push(Scenario::stall_after(3));
    let client = http1();
    let live = {
        let client = client.clone();
        let url = url(&h, CREATE_RESPONSE);
        tokio::spawn(async move { call(&client, url, &request("hi"), false, &[]).await })
    };
    h.fake.wait_requests(1).await;
    // The one slot is taken: a second call is shed at once, with RetryInfo.
    let shed = call(
        &client,
        url(&h, CREATE_RESPONSE),
        &request("hi"),
        false,
        &[],
    )
    .await;
    assert_eq!(shed.status.code(), Code::ResourceExhausted);
    assert_eq!(reason(&shed.status), "OVERLOADED");
    assert!(shed.status.get_error_details().retry_info().is_some());

    // A shutdown ends the stalled stream after the drain timeout, with a status in the trailer
    // frame, and closes its upstream request.
    h.begin_shutdown();
    let ended = tokio::time::timeout(LIMIT, live)
        .await
        .expect("drained in time")
        .unwrap();
    assert_eq!(ended.status.code(), Code::Unavailable, "{:?}", ended.status);
    assert_eq!(reason(&ended.status), "SHUTTING_DOWN");
    assert_eq!(ended.messages.len(), 3, "the events before the stall");
    tokio::time::timeout(LIMIT, h.fake.client_gone(0))
        .await
        .expect("upstream closed");
    h.stop().await;
}
