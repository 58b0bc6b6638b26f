//! End-to-end tests of SpeechService: a generated gRPC client with default limits (4 MiB receive)
//! -> the gateway -> the fake OpenAI, all on loopback.
//!
//! Every restriction of the README's "Speech rules" (OpenAI's `CreateSpeechRequest`) has a test
//! that fails if the rule is removed: INVALID_ARGUMENT, a BadRequest violation naming the field,
//! and no upstream request.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Harness, drain, struct_of};
use openai_grpc_gateway::{
    fake::{self, Ending, Framing, Scenario},
    pb::{
        CreateSpeechRequest, CreateSpeechResponse, SpeechDone, SpeechStart,
        create_speech_response::Event, speech_service_client::SpeechServiceClient,
    },
};
use prost::Message as _;
use serde_json::json;
use tonic::{Code, transport::Channel};
use tonic_types::StatusExt;

const DEFAULT_LIMIT: usize = 4 * 1024 * 1024;
const ONE_MIB: usize = 1024 * 1024;

fn client(h: &Harness) -> SpeechServiceClient<Channel> {
    // Default limits on purpose: a 4 MiB receive limit.
    SpeechServiceClient::new(h.channel())
}

fn req(model: &str) -> CreateSpeechRequest {
    CreateSpeechRequest {
        input: "Welcome to our app!".into(),
        model: model.into(),
        voice: "alloy".into(),
        ..Default::default()
    }
}

/// A finished stream, checked: `start` first, contiguous audio offsets, `done` last, every
/// message under 1 MiB.
struct Clip {
    start: SpeechStart,
    audio: Vec<u8>,
    done: Option<SpeechDone>,
    chunks: usize,
    largest: usize,
}

fn clip(messages: &[CreateSpeechResponse]) -> Clip {
    let mut start = None;
    let mut audio = Vec::new();
    let mut done = None;
    let mut chunks = 0;
    let mut largest = 0;
    for (i, m) in messages.iter().enumerate() {
        let len = m.encoded_len();
        largest = largest.max(len);
        assert!(len < DEFAULT_LIMIT, "message {i}: {len} bytes");
        assert!(len <= ONE_MIB, "message {i}: {len} bytes, over 1 MiB");
        assert!(done.is_none(), "a message after done");
        match m.event.as_ref().expect("an event") {
            Event::Start(s) => {
                assert_eq!(i, 0, "start comes first");
                start = Some(s.clone());
            }
            Event::Audio(a) => {
                assert!(start.is_some(), "audio before start");
                assert_eq!(a.offset as usize, audio.len(), "chunk {i} offset");
                assert!(!a.data.is_empty());
                audio.extend_from_slice(&a.data);
                chunks += 1;
            }
            Event::Done(d) => {
                assert_eq!(d.total_bytes as usize, audio.len());
                done = Some(*d);
            }
            Event::Unknown(_) | Event::Keepalive(_) => {}
        }
    }
    Clip {
        start: start.expect("a start message"),
        audio,
        done,
        chunks,
        largest,
    }
}

async fn speak(h: &Harness, request: CreateSpeechRequest) -> Clip {
    let stream = client(h)
        .create_speech(request)
        .await
        .unwrap_or_else(|s| panic!("call failed: {s:?}"))
        .into_inner();
    let (messages, end) = drain(stream).await;
    assert!(end.is_none(), "stream ended with {end:?}");
    let c = clip(&messages);
    assert!(c.done.is_some(), "no done message");
    c
}

async fn rejected(h: &Harness, request: CreateSpeechRequest, field: &str) {
    let what = format!("{:?}", {
        let mut r = request.clone();
        r.input.truncate(40);
        r
    });
    let status = match client(h).create_speech(request).await {
        Err(status) => status,
        Ok(_) => panic!("accepted, expected a violation of {field}: {what}"),
    };
    assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    let fields: Vec<String> = status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default();
    assert!(
        fields.iter().any(|f| f == field),
        "{what}: expected {field}, got {fields:?}"
    );
    assert!(
        h.fake.requests().is_empty(),
        "{what}: the fake received a request"
    );
}

