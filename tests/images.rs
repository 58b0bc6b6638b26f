//! End-to-end tests of ImagesService: a generated gRPC client with default limits (4 MiB receive)
//! -> the gateway -> the fake OpenAI, all on loopback.
//!
//! Every restriction of the README's "Image rules" table (OpenAI's per-model
//! `CreateImageRequest` rules) has a test below that fails if the rule is removed: it expects
//! INVALID_ARGUMENT, a BadRequest violation naming the field, and no upstream request.

mod common;

use std::{collections::BTreeMap, time::Duration};

use common::{Harness, drain, struct_of};
use openai_grpc_gateway::{
    fake::{self, Ending, Framing, Scenario, media},
    pb::{
        CreateImageRequest, CreateImageResponse, ImageResult, create_image_response::Event,
        images_service_client::ImagesServiceClient,
    },
};
use prost::Message as _;
use serde_json::json;
use tonic::{Code, transport::Channel};
use tonic_types::StatusExt;

/// gRPC's default receive limit, which every message must stay under.
const DEFAULT_LIMIT: usize = 4 * 1024 * 1024;
/// The gateway's own promise: binary messages stay under 1 MiB.
const ONE_MIB: usize = 1024 * 1024;

fn client(h: &Harness) -> ImagesServiceClient<Channel> {
    // Default limits on purpose: a 4 MiB receive limit.
    ImagesServiceClient::new(h.channel())
}

fn req(model: Option<&str>) -> CreateImageRequest {
    CreateImageRequest {
        prompt: "A minimalist poster of a mountain at sunrise".into(),
        model: model.map(Into::into),
        ..Default::default()
    }
}

/// Calls CreateImage and reads everything; panics if the call or the stream fails.
async fn generate(h: &Harness, request: CreateImageRequest) -> Vec<CreateImageResponse> {
    let stream = client(h)
        .create_image(request)
        .await
        .unwrap_or_else(|s| panic!("call failed: {s:?}"))
        .into_inner();
    let (messages, end) = drain(stream).await;
    assert!(end.is_none(), "stream ended with {end:?}");
    messages
}

/// Asserts that `request` is refused before any upstream call, naming `field`.
async fn rejected(h: &Harness, request: CreateImageRequest, field: &str) {
    let what = format!("{request:?}");
    let status = match client(h).create_image(request).await {
        Err(status) => status,
        Ok(_) => panic!("accepted, expected a violation of {field}: {what}"),
    };
    assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    let details = status.get_error_details();
    let fields: Vec<String> = details
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default();
    assert!(
        fields.iter().any(|f| f == field),
        "{what}: expected a violation of {field}, got {fields:?} ({})",
        status.message()
    );
    assert_eq!(
        details.error_info().map(|i| i.reason.as_str()),
        Some("INVALID_REQUEST")
    );
    assert!(
        h.fake.requests().is_empty(),
        "{what}: the fake received a request"
    );
}

