//! The Images API in both vocabularies: the JSON body of `POST /images/generations`, and OpenAI's
//! `ImagesResponse` or `image_generation.*` / `image_edit.*` stream events as
//! `CreateImageResponse` messages. Images are large, so they leave as ordered [`ImageChunk`]s of
//! at most [`CHUNK`] bytes (image index, offset, last flag), never as one big message; URL
//! results are passed through and never fetched.

use bytes::Bytes;
use serde_json::{Map, Value as Json, json};

use super::media::{
    CHUNK, MAX_PASSTHROUGH, decode_base64, error_event, event_type, int_field, merge_extra_body,
    parse_event, pieces, str_field, undecodable, unknown_event,
};
use crate::{
    openai::{UpstreamError, UpstreamMeta},
    pb::{
        CreateImageRequest, CreateImageResponse, ImageChunk, ImageKeepalive, ImageResult,
        ImageTokensDetails, ImageUrl, ImageUsage, PartialImageChunk, create_image_response::Event,
    },
    usage::Usage,
};

/// The JSON body for `POST /images/generations`: the set fields under OpenAI's names, then
/// `extra_body` merged over them, plus `stream: true` when previews are streamed.
pub fn request_body(req: &CreateImageRequest, stream: bool) -> Bytes {
    let mut body = Map::new();
    body.insert("prompt".into(), json!(req.prompt));
    let strings = [
        ("model", &req.model),
        ("size", &req.size),
        ("quality", &req.quality),
        ("style", &req.style),
        ("response_format", &req.response_format),
        ("output_format", &req.output_format),
        ("background", &req.background),
        ("moderation", &req.moderation),
        ("user", &req.user),
    ];
    for (key, value) in strings {
        if let Some(v) = value {
            body.insert(key.into(), json!(v));
        }
    }
    let ints = [
        ("n", req.n),
        ("output_compression", req.output_compression),
        ("partial_images", req.partial_images),
    ];
    for (key, value) in ints {
        if let Some(v) = value {
            body.insert(key.into(), json!(v));
        }
    }
    merge_extra_body(&mut body, req.extra_body.as_ref());
    if stream {
        body.insert("stream".into(), Json::Bool(true));
    }
    Bytes::from(serde_json::to_vec(&Json::Object(body)).expect("JSON values serialize"))
}

/// The chunks of one finished image. A long `revised_prompt` (first chunk only) shrinks the
/// first chunk's data so the message stays under 1 MiB.
fn image_chunks(
    image_index: i32,
    image: &Bytes,
    revised_prompt: Option<String>,
) -> Vec<CreateImageResponse> {
    let prompt_len = revised_prompt.as_ref().map_or(0, String::len);
    let first = CHUNK
        .saturating_sub(prompt_len.next_multiple_of(3))
        .max(3 * 1024);
    let total = image.len() as i64;
    let mut revised_prompt = revised_prompt;
    pieces(image, first)
        .into_iter()
        .map(|(offset, data, last)| {
            message(Event::ImageChunk(ImageChunk {
                image_index,
                offset: offset as i64,
                data,
                last,
                total_bytes: total,
                revised_prompt: revised_prompt.take(),
            }))
        })
        .collect()
}

/// The chunks of one preview image.
fn partial_chunks(partial_image_index: i32, image: &Bytes) -> Vec<CreateImageResponse> {
    let total = image.len() as i64;
    pieces(image, CHUNK)
        .into_iter()
        .map(|(offset, data, last)| {
            message(Event::PartialImage(PartialImageChunk {
                image_index: 0,
                partial_image_index,
                offset: offset as i64,
                data,
                last,
                total_bytes: total,
            }))
        })
        .collect()
}

fn message(event: Event) -> CreateImageResponse {
    CreateImageResponse { event: Some(event) }
}

fn tokens_details(object: Option<&Json>) -> Option<ImageTokensDetails> {
    let d = object.filter(|d| d.is_object())?;
    Some(ImageTokensDetails {
        text_tokens: int_field(d, "text_tokens"),
        image_tokens: int_field(d, "image_tokens"),
    })
}

/// OpenAI's `ImagesUsage`, when present.
fn images_usage(object: &Json) -> Option<ImageUsage> {
    let u = object.get("usage").filter(|u| u.is_object())?;
    Some(ImageUsage {
        input_tokens: int_field(u, "input_tokens"),
        output_tokens: int_field(u, "output_tokens"),
        total_tokens: int_field(u, "total_tokens"),
        input_tokens_details: tokens_details(u.get("input_tokens_details")),
        output_tokens_details: tokens_details(u.get("output_tokens_details")),
    })
}

/// The final `result` message from an `ImagesResponse` or an `image_generation.completed` event.
fn result(object: &Json, created_key: &str, image_count: i32) -> CreateImageResponse {
    message(Event::Result(ImageResult {
        created: int_field(object, created_key),
        size: str_field(object, "size"),
        quality: str_field(object, "quality"),
        background: str_field(object, "background"),
        output_format: str_field(object, "output_format"),
        usage: images_usage(object),
        image_count,
    }))
}

/// The token usage a final `result` message reports, counted under the requested `model` (the
/// Images API does not echo one).
pub fn usage(model: &str, message: &CreateImageResponse) -> Option<Usage> {
    let Some(Event::Result(result)) = &message.event else {
        return None;
    };
    let usage = result.usage.as_ref()?;
    Some(Usage {
        model: model.to_owned(),
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        ..Usage::default()
    })
}