/// Checks a canonical 44-byte-header WAV (what the fake sends) and returns its sample rate.
fn wav_rate(wav: &[u8]) -> u32 {
    assert_eq!(&wav[0..4], b"RIFF");
    assert_eq!(&wav[8..16], b"WAVEfmt ");
    assert_eq!(
        u32::from_le_bytes(wav[4..8].try_into().unwrap()) as usize,
        wav.len() - 8
    );
    assert_eq!(
        u32::from_le_bytes(wav[40..44].try_into().unwrap()) as usize,
        wav.len() - 44
    );
    u32::from_le_bytes(wav[24..28].try_into().unwrap())
}

// ---------------------------------------------------------------------------------------------
// One test per restriction row
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn input_is_required_and_at_most_4096_characters() {
    let h = Harness::start().await;
    for input in [String::new(), "  ".into(), "a".repeat(4097)] {
        let r = CreateSpeechRequest {
            input,
            ..req("tts-1")
        };
        rejected(&h, r, "input").await;
    }
    // 4,096 characters (of three bytes each) are fine.
    let r = CreateSpeechRequest {
        input: "語".repeat(4096),
        ..req("tts-1")
    };
    speak(&h, r).await;
}

#[tokio::test]
async fn model_is_required() {
    let h = Harness::start().await;
    rejected(&h, req(""), "model").await;
}

#[tokio::test]
async fn voice_is_required() {
    let h = Harness::start().await;
    let r = CreateSpeechRequest {
        voice: String::new(),
        ..req("tts-1")
    };
    rejected(&h, r, "voice").await;
}

#[tokio::test]
async fn response_format_is_one_of_six() {
    let h = Harness::start().await;
    for format in ["ogg", "MP3", ""] {
        let r = CreateSpeechRequest {
            response_format: Some(format.into()),
            ..req("tts-1")
        };
        rejected(&h, r, "response_format").await;
    }
    for (format, content_type) in [
        ("mp3", "audio/mpeg"),
        ("opus", "audio/opus"),
        ("aac", "audio/aac"),
        ("flac", "audio/flac"),
        ("wav", "audio/wav"),
        ("pcm", "audio/pcm"),
    ] {
        let r = CreateSpeechRequest {
            response_format: Some(format.into()),
            ..req("tts-1")
        };
        let c = speak(&h, r).await;
        assert_eq!(c.start.response_format, format);
        assert_eq!(c.start.content_type, content_type);
    }
}

#[tokio::test]
async fn speed_is_0_25_to_4() {
    let h = Harness::start().await;
    for speed in [0.2, 4.01, -1.0, f64::NAN] {
        let r = CreateSpeechRequest {
            speed: Some(speed),
            ..req("tts-1")
        };
        rejected(&h, r, "speed").await;
    }
    for speed in [0.25, 4.0] {
        let r = CreateSpeechRequest {
            speed: Some(speed),
            ..req("tts-1")
        };
        speak(&h, r).await;
    }
    assert_eq!(h.fake.requests()[1].json.as_ref().unwrap()["speed"], 4.0);
}

#[tokio::test]
async fn instructions_are_rejected_for_tts_1_and_tts_1_hd() {
    let h = Harness::start().await;
    for model in ["tts-1", "tts-1-hd"] {
        let r = CreateSpeechRequest {
            instructions: Some("Speak cheerfully.".into()),
            ..req(model)
        };
        rejected(&h, r, "instructions").await;
    }
    let r = CreateSpeechRequest {
        instructions: Some("a".repeat(4097)),
        ..req("gpt-4o-mini-tts")
    };
    rejected(&h, r, "instructions").await;
    let r = CreateSpeechRequest {
        instructions: Some("Speak cheerfully.".into()),
        ..req("gpt-4o-mini-tts")
    };
    speak(&h, r).await;
    let body = h.fake.requests()[0].json.clone().unwrap();
    assert_eq!(body["instructions"], "Speak cheerfully.");
}