/// What a client rebuilds from the stream.
#[derive(Debug, Default)]
struct Assembled {
    /// image_index -> bytes (complete images only).
    images: BTreeMap<i32, Vec<u8>>,
    /// partial_image_index -> bytes (complete previews only).
    partials: BTreeMap<i32, Vec<u8>>,
    /// image_index -> (url, revised_prompt).
    urls: BTreeMap<i32, (String, Option<String>)>,
    /// image_index -> revised_prompt from the first chunk.
    revised: BTreeMap<i32, String>,
    result: Option<ImageResult>,
    /// The kinds of the messages, in order, with their index.
    order: Vec<(&'static str, i32)>,
    /// Largest encoded message seen.
    largest: usize,
}

/// Reassembles the images the way the proto comments tell clients to, checking offsets, the
/// last flags and total_bytes along the way, and that `result` comes last.
fn assemble(messages: &[CreateImageResponse]) -> Assembled {
    let mut a = Assembled::default();
    let mut open: BTreeMap<i32, Vec<u8>> = BTreeMap::new();
    let mut open_partials: BTreeMap<i32, Vec<u8>> = BTreeMap::new();
    for (i, m) in messages.iter().enumerate() {
        let len = m.encoded_len();
        a.largest = a.largest.max(len);
        assert!(len < DEFAULT_LIMIT, "message {i} is {len} bytes");
        assert!(len <= ONE_MIB, "message {i} is {len} bytes, over 1 MiB");
        assert!(a.result.is_none(), "a message after result: {m:?}");
        match m.event.as_ref().expect("every message has an event") {
            Event::ImageChunk(c) => {
                assert!(!a.images.contains_key(&c.image_index), "chunk after last");
                let buf = open.entry(c.image_index).or_default();
                assert_eq!(
                    c.offset as usize,
                    buf.len(),
                    "offset of image {}",
                    c.image_index
                );
                if c.offset == 0 {
                    if let Some(p) = &c.revised_prompt {
                        a.revised.insert(c.image_index, p.clone());
                    }
                } else {
                    assert!(
                        c.revised_prompt.is_none(),
                        "revised_prompt after first chunk"
                    );
                }
                buf.extend_from_slice(&c.data);
                if !c.last {
                    assert_eq!(c.data.len() % 3, 0, "non-last chunks hold a multiple of 3");
                }
                if c.last {
                    let done = open.remove(&c.image_index).unwrap();
                    assert_eq!(done.len() as i64, c.total_bytes);
                    a.images.insert(c.image_index, done);
                }
                if a.order.last() != Some(&("image", c.image_index)) {
                    a.order.push(("image", c.image_index));
                }
            }
            Event::PartialImage(p) => {
                let buf = open_partials.entry(p.partial_image_index).or_default();
                assert_eq!(p.offset as usize, buf.len());
                buf.extend_from_slice(&p.data);
                if p.last {
                    let done = open_partials.remove(&p.partial_image_index).unwrap();
                    assert_eq!(done.len() as i64, p.total_bytes);
                    a.partials.insert(p.partial_image_index, done);
                }
                if a.order.last() != Some(&("partial", p.partial_image_index)) {
                    a.order.push(("partial", p.partial_image_index));
                }
            }
            Event::ImageUrl(u) => {
                a.urls
                    .insert(u.image_index, (u.url.clone(), u.revised_prompt.clone()));
                a.order.push(("url", u.image_index));
            }
            Event::Result(r) => {
                a.result = Some(r.clone());
                a.order.push(("result", 0));
            }
            Event::Unknown(_) | Event::Keepalive(_) => {}
        }
    }
    assert!(open.is_empty(), "unfinished images: {:?}", open.keys());
    assert!(a.result.is_some(), "no result message");
    a
}

/// Checks the PNG signature, every chunk's CRC, and returns the IHDR size.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], &media::PNG_SIGNATURE, "PNG signature");
    let mut at = 8;
    let mut size = None;
    while at < png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let kind = &png[at + 4..at + 8];
        let crc = u32::from_be_bytes(png[at + 8 + len..at + 12 + len].try_into().unwrap());
        assert_eq!(
            crc,
            media::crc32(&png[at + 4..at + 8 + len]),
            "CRC of {kind:?}"
        );
        if kind == b"IHDR" {
            let d = &png[at + 8..at + 16];
            size = Some((
                u32::from_be_bytes(d[0..4].try_into().unwrap()),
                u32::from_be_bytes(d[4..8].try_into().unwrap()),
            ));
        }
        at += 12 + len;
    }
    assert_eq!(at, png.len(), "PNG ends after its last chunk");
    size.expect("an IHDR chunk")
}

fn upstream_body(h: &Harness, i: usize) -> serde_json::Value {
    let r = &h.fake.requests()[i];
    assert_eq!(r.path, "/v1/images/generations");
    r.json.clone().expect("JSON body")
}

// ---------------------------------------------------------------------------------------------
// One test per restriction row
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn prompt_is_required() {
    let h = Harness::start().await;
    for prompt in ["", "   "] {
        let r = CreateImageRequest {
            prompt: prompt.into(),
            ..req(Some("gpt-image-1"))
        };
        rejected(&h, r, "prompt").await;
    }
    // Also for models the gateway does not know.
    let r = CreateImageRequest {
        prompt: String::new(),
        ..req(Some("flux-pro"))
    };
    rejected(&h, r, "prompt").await;
}

#[tokio::test]
async fn model_must_not_be_empty_when_set() {
    let h = Harness::start().await;
    rejected(&h, req(Some("")), "model").await;
}