/// Converts a whole `ImagesResponse` body into the messages to send, decoding every image first
/// so that undecodable data fails the call before any output.
pub fn whole(body: &[u8], meta: &UpstreamMeta) -> Result<Vec<CreateImageResponse>, UpstreamError> {
    let body: Json = serde_json::from_slice(body)
        .map_err(|e| undecodable(meta, format!("the body is not JSON ({e})")))?;
    let Some(data) = body.get("data").and_then(Json::as_array) else {
        return Err(undecodable(
            meta,
            "the images response has no `data` array".into(),
        ));
    };
    let mut messages = Vec::new();
    for (i, entry) in data.iter().enumerate() {
        let index = i32::try_from(i).unwrap_or(i32::MAX);
        let revised_prompt = str_field(entry, "revised_prompt");
        if let Some(b64) = entry.get("b64_json").and_then(Json::as_str) {
            let image = decode_base64(b64, &format!("data[{i}].b64_json"), meta)?;
            messages.extend(image_chunks(index, &image, revised_prompt));
        } else if let Some(url) = entry.get("url").and_then(Json::as_str) {
            if url.len() + revised_prompt.as_ref().map_or(0, String::len) > MAX_PASSTHROUGH {
                return Err(undecodable(
                    meta,
                    format!(
                        "data[{i}].url is too large to forward ({} bytes)",
                        url.len()
                    ),
                ));
            }
            messages.push(message(Event::ImageUrl(ImageUrl {
                image_index: index,
                url: url.to_owned(),
                revised_prompt,
            })));
        } else {
            return Err(undecodable(
                meta,
                format!("data[{i}] has neither `b64_json` nor `url`"),
            ));
        }
    }
    let count = i32::try_from(data.len()).unwrap_or(i32::MAX);
    messages.push(result(&body, "created", count));
    Ok(messages)
}

/// What one upstream stream event becomes.
#[derive(Debug)]
pub struct Converted {
    /// The messages to send (none for an unknown event too large to pass through).
    pub messages: Vec<CreateImageResponse>,
    /// The final image was converted: the stream is complete after these messages.
    pub complete: bool,
}

/// Converts one `image_generation.*` (or `image_edit.*`) stream event. An `error` event is an
/// `Err`.
pub fn stream_event(data: &[u8], meta: &UpstreamMeta) -> Result<Converted, UpstreamError> {
    let event = parse_event(data, "image", meta)?;
    let kind = event_type(&event);
    let b64 = || {
        event
            .get("b64_json")
            .and_then(Json::as_str)
            .ok_or_else(|| undecodable(meta, format!("a {kind} event has no `b64_json`")))
    };
    Ok(match kind {
        "image_generation.partial_image" | "image_edit.partial_image" => {
            let image = decode_base64(b64()?, kind, meta)?;
            let index = event
                .get("partial_image_index")
                .and_then(Json::as_i64)
                .and_then(|i| i32::try_from(i).ok())
                .unwrap_or(0);
            Converted {
                messages: partial_chunks(index, &image),
                complete: false,
            }
        }
        "image_generation.completed" | "image_edit.completed" => {
            let image = decode_base64(b64()?, kind, meta)?;
            let mut messages = image_chunks(0, &image, str_field(&event, "revised_prompt"));
            messages.push(result(&event, "created_at", 1));
            Converted {
                messages,
                complete: true,
            }
        }
        "error" => return Err(error_event(&event, meta)),
        _ => Converted {
            messages: unknown_event(kind, data)
                .map(|raw| message(Event::Unknown(raw)))
                .into_iter()
                .collect(),
            complete: false,
        },
    })
}

/// A gateway heartbeat during a long silence (e.g. between previews).
pub fn keepalive() -> CreateImageResponse {
    message(Event::Keepalive(ImageKeepalive::default()))
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn long_revised_prompt_keeps_the_first_message_small() {
        let image = Bytes::from(vec![1u8; 3 * CHUNK]);
        let chunks = image_chunks(2, &image, Some("x".repeat(100_000)));
        assert!(chunks.iter().all(|m| m.encoded_len() < 1024 * 1024));
        let Some(Event::ImageChunk(first)) = &chunks[0].event else {
            panic!()
        };
        assert!(first.revised_prompt.is_some());
        assert_eq!(first.data.len() % 3, 0);
    }

    #[test]
    fn body_has_only_set_fields() {
        let req = CreateImageRequest {
            prompt: "p".into(),
            model: Some("gpt-image-1".into()),
            n: Some(1),
            partial_images: Some(2),
            ..Default::default()
        };
        let body: Json = serde_json::from_slice(&request_body(&req, true)).unwrap();
        assert_eq!(
            body,
            json!({"prompt": "p", "model": "gpt-image-1", "n": 1, "partial_images": 2, "stream": true})
        );
    }

    #[test]
    fn usage_is_counted_under_the_requested_model() {
        let body = br#"{"created":1,"data":[{"url":"https://x/y.png"}],"usage":{"input_tokens":5,"output_tokens":7,"total_tokens":12}}"#;
        let messages = whole(body, &UpstreamMeta::default()).unwrap();
        let found: Vec<Usage> = messages
            .iter()
            .filter_map(|m| usage("gpt-image-1", m))
            .collect();
        assert_eq!(
            found,
            [Usage {
                model: "gpt-image-1".into(),
                input_tokens: 5,
                output_tokens: 7,
                ..Usage::default()
            }]
        );
    }
}