// ---------------------------------------------------------------------------------------------
// Streaming behaviour
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn twenty_mib_of_audio_reach_a_default_client_unchanged() {
    let h = Harness::start().await;
    // 20 MiB in uneven pieces, some far larger than a gRPC message may be.
    let total = 20 * ONE_MIB;
    let audio: Vec<u8> = (0..total).map(|i| (i * 31 % 251) as u8).collect();
    let audio = Bytes::from(audio);
    let sizes = [5 * ONE_MIB, 17, ONE_MIB, 3 * ONE_MIB + 3, 64 * 1024];
    let mut chunks = Vec::new();
    let mut at = 0;
    for size in sizes.iter().cycle() {
        if at == total {
            break;
        }
        let end = (at + size).min(total);
        chunks.push(audio.slice(at..end));
        at = end;
    }
    h.fake.push(Scenario::Body {
        status: 200,
        content_type: "audio/wav".into(),
        chunks,
        delay: None,
        headers: Vec::new(),
    });
    let r = CreateSpeechRequest {
        response_format: Some("wav".into()),
        ..req("tts-1")
    };
    let c = speak(&h, r).await;
    assert_eq!(c.audio.len(), total);
    assert!(c.audio == audio, "audio bytes differ");
    assert_eq!(c.start.stream_format, "audio");
    assert_eq!(c.start.content_type, "audio/wav");
    assert!(c.done.unwrap().usage.is_none());
    println!(
        "20 MiB raw audio: {} chunks, largest message {} bytes",
        c.chunks, c.largest
    );
}

#[tokio::test]
async fn the_upstream_content_type_passes_through() {
    let h = Harness::start().await;
    h.fake.push(Scenario::Body {
        status: 200,
        content_type: "audio/ogg; codecs=opus".into(),
        chunks: vec![Bytes::from_static(b"OggS fake opus bytes")],
        delay: None,
        headers: Vec::new(),
    });
    let r = CreateSpeechRequest {
        response_format: Some("opus".into()),
        ..req("tts-1-hd")
    };
    let c = speak(&h, r).await;
    assert_eq!(c.start.content_type, "audio/ogg; codecs=opus");
    assert_eq!(c.start.response_format, "opus");
    assert_eq!(c.audio, b"OggS fake opus bytes");
    // Default format: mp3, as the fake labels it.
    let c = speak(&h, req("tts-1")).await;
    assert_eq!(c.start.response_format, "mp3");
    assert_eq!(c.start.content_type, "audio/mpeg");
    let sent = &h.fake.requests()[1];
    assert_eq!(sent.path, "/v1/audio/speech");
    assert_eq!(sent.header("accept"), Some("*/*"));
    assert!(sent.json.as_ref().unwrap().get("stream_format").is_none());
}

#[tokio::test]
async fn the_first_audio_chunk_arrives_before_the_upstream_finishes() {
    let h = Harness::start().await;
    h.fake.push(Scenario::Body {
        status: 200,
        content_type: "audio/mpeg".into(),
        chunks: vec![
            Bytes::from(vec![1u8; 32 * 1024]),
            Bytes::from(vec![2u8; 32 * 1024]),
        ],
        // The second piece comes much later, as with a long synthesis.
        delay: Some(Duration::from_secs(60)),
        headers: Vec::new(),
    });
    let mut stream = client(&h)
        .create_speech(req("tts-1"))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert!(matches!(first.event, Some(Event::Start(_))));
    let second = stream.message().await.unwrap().unwrap();
    let Some(Event::Audio(audio)) = second.event else {
        panic!("expected audio: {second:?}");
    };
    assert_eq!(audio.offset, 0);
    assert!(audio.data.iter().all(|b| *b == 1));
    // The client holds audio while the upstream has not finished sending.
    assert_eq!(h.fake.finished(0), None);
    assert!(h.fake.sent_bytes(0) < 64 * 1024);
    drop(stream);
    tokio::time::timeout(Duration::from_secs(5), h.fake.client_gone(0))
        .await
        .expect("the upstream request is closed after the caller leaves");
}

#[tokio::test]
async fn cancelling_mid_audio_closes_the_upstream_request() {
    let h = Harness::start().await;
    h.fake.push(Scenario::Body {
        status: 200,
        content_type: "audio/mpeg".into(),
        chunks: (0..1000).map(|_| Bytes::from(vec![7u8; 4096])).collect(),
        delay: Some(Duration::from_millis(20)),
        headers: Vec::new(),
    });
    let mut stream = client(&h)
        .create_speech(req("tts-1"))
        .await
        .unwrap()
        .into_inner();
    let mut audio_messages = 0;
    while audio_messages < 3 {
        let m = stream.message().await.unwrap().unwrap();
        if matches!(m.event, Some(Event::Audio(_))) {
            audio_messages += 1;
        }
    }
    drop(stream);
    let gone = tokio::time::timeout(Duration::from_secs(5), h.fake.client_gone(0)).await;
    assert!(gone.is_ok(), "the upstream request stayed open");
    assert_eq!(h.fake.finished(0), Some(false));
    assert!(h.fake.sent_bytes(0) < 1000 * 4096);
}