#[tokio::test]
async fn prompt_length_depends_on_the_model() {
    let h = Harness::start().await;
    let long = |n: usize| "a".repeat(n);
    for (model, max) in [
        (Some("dall-e-2"), 1_000),
        (None, 1_000),
        (Some("dall-e-3"), 4_000),
        (Some("gpt-image-1"), 32_000),
    ] {
        let r = CreateImageRequest {
            prompt: long(max + 1),
            ..req(model)
        };
        rejected(&h, r, "prompt").await;
    }
    // Characters, not bytes: 1,000 three-byte characters are fine for dall-e-2.
    let r = CreateImageRequest {
        prompt: "山".repeat(1_000),
        ..req(Some("dall-e-2"))
    };
    generate(&h, r).await;
    let r = CreateImageRequest {
        prompt: long(4_000),
        ..req(Some("dall-e-3"))
    };
    generate(&h, r).await;
    assert_eq!(h.fake.requests().len(), 2);
}

#[tokio::test]
async fn dall_e_2_n_is_1_to_10() {
    let h = Harness::start().await;
    for n in [0, -1, 11] {
        let r = CreateImageRequest {
            n: Some(n),
            ..req(Some("dall-e-2"))
        };
        rejected(&h, r, "n").await;
    }
    let r = CreateImageRequest {
        n: Some(10),
        size: Some("256x256".into()),
        ..req(Some("dall-e-2"))
    };
    let a = assemble(&generate(&h, r).await);
    assert_eq!(a.urls.len(), 10);
}

#[tokio::test]
async fn dall_e_3_n_is_1() {
    let h = Harness::start().await;
    for n in [2, 10] {
        let r = CreateImageRequest {
            n: Some(n),
            ..req(Some("dall-e-3"))
        };
        rejected(&h, r, "n").await;
    }
}

#[tokio::test]
async fn gpt_image_n_is_1_to_10_and_streaming_needs_n_1() {
    let h = Harness::start().await;
    rejected(
        &h,
        CreateImageRequest {
            n: Some(11),
            ..req(Some("gpt-image-1"))
        },
        "n",
    )
    .await;
    rejected(
        &h,
        CreateImageRequest {
            n: Some(2),
            partial_images: Some(1),
            ..req(Some("gpt-image-1"))
        },
        "n",
    )
    .await;
}

#[tokio::test]
async fn sizes_depend_on_the_model() {
    let h = Harness::start().await;
    for (model, size) in [
        (Some("dall-e-2"), "1792x1024"),
        (Some("dall-e-2"), "auto"),
        (None, "1536x1024"),
        (Some("dall-e-3"), "512x512"),
        (Some("dall-e-3"), "1536x1024"),
        (Some("gpt-image-1"), "1792x1024"),
        (Some("gpt-image-1"), "2048x1152"),
        (Some("gpt-image-1.5"), "256x256"),
        // gpt-image-2: multiples of 16, aspect 1:3..3:1, at most 3840x2160.
        (Some("gpt-image-2"), "1000x1000"),
        (Some("gpt-image-2"), "3840x1024"),
        (Some("gpt-image-2"), "3840x3840"),
        (Some("gpt-image-2"), "4096x2048"),
        (Some("gpt-image-2"), "large"),
    ] {
        let r = CreateImageRequest {
            size: Some(size.into()),
            ..req(model)
        };
        rejected(&h, r, "size").await;
    }
    // A custom gpt-image-2 size is accepted and reaches OpenAI.
    let r = CreateImageRequest {
        size: Some("2048x1152".into()),
        ..req(Some("gpt-image-2"))
    };
    let a = assemble(&generate(&h, r).await);
    assert_eq!(png_size(&a.images[&0]), (2048, 1152));
    assert_eq!(upstream_body(&h, 0)["size"], "2048x1152");
}

#[tokio::test]
async fn quality_depends_on_the_model() {
    let h = Harness::start().await;
    for (model, quality) in [
        (Some("dall-e-2"), "hd"),
        (Some("dall-e-2"), "high"),
        // No model means dall-e-2: its quality is fixed.
        (None, "high"),
        (Some("dall-e-3"), "high"),
        (Some("gpt-image-1"), "hd"),
        (Some("gpt-image-1"), "standard"),
    ] {
        let r = CreateImageRequest {
            quality: Some(quality.into()),
            ..req(model)
        };
        rejected(&h, r, "quality").await;
    }
}

#[tokio::test]
async fn style_is_dall_e_3_only() {
    let h = Harness::start().await;
    for (model, style) in [
        (Some("gpt-image-1"), "vivid"),
        (Some("dall-e-2"), "natural"),
        (None, "vivid"),
        (Some("dall-e-3"), "bold"),
    ] {
        let r = CreateImageRequest {
            style: Some(style.into()),
            ..req(model)
        };
        rejected(&h, r, "style").await;
    }
    let r = CreateImageRequest {
        style: Some("natural".into()),
        quality: Some("hd".into()),
        ..req(Some("dall-e-3"))
    };
    generate(&h, r).await;
    assert_eq!(upstream_body(&h, 0)["style"], "natural");
}

#[tokio::test]
async fn response_format_is_dall_e_only() {
    let h = Harness::start().await;
    for (model, format) in [
        (Some("gpt-image-1"), "b64_json"),
        (Some("gpt-image-1"), "url"),
        (Some("dall-e-2"), "base64"),
    ] {
        let r = CreateImageRequest {
            response_format: Some(format.into()),
            ..req(model)
        };
        rejected(&h, r, "response_format").await;
    }
}

#[tokio::test]
async fn output_format_is_gpt_image_only() {
    let h = Harness::start().await;
    for (model, format) in [
        ("dall-e-3", "png"),
        ("dall-e-2", "webp"),
        ("gpt-image-1", "gif"),
    ] {
        let r = CreateImageRequest {
            output_format: Some(format.into()),
            ..req(Some(model))
        };
        rejected(&h, r, "output_format").await;
    }
}

#[tokio::test]
async fn compression_is_gpt_image_only_0_to_100_and_needs_jpeg_or_webp() {
    let h = Harness::start().await;
    let cases = [
        ("dall-e-2", 50, Some("jpeg")),
        ("dall-e-3", 50, None),
        ("gpt-image-1", 101, Some("jpeg")),
        ("gpt-image-1", -1, Some("webp")),
        ("gpt-image-1", 80, Some("png")),
        // Unset output_format means png.
        ("gpt-image-1", 80, None),
    ];
    for (model, compression, format) in cases {
        let r = CreateImageRequest {
            output_compression: Some(compression),
            output_format: format.map(Into::into),
            ..req(Some(model))
        };
        rejected(&h, r, "output_compression").await;
    }
    let r = CreateImageRequest {
        output_compression: Some(80),
        output_format: Some("jpeg".into()),
        ..req(Some("gpt-image-1"))
    };
    let a = assemble(&generate(&h, r).await);
    assert_eq!(a.result.unwrap().output_format.as_deref(), Some("jpeg"));
    let body = upstream_body(&h, 0);
    assert_eq!(body["output_compression"], 80);
    assert_eq!(body["output_format"], "jpeg");
}

#[tokio::test]
async fn background_is_gpt_image_only_and_transparent_needs_png_or_webp() {
    let h = Harness::start().await;
    for (model, background, format) in [
        ("dall-e-3", "transparent", None),
        ("dall-e-2", "opaque", None),
        ("gpt-image-1", "clear", None),
        ("gpt-image-1", "transparent", Some("jpeg")),
    ] {
        let r = CreateImageRequest {
            background: Some(background.into()),
            output_format: format.map(Into::into),
            ..req(Some(model))
        };
        rejected(&h, r, "background").await;
    }
    // No model, but GPT-image-only fields: validated as a GPT image model.
    let r = CreateImageRequest {
        background: Some("transparent".into()),
        output_format: Some("jpeg".into()),
        ..req(None)
    };
    rejected(&h, r, "background").await;
    for format in [None, Some("webp")] {
        let r = CreateImageRequest {
            background: Some("transparent".into()),
            output_format: format.map(Into::into),
            ..req(Some("gpt-image-1"))
        };
        let a = assemble(&generate(&h, r).await);
        assert_eq!(a.result.unwrap().background.as_deref(), Some("transparent"));
    }
}