#[tokio::test]
async fn sse_speech_streams_audio_and_reports_usage() {
    let h = Harness::start().await;
    let r = CreateSpeechRequest {
        input: "a".repeat(400),
        response_format: Some("wav".into()),
        voice: "coral".into(),
        ..req("gpt-4o-mini-tts")
    };
    let c = speak(&h, r).await;
    assert_eq!(c.start.stream_format, "sse");
    assert_eq!(c.start.content_type, "audio/wav");
    assert_eq!(wav_rate(&c.audio), 24_000);
    assert!(c.chunks > 1, "several deltas");
    let usage = c.done.unwrap().usage.expect("usage from speech.audio.done");
    assert!(usage.input_tokens > 0 && usage.output_tokens > 0);
    assert_eq!(usage.total_tokens, usage.input_tokens + usage.output_tokens);
    let sent = &h.fake.requests()[0];
    assert_eq!(sent.header("accept"), Some("text/event-stream"));
    assert_eq!(
        sent.json.clone().unwrap(),
        json!({"model": "gpt-4o-mini-tts", "input": "a".repeat(400), "voice": "coral", "response_format": "wav", "stream_format": "sse"})
    );
}

#[tokio::test]
async fn a_large_sse_delta_is_split_into_small_messages() {
    use base64::Engine as _;
    let h = Harness::start().await;
    let audio: Vec<u8> = (0..5 * ONE_MIB / 2).map(|i| (i % 253) as u8).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&audio);
    h.fake.push(Scenario::events(vec![
        json!({"type": "speech.audio.delta", "audio": b64}),
        json!({"type": "speech.audio.done", "usage": {"input_tokens": 3, "output_tokens": 9, "total_tokens": 12}}),
    ]));
    let c = speak(&h, req("gpt-4o-mini-tts")).await;
    assert!(c.audio == audio);
    assert_eq!(c.chunks, 3, "2.5 MiB in pieces of at most 960 KiB");
    assert_eq!(c.done.unwrap().usage.unwrap().total_tokens, 12);
    println!("2.5 MiB SSE delta: largest message {} bytes", c.largest);
}

#[tokio::test]
async fn a_custom_voice_id_is_sent_as_an_object() {
    let h = Harness::start().await;
    let r = CreateSpeechRequest {
        voice: "voice_1234abcd".into(),
        ..req("gpt-4o-mini-tts")
    };
    speak(&h, r).await;
    let body = h.fake.requests()[0].json.clone().unwrap();
    assert_eq!(body["voice"], json!({"id": "voice_1234abcd"}));
}

#[tokio::test]
async fn a_raw_body_cut_mid_audio_ends_with_unavailable() {
    let h = Harness::start().await;
    h.fake.push(Scenario::Default {
        framing: Framing {
            limit: Some(2),
            ..Framing::default()
        },
        ending: Ending::Drop,
    });
    let r = CreateSpeechRequest {
        input: "a".repeat(1000),
        ..req("tts-1")
    };
    let stream = client(&h).create_speech(r).await.unwrap().into_inner();
    let (messages, end) = drain(stream).await;
    let c = clip(&messages);
    assert!(c.chunks > 0, "audio was forwarded before the cut");
    assert!(c.done.is_none(), "no done after a cut");
    assert_eq!(end.expect("a status").code(), Code::Unavailable);
}

#[tokio::test]
async fn an_sse_stream_without_done_ends_with_unavailable() {
    let h = Harness::start().await;
    h.fake.push(Scenario::events(vec![
        json!({"type": "speech.audio.delta", "audio": "UklGRg=="}),
    ]));
    let stream = client(&h)
        .create_speech(req("gpt-4o-mini-tts"))
        .await
        .unwrap()
        .into_inner();
    let (messages, end) = drain(stream).await;
    assert_eq!(clip(&messages).audio, b"RIFF");
    assert_eq!(end.expect("a status").code(), Code::Unavailable);
}