#[tokio::test]
async fn without_a_model_gpt_only_fields_imply_a_gpt_image_model() {
    // OpenAI's default is dall-e-2, unless a GPT-image-only field is set: then the GPT image
    // rules apply (and the model is left for OpenAI to pick).
    let h = Harness::start().await;
    let r = CreateImageRequest {
        quality: Some("high".into()),
        ..req(None)
    };
    rejected(&h, r, "quality").await;
    let r = CreateImageRequest {
        quality: Some("high".into()),
        size: Some("1024x1536".into()),
        background: Some("transparent".into()),
        output_format: Some("webp".into()),
        ..req(None)
    };
    let a = assemble(&generate(&h, r).await);
    assert_eq!(png_size(&a.images[&0]), (1024, 1536));
    assert!(upstream_body(&h, 0).get("model").is_none());
}

#[tokio::test]
async fn moderation_is_gpt_image_only() {
    let h = Harness::start().await;
    for (model, moderation) in [("dall-e-2", "low"), ("gpt-image-1", "none")] {
        let r = CreateImageRequest {
            moderation: Some(moderation.into()),
            ..req(Some(model))
        };
        rejected(&h, r, "moderation").await;
    }
}

#[tokio::test]
async fn partial_images_are_0_to_3_and_gpt_image_only() {
    let h = Harness::start().await;
    for (model, partials) in [("gpt-image-1", 4), ("gpt-image-1", -1), ("dall-e-3", 1)] {
        let r = CreateImageRequest {
            partial_images: Some(partials),
            ..req(Some(model))
        };
        rejected(&h, r, "partial_images").await;
    }
}

#[tokio::test]
async fn unknown_models_pass_through_with_only_model_independent_checks() {
    let h = Harness::start().await;
    for (r, field) in [
        (
            CreateImageRequest {
                n: Some(0),
                ..req(Some("flux-pro"))
            },
            "n",
        ),
        (
            CreateImageRequest {
                output_compression: Some(101),
                ..req(Some("flux-pro"))
            },
            "output_compression",
        ),
        (
            CreateImageRequest {
                partial_images: Some(4),
                ..req(Some("flux-pro"))
            },
            "partial_images",
        ),
    ] {
        rejected(&h, r, field).await;
    }
    // Values no known model accepts together go through untouched.
    let r = CreateImageRequest {
        n: Some(2),
        size: Some("640x480".into()),
        quality: Some("ultra".into()),
        style: Some("watercolour".into()),
        output_compression: Some(30),
        moderation: Some("strict".into()),
        user: Some("user-1234".into()),
        ..req(Some("flux-pro"))
    };
    let a = assemble(&generate(&h, r).await);
    assert_eq!(a.images.len(), 2);
    for image in a.images.values() {
        assert_eq!(png_size(image), (640, 480));
    }
    let body = upstream_body(&h, 0);
    assert_eq!(
        body,
        json!({
            "prompt": "A minimalist poster of a mountain at sunrise",
            "model": "flux-pro",
            "n": 2,
            "size": "640x480",
            "quality": "ultra",
            "style": "watercolour",
            "output_compression": 30,
            "moderation": "strict",
            "user": "user-1234",
        })
    );
}

#[tokio::test]
async fn every_problem_is_reported_at_once() {
    let h = Harness::start().await;
    let r = CreateImageRequest {
        prompt: String::new(),
        n: Some(3),
        style: Some("x".into()),
        output_format: Some("png".into()),
        ..req(Some("dall-e-3"))
    };
    let status = client(&h).create_image(r).await.unwrap_err();
    let fields: Vec<String> = status
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(fields, ["prompt", "n", "style", "output_format"]);
}

// ---------------------------------------------------------------------------------------------
// Results: chunking, URLs, previews
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn ten_large_gpt_images_reach_a_default_client_in_chunks() {
    let h = Harness::start().await;
    let r = CreateImageRequest {
        n: Some(10),
        size: Some("1536x1024".into()),
        quality: Some("high".into()),
        ..req(Some("gpt-image-1"))
    };
    let messages = generate(&h, r).await;
    let a = assemble(&messages);
    assert_eq!(a.images.len(), 10);
    for (i, image) in &a.images {
        assert_eq!(png_size(image), (1536, 1024), "image {i}");
        assert!(image.len() > ONE_MIB, "each image is bigger than one chunk");
    }
    // Images arrive one after another, never interleaved, then the result.
    let expected: Vec<(&str, i32)> = (0..10)
        .map(|i| ("image", i))
        .chain([("result", 0)])
        .collect();
    assert_eq!(a.order, expected);
    let result = a.result.unwrap();
    assert_eq!(result.image_count, 10);
    assert_eq!(result.size.as_deref(), Some("1536x1024"));
    assert_eq!(result.quality.as_deref(), Some("high"));
    assert_eq!(result.output_format.as_deref(), Some("png"));
    assert!(result.created > 0);
    let usage = result.usage.expect("GPT image models report usage");
    assert_eq!(usage.total_tokens, usage.input_tokens + usage.output_tokens);
    assert!(usage.input_tokens_details.is_some());
    println!(
        "10 x 1536x1024: {} messages, largest {} bytes",
        messages.len(),
        a.largest
    );
}

#[tokio::test]
async fn the_largest_gpt_image_2_size_stays_under_the_limit() {
    let h = Harness::start().await;
    let r = CreateImageRequest {
        size: Some("3840x2160".into()),
        ..req(Some("gpt-image-2"))
    };
    let messages = generate(&h, r).await;
    let a = assemble(&messages);
    let image = &a.images[&0];
    assert_eq!(png_size(image), (3840, 2160));
    assert!(image.len() > 8 * ONE_MIB - ONE_MIB);
    println!(
        "1 x 3840x2160 ({} bytes): {} messages, largest {} bytes",
        image.len(),
        messages.len(),
        a.largest
    );
}

#[tokio::test]
async fn dall_e_urls_are_passed_through_and_never_fetched() {
    let h = Harness::start().await;
    let a = assemble(&generate(&h, req(Some("dall-e-3"))).await);
    let (url, revised) = &a.urls[&0];
    assert!(
        url.starts_with("https://fake-openai.invalid/images/"),
        "{url}"
    );
    assert!(
        revised
            .as_deref()
            .is_some_and(|p| p.contains("mountain at sunrise")),
        "{revised:?}"
    );
    assert_eq!(a.order, [("url", 0), ("result", 0)]);
    let result = a.result.unwrap();
    assert_eq!(result.image_count, 1);
    assert!(result.usage.is_none());
    // One upstream request, and nothing fetched the URL.
    assert_eq!(h.fake.requests().len(), 1);
}

#[tokio::test]
async fn dall_e_b64_json_is_decoded_to_bytes() {
    let h = Harness::start().await;
    let r = CreateImageRequest {
        n: Some(3),
        size: Some("256x256".into()),
        response_format: Some("b64_json".into()),
        ..req(Some("dall-e-2"))
    };
    let a = assemble(&generate(&h, r).await);
    assert_eq!(a.images.len(), 3);
    for image in a.images.values() {
        assert_eq!(png_size(image), (256, 256));
    }
    let r = CreateImageRequest {
        response_format: Some("b64_json".into()),
        ..req(Some("dall-e-3"))
    };
    let a = assemble(&generate(&h, r).await);
    assert_eq!(png_size(&a.images[&0]), (1024, 1024));
    assert!(
        a.revised.contains_key(&0),
        "revised_prompt on the first chunk"
    );
}

#[tokio::test]
async fn partial_images_stream_before_the_final_image() {
    let h = Harness::start().await;
    let r = CreateImageRequest {
        partial_images: Some(2),
        size: Some("1024x1536".into()),
        ..req(Some("gpt-image-1"))
    };
    let a = assemble(&generate(&h, r).await);
    assert_eq!(
        a.order,
        [("partial", 0), ("partial", 1), ("image", 0), ("result", 0)]
    );
    for preview in a.partials.values() {
        assert_eq!(png_size(preview), (256, 384));
    }
    assert_eq!(png_size(&a.images[&0]), (1024, 1536));
    let result = a.result.unwrap();
    assert_eq!(result.size.as_deref(), Some("1024x1536"));
    assert!(result.usage.is_some());
    let body = upstream_body(&h, 0);
    assert_eq!(body["stream"], true);
    assert_eq!(body["partial_images"], 2);
    assert_eq!(
        h.fake.requests()[0].header("accept"),
        Some("text/event-stream")
    );
}

fn partial_event(index: u64, b64: &str) -> serde_json::Value {
    json!({
        "type": "image_generation.partial_image",
        "sequence_number": index,
        "b64_json": b64,
        "created_at": 1_750_000_000,
        "size": "1024x1024",
        "quality": "medium",
        "background": "opaque",
        "output_format": "png",
        "partial_image_index": index,
    })
}