#[tokio::test]
async fn an_sse_error_event_ends_the_stream_with_its_status() {
    let h = Harness::start().await;
    h.fake.push(Scenario::events(vec![
        json!({"type": "speech.audio.delta", "audio": "UklGRg=="}),
        json!({"type": "speech.future_event", "note": "passed through"}),
        fake::error_event(
            0,
            "tokens",
            "rate_limit_exceeded",
            "Rate limit reached. Please try again in 2s.",
            None,
        ),
    ]));
    let stream = client(&h)
        .create_speech(req("gpt-4o-mini-tts"))
        .await
        .unwrap()
        .into_inner();
    let (messages, end) = drain(stream).await;
    assert!(
        messages.iter().any(
            |m| matches!(&m.event, Some(Event::Unknown(u)) if u.r#type == "speech.future_event")
        )
    );
    let status = end.expect("a status");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.get_error_details().retry_info().is_some());
}

#[tokio::test]
async fn upstream_errors_before_audio_are_trailers_only_statuses() {
    let h = Harness::start_with(|c| c.retry.max_retries = 0).await;
    h.fake.push(Scenario::error(
        401,
        fake::error_body(
            "Incorrect API key provided: sk-abc***wxyz.",
            "invalid_request_error",
            None,
            Some("invalid_api_key"),
        ),
    ));
    let status = client(&h).create_speech(req("tts-1")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = client(&h)
        .create_speech(req("does-not-exist"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

/// The README's recipe: grpcurl, then `jq -r '.audio.data // empty' | base64 -d > speech.wav`.
#[tokio::test]
async fn grpcurl_recipe_saves_a_wav_that_opens() {
    let h = Harness::start().await;
    let recipe = format!(
        "{grpcurl} -plaintext -d '{{\"model\":\"gpt-4o-mini-tts\",\"voice\":\"coral\",\"input\":\"Welcome to our app!\",\"response_format\":\"wav\"}}' {addr} openai_gateway.v1.SpeechService/CreateSpeech | jq -r '.audio.data // empty' | base64 -d > speech.wav && {python} -c 'import wave; w = wave.open(\"speech.wav\"); print(w.getframerate(), w.getnchannels(), w.getnframes())'",
        grpcurl = common::interop_tools().join("venv/bin/grpcurl").display(),
        python = common::interop_tools().join("venv/bin/python").display(),
        addr = h.addr,
    );
    let dir = std::env::temp_dir().join(format!("gw-speech-recipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = tokio::process::Command::new("bash")
        .args(["-o", "pipefail", "-c", &recipe])
        .current_dir(&dir)
        .kill_on_drop(true)
        .output()
        .await
        .expect("the recipe runs");
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fields: Vec<u64> = printed
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    assert_eq!(&fields[..2], &[24_000, 1], "24 kHz mono");
    assert!(
        fields[2] > 12_000,
        "at least half a second of audio: {printed}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn extra_body_is_merged_into_the_upstream_body() {
    let h = Harness::start().await;
    let r = CreateSpeechRequest {
        speed: Some(1.0),
        extra_body: Some(struct_of(json!({"speed": 1.5, "future_option": "x"}))),
        ..req("tts-1")
    };
    speak(&h, r).await;
    let body = h.fake.requests()[0].json.clone().unwrap();
    assert_eq!(
        body,
        json!({"model": "tts-1", "input": "Welcome to our app!", "voice": "alloy", "speed": 1.5, "future_option": "x"})
    );
    // The gateway picks the upstream transport per model.
    let h = Harness::start().await;
    let r = CreateSpeechRequest {
        extra_body: Some(struct_of(json!({"stream_format": "sse"}))),
        ..req("tts-1")
    };
    rejected(&h, r, "extra_body").await;
}

#[tokio::test]
async fn openai_beta_metadata_reaches_the_speech_upstream() {
    let h = Harness::start().await;
    let mut request = tonic::Request::new(req("tts-1"));
    request
        .metadata_mut()
        .insert("openai-beta", "speech_preview=v1".parse().unwrap());
    let stream = client(&h)
        .create_speech(request)
        .await
        .unwrap()
        .into_inner();
    let (_, end) = drain(stream).await;
    assert!(end.is_none(), "{end:?}");
    assert_eq!(
        h.fake.requests()[0].header("openai-beta"),
        Some("speech_preview=v1")
    );
}