#[tokio::test]
async fn a_preview_reaches_the_client_while_the_upstream_is_still_generating() {
    let h = Harness::start().await;
    let preview = media::png_base64(64, 64, false);
    h.fake.push(Scenario::Events {
        events: vec![
            partial_event(0, &preview),
            partial_event(1, &preview),
            json!({"type": "image_generation.completed", "b64_json": &*preview, "created_at": 1}),
        ],
        framing: Framing {
            limit: Some(1),
            ..Framing::default()
        },
        // After the first preview the fake stalls, as a slow generation would.
        ending: Ending::Stall,
    });
    let r = CreateImageRequest {
        partial_images: Some(2),
        ..req(Some("gpt-image-1"))
    };
    let mut stream = client(&h).create_image(r).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().unwrap();
    let Some(Event::PartialImage(p)) = first.event else {
        panic!("expected a preview first: {first:?}");
    };
    assert!(p.last);
    assert_eq!(png_size(&p.data), (64, 64));
    assert_eq!(h.fake.finished(0), None, "the upstream is still open");
    // Cancelling now closes the upstream request.
    drop(stream);
    tokio::time::timeout(Duration::from_secs(5), h.fake.client_gone(0))
        .await
        .expect("the upstream request is closed after the caller cancels");
}

#[tokio::test]
async fn an_error_event_after_a_preview_ends_the_stream_with_its_status() {
    let h = Harness::start().await;
    let preview = media::png_base64(32, 32, false);
    h.fake.push(Scenario::events(vec![
        partial_event(0, &preview),
        fake::error_event(
            1,
            "invalid_request_error",
            "moderation_blocked",
            "Your request was rejected by the safety system.",
            None,
        ),
    ]));
    let r = CreateImageRequest {
        partial_images: Some(1),
        ..req(Some("gpt-image-1"))
    };
    let stream = client(&h).create_image(r).await.unwrap().into_inner();
    let (messages, end) = drain(stream).await;
    assert!(matches!(messages[0].event, Some(Event::PartialImage(_))));
    let status = end.expect("the stream ends with a status");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("safety system"), "{status:?}");
}

#[tokio::test]
async fn a_stream_cut_before_the_final_image_is_unavailable() {
    let h = Harness::start().await;
    h.fake.push(Scenario::Default {
        framing: Framing {
            limit: Some(1),
            ..Framing::default()
        },
        ending: Ending::Drop,
    });
    let r = CreateImageRequest {
        partial_images: Some(2),
        size: Some("1024x1024".into()),
        ..req(Some("gpt-image-1"))
    };
    let stream = client(&h).create_image(r).await.unwrap().into_inner();
    let (messages, end) = drain(stream).await;
    assert!(!messages.is_empty());
    assert_eq!(end.expect("ends with a status").code(), Code::Unavailable);
}

#[tokio::test]
async fn upstream_errors_before_output_are_trailers_only_statuses() {
    let h = Harness::start_with(|c| c.retry.max_retries = 0).await;
    h.fake.push(Scenario::Error {
        status: 429,
        body: fake::error_body(
            "Rate limit reached for images per minute.",
            "requests",
            None,
            Some("rate_limit_exceeded"),
        ),
        headers: vec![("retry-after".into(), "7".into())],
    });
    let status = client(&h)
        .create_image(req(Some("gpt-image-1")))
        .await
        .expect_err("the call fails before any message");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(
        status.get_error_details().retry_info().unwrap().retry_delay,
        Some(Duration::from_secs(7))
    );
    // The fake's own 404 for unknown models maps to NOT_FOUND.
    let status = client(&h)
        .create_image(req(Some("does-not-exist")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn an_undecodable_image_fails_before_any_output() {
    let h = Harness::start().await;
    h.fake.push(Scenario::Body {
        status: 200,
        content_type: "application/json".into(),
        chunks: vec![
            json!({"created": 1, "data": [{"b64_json": "not base64!"}]})
                .to_string()
                .into(),
        ],
        delay: None,
        headers: Vec::new(),
    });
    let status = client(&h)
        .create_image(req(Some("gpt-image-1")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal);
}

// ---------------------------------------------------------------------------------------------
// Interop: grpcurl and a generated Python client
// ---------------------------------------------------------------------------------------------

use common::{interop_tools as tools, repo_root as root};

#[tokio::test]
async fn grpcurl_recipe_saves_a_valid_png() {
    let h = Harness::start().await;
    let body = r#"{"model":"gpt-image-1","prompt":"A minimalist poster of a mountain at sunrise","size":"1536x1024"}"#;
    let out = tokio::process::Command::new(tools().join("venv/bin/grpcurl"))
        .args(["-plaintext", "-d", body])
        .arg(h.addr.to_string())
        .arg("openai_gateway.v1.ImagesService/CreateImage")
        .kill_on_drop(true)
        .output()
        .await
        .expect("grpcurl runs");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What `jq -r '.imageChunk.data // empty' | base64 -d` does: concatenate, decode once.
    use base64::Engine as _;
    let mut joined = String::new();
    let mut saw_result = false;
    for message in serde_json::Deserializer::from_str(&printed).into_iter::<serde_json::Value>() {
        let message = message.expect("grpcurl prints JSON");
        if let Some(data) = message["imageChunk"]["data"].as_str() {
            joined.push_str(data);
        }
        saw_result |= message.get("result").is_some();
    }
    assert!(saw_result, "{printed}");
    let png = base64::engine::general_purpose::STANDARD
        .decode(joined)
        .expect("the concatenated chunks decode as one base64 string");
    assert_eq!(png_size(&png), (1536, 1024));
}

#[tokio::test]
async fn python_client_saves_a_png_and_a_wav_that_decoders_open() {
    let h = Harness::start().await;
    let tools = tools();
    let out_dir = std::env::temp_dir().join(format!(
        "gateway-media-{}-{}",
        std::process::id(),
        h.addr.port()
    ));
    let out = tokio::process::Command::new(tools.join("venv/bin/python"))
        .arg(root().join("tests/interop_media.py"))
        .arg(h.addr.to_string())
        .arg(root().join("proto"))
        .arg(tools.join("python-gen-media"))
        .arg(&out_dir)
        .kill_on_drop(true)
        .output()
        .await
        .expect("python runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    let result: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or(""),
    )
    .unwrap_or_else(|e| panic!("{e}: {printed}"));
    assert_eq!(result["png"]["width"], 1536, "{printed}");
    assert_eq!(result["png"]["height"], 1024, "{printed}");
    assert!(result["png"]["chunks"].as_u64().unwrap() > 1, "{printed}");
    assert_eq!(result["wav"]["framerate"], 24_000, "{printed}");
    assert_eq!(result["wav"]["channels"], 1, "{printed}");
    assert!(result["wav"]["frames"].as_u64().unwrap() > 0, "{printed}");
    let _ = std::fs::remove_dir_all(&out_dir);
}

// ---------------------------------------------------------------------------------------------
// Never stricter than OpenAI; extra_body
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn quality_auto_is_accepted_for_dall_e() {
    // `auto` is OpenAI's default quality for every model (CreateImageRequest.quality).
    let h = Harness::start().await;
    for (i, model) in [None, Some("dall-e-2"), Some("dall-e-3")]
        .into_iter()
        .enumerate()
    {
        let r = CreateImageRequest {
            quality: Some("auto".into()),
            ..req(model)
        };
        generate(&h, r).await;
        assert_eq!(upstream_body(&h, i)["quality"], "auto", "{model:?}");
    }
}

#[tokio::test]
async fn extra_body_is_merged_into_the_upstream_body() {
    let h = Harness::start().await;
    let r = CreateImageRequest {
        size: Some("1024x1024".into()),
        extra_body: Some(struct_of(json!({
            "size": "1536x1024",
            "future_option": {"level": 2, "on": true}
        }))),
        ..req(Some("gpt-image-1"))
    };
    generate(&h, r).await;
    assert_eq!(
        upstream_body(&h, 0),
        json!({
            "prompt": "A minimalist poster of a mountain at sunrise",
            "model": "gpt-image-1",
            "size": "1536x1024",
            "future_option": {"level": 2, "on": true}
        })
    );
    // The gateway decides whether the upstream call streams.
    let r = CreateImageRequest {
        extra_body: Some(struct_of(json!({"stream": true}))),
        ..req(Some("gpt-image-1"))
    };
    let h = Harness::start().await;
    rejected(&h, r, "extra_body").await;
}
