//! The fake's default, realistic behaviour per route (used when no scenario is queued, and by
//! [`super::Scenario::Default`]): the dispatch by method and path, and `POST /v1/responses`,
//! images and speech. The other Responses routes are in [`super::lifecycle`], the
//! Conversations API in [`super::conversations`].

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::lifecycle::{self, LiveSpec, percent_decode};
use super::store::{self, StoredResponse};
use super::transcripts::{self, Item, Plan, estimate_tokens, now_unix, random_alnum};
use super::{RecordedRequest, Reply, Shared, conversations, media};

/// Size of the chunks audio bodies are sent in.
const AUDIO_CHUNK: usize = 16 * 1024;
/// Raw audio bytes per `speech.audio.delta` event.
const AUDIO_SSE_CHUNK: usize = 12 * 1024;

/// Picks the default reply for a request by method and path.
pub(super) fn default_reply(req: &RecordedRequest, shared: &Shared) -> Reply {
    let path = req.path.split('?').next().unwrap_or("");
    let segments: Vec<String> = path
        .split('/')
        .skip(1)
        .map(|s| percent_decode(s, false))
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.method.as_str();
    let result = match (method, segments.as_slice()) {
        ("POST", ["v1", "responses"]) => responses(req, shared),
        ("POST", ["v1", "responses", "input_tokens"]) => lifecycle::input_tokens(req, shared),
        ("POST", ["v1", "responses", "compact"]) => lifecycle::compact(req, shared),
        ("GET", ["v1", "responses", id]) if !id.is_empty() => lifecycle::get(req, shared, id),
        ("DELETE", ["v1", "responses", id]) if !id.is_empty() => lifecycle::delete(shared, id),
        ("POST", ["v1", "responses", id, "cancel"]) if !id.is_empty() => {
            lifecycle::cancel(shared, id)
        }
        ("GET", ["v1", "responses", id, "input_items"]) if !id.is_empty() => {
            lifecycle::input_items(req, shared, id)
        }
        (_, ["v1", "conversations", rest @ ..]) if rest.iter().all(|s| !s.is_empty()) => {
            conversations::route(req, shared, rest).unwrap_or_else(|| Err(invalid_url(req)))
        }
        ("POST", ["v1", "images", "generations"]) => images(req),
        ("POST", ["v1", "audio", "speech"]) => speech(req),
        _ => Err(invalid_url(req)),
    };
    result.unwrap_or_else(|e| e)
}

/// OpenAI's 404 for a route it does not have.
fn invalid_url(req: &RecordedRequest) -> Reply {
    let path = req.path.split('?').next().unwrap_or("");
    Reply::error(
        404,
        &format!("Invalid URL ({} {path})", req.method),
        "invalid_request_error",
        None,
        None,
    )
}

pub(super) fn bad_request(message: &str, param: Option<&str>, code: Option<&str>) -> Reply {
    Reply::error(400, message, "invalid_request_error", param, code)
}

pub(super) fn missing(param: &str) -> Reply {
    bad_request(
        &format!("Missing required parameter: '{param}'."),
        Some(param),
        Some("missing_required_parameter"),
    )
}

const UNPARSABLE_JSON: &str = "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)";

fn json_body(req: &RecordedRequest) -> Result<&Value, Reply> {
    req.json
        .as_ref()
        .filter(|v| v.is_object())
        .ok_or_else(|| bad_request(UNPARSABLE_JSON, None, None))
}

/// The JSON object body; with `optional`, an empty body counts as `{}`.
pub(super) fn object_body(req: &RecordedRequest, optional: bool) -> Result<Value, Reply> {
    if optional && req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    json_body(req).cloned()
}

/// A boolean field: absent or null gives `default`; another type is a 400.
fn bool_field(body: &Value, key: &str, default: bool) -> Result<bool, Reply> {
    match non_null(body, key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(bad_request(
            &format!(
                "Invalid type for '{key}': expected a boolean, but got {} instead.",
                store::kind(other)
            ),
            Some(key),
            Some("invalid_type"),
        )),
    }
}

/// The items a request continues from (`previous_response_id`'s chain or `conversation`'s
/// items), and which conversation it belongs to.
pub(super) struct Context {
    /// Earlier items, oldest first.
    pub items: Vec<Value>,
    /// The conversation id, if any.
    pub conversation: Option<String>,
    /// The previous response id, if any.
    pub previous: Option<String>,
}

/// Checks `previous_response_id` and `conversation` (types, mutual exclusion, existence) and
/// collects the earlier items.
pub(super) fn resolve_context(body: &Value, shared: &Shared) -> Result<Context, Reply> {
    let previous = match non_null(body, "previous_response_id") {
        None => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(other) => {
            return Err(bad_request(
                &format!(
                    "Invalid type for 'previous_response_id': expected a string, but got {} instead.",
                    store::kind(other)
                ),
                Some("previous_response_id"),
                Some("invalid_type"),
            ));
        }
    };
    let conversation = match non_null(body, "conversation") {
        None => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(Value::Object(c)) => match c.get("id") {
            Some(Value::String(id)) => Some(id.clone()),
            _ => return Err(missing("conversation.id")),
        },
        Some(other) => {
            return Err(bad_request(
                &format!(
                    "Invalid type for 'conversation': expected one of a string or an object, but got {} instead.",
                    store::kind(other)
                ),
                Some("conversation"),
                Some("invalid_type"),
            ));
        }
    };
    if previous.is_some() && conversation.is_some() {
        return Err(bad_request(
            "Mutually exclusive parameters: Ensure you are only providing one of: 'previous_response_id' or 'conversation'.",
            Some("conversation"),
            Some("mutually_exclusive_parameters"),
        ));
    }
    let mut inner = shared.lock();
    inner.store.settle(Instant::now());
    let items = if let Some(id) = &previous {
        if inner.store.response(id).is_none() {
            return Err(previous_response_not_found(id));
        }
        inner.store.chain_items(id)
    } else if let Some(id) = &conversation {
        match inner.store.conversation(id) {
            Some(c) => c.items.clone(),
            None => return Err(conversations::not_found(id, Some("conversation"))),
        }
    } else {
        Vec::new()
    };
    Ok(Context {
        items,
        conversation,
        previous,
    })
}

/// OpenAI answers an unknown, unstored or deleted `previous_response_id` with a 400 (not a 404)
/// carrying code `previous_response_not_found`.
fn previous_response_not_found(id: &str) -> Reply {
    bad_request(
        &format!("Previous response with id '{id}' not found."),
        Some("previous_response_id"),
        Some("previous_response_not_found"),
    )
}

pub(super) fn non_null<'a>(body: &'a Value, key: &str) -> Option<&'a Value> {
    body.get(key).filter(|v| !v.is_null())
}

/// The required string `model`; 404 for models that "do not exist" (`does-not-exist`,
/// `missing-*`).
pub(super) fn model<'a>(body: &'a Value, default: Option<&'a str>) -> Result<&'a str, Reply> {
    let model = match non_null(body, "model") {
        Some(Value::String(m)) if !m.is_empty() => m.as_str(),
        None if default.is_some() => default.unwrap_or_default(),
        _ => return Err(missing("model")),
    };
    if model == "does-not-exist" || model.starts_with("missing-") {
        return Err(Reply::error(
            404,
            &format!("The model `{model}` does not exist or you do not have access to it."),
            "invalid_request_error",
            None,
            Some("model_not_found"),
        ));
    }
    Ok(model)
}

fn first_chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Text of a content value: a string, or the `text` of its `input_text`/`output_text` parts.
fn content_text(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter(|p| {
                    matches!(
                        p.get("type").and_then(Value::as_str),
                        Some("input_text" | "output_text" | "text")
                    )
                })
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            (!texts.is_empty()).then(|| texts.join(" "))
        }
        _ => None,
    }
}

/// The text of the last user message of `input` (a string counts as one user message).
fn last_user_text(input: Option<&Value>) -> Option<String> {
    match input? {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => items.iter().rev().find_map(|item| {
            let is_message = item
                .get("type")
                .and_then(Value::as_str)
                .is_none_or(|t| t == "message");
            let is_user = item.get("role").and_then(Value::as_str) == Some("user");
            if is_message && is_user {
                content_text(item.get("content")?)
            } else {
                None
            }
        }),
        _ => None,
    }
}

/// The output of the last `function_call_output` input item, if any.
fn last_function_output(input: Option<&Value>) -> Option<String> {
    input?.as_array()?.iter().rev().find_map(|item| {
        if item.get("type").and_then(Value::as_str) != Some("function_call_output") {
            return None;
        }
        Some(match item.get("output") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => content_text(other).unwrap_or_else(|| other.to_string()),
            None => String::new(),
        })
    })
}

/// The function tool the fake "decides" to call, honouring `tool_choice`.
fn pick_function(body: &Value) -> Option<&Value> {
    let tools = non_null(body, "tools")?.as_array()?;
    let functions = || {
        tools
            .iter()
            .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
    };
    match non_null(body, "tool_choice") {
        Some(Value::String(mode)) if mode == "none" => None,
        Some(Value::Object(choice)) => match choice.get("type").and_then(Value::as_str) {
            Some("function") => {
                let name = choice.get("name")?;
                functions().find(|t| t.get("name") == Some(name))
            }
            Some("allowed_tools") => {
                let allowed = choice.get("tools")?.as_array()?;
                functions().find(|t| {
                    allowed.iter().any(|a| {
                        a.get("type").and_then(Value::as_str) == Some("function")
                            && a.get("name") == t.get("name")
                    })
                })
            }
            _ => functions().next(),
        },
        _ => functions().next(),
    }
}

/// A plausible value for a JSON-schema property called `name`.
fn sample_value(name: &str, schema: &Value) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    let lower = name.to_ascii_lowercase();
    match ty {
        "integer" => json!(3),
        "number" => json!(1.5),
        "boolean" => json!(true),
        "null" => Value::Null,
        "array" => match schema.get("items") {
            Some(items) => json!([sample_value(name.trim_end_matches('s'), items)]),
            None => json!([]),
        },
        "object" => sample_arguments(schema),
        _ => json!(match lower.as_str() {
            "city" => "Paris",
            "location" | "place" | "address" => "Paris, France",
            "country" => "France",
            "unit" | "units" => "celsius",
            "date" | "day" => "2026-01-01",
            "time" => "12:00",
            "email" => "ada@example.com",
            "name" | "user" | "username" => "Ada",
            "query" | "q" | "search" | "term" => "demo query",
            "language" | "lang" => "en",
            "url" => "https://example.com",
            "id" => "42",
            _ => "example",
        }),
    }
}

/// An arguments object built from a JSON schema's `properties`.
fn sample_arguments(schema: &Value) -> Value {
    let mut out = Map::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            out.insert(name.clone(), sample_value(name, prop));
        }
    }
    Value::Object(out)
}

/// `POST /v1/responses`: generates the transcript; stores it (unless `store: false`), with its
/// input items; adds both to the conversation; runs it as a job with `background: true`.
fn responses(req: &RecordedRequest, shared: &Shared) -> Result<Reply, Reply> {
    let body = json_body(req)?;
    // A stored prompt template may set the model (the fake's templates all use the default).
    model(body, non_null(body, "prompt").map(|_| "gpt-4.1-mini"))?;
    let budget = match non_null(body, "max_output_tokens") {
        None => None,
        Some(v) => match v.as_i64() {
            Some(m) if m >= 16 => Some(m as u64),
            Some(m) => {
                return Err(bad_request(
                    &format!(
                        "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got {m} instead."
                    ),
                    Some("max_output_tokens"),
                    Some("integer_below_min_value"),
                ));
            }
            None => {
                return Err(bad_request(
                    &format!(
                        "Invalid type for 'max_output_tokens': expected an integer, but got {v} instead."
                    ),
                    Some("max_output_tokens"),
                    Some("invalid_type"),
                ));
            }
        },
    };
    let stream = non_null(body, "stream").and_then(Value::as_bool) == Some(true);
    let store_it = bool_field(body, "store", true)?;
    let background = bool_field(body, "background", false)?;
    if background && !store_it {
        return Err(bad_request(
            "Background mode requires store=true.",
            Some("background"),
            None,
        ));
    }
    let input = non_null(body, "input");
    let input_items =
        store::normalize_input(input).map_err(|(m, p, c)| bad_request(&m, Some(&p), Some(c)))?;
    let context = resolve_context(body, shared)?;
    let function_output = last_function_output(input);
    let reasoning = transcripts::is_reasoning(body);
    let show_summary = transcripts::summary_mode(body).is_some();

    // Earlier user messages of the conversation (or `previous_response_id` chain): the reply
    // says which turn this is, so a caller can see the history was used.
    let mut earlier: Vec<String> = context
        .items
        .iter()
        .filter(|i| store::is_user_message(i))
        .map(|i| store::message_text(i).unwrap_or_default())
        .collect();
    let mut user_text = last_user_text(input);
    if user_text.is_none() {
        user_text = earlier.pop();
    }
    let turn_note = earlier.last().map(|last| {
        format!(
            " This is turn {} of our conversation; earlier you said \"{}\".",
            earlier.len() + 1,
            first_chars(last, 60)
        )
    });

    let mut items = Vec::new();
    let call = pick_function(body).filter(|_| function_output.is_none());
    if let Some(tool) = call {
        let name = tool.get("name").and_then(Value::as_str).unwrap_or("tool");
        let arguments = sample_arguments(tool.get("parameters").unwrap_or(&Value::Null));
        if reasoning {
            items.push(Item::Reasoning {
                summary: format!(
                    "**Choosing a tool**\n\nThe user's request needs `{name}`, so I'll call it first."
                ),
                show: show_summary,
            });
        }
        items.push(Item::FunctionCall {
            name: name.to_string(),
            arguments: arguments.to_string(),
        });
    } else if function_output.is_none()
        && user_text
            .as_deref()
            .is_some_and(|t| t.to_lowercase().contains("refuse"))
    {
        // A prompt asking for a refusal gets one: a message whose only part is a `refusal`, so
        // a demo user can see a response with no text.
        items.push(Item::Refusal {
            text: "I'm sorry, but I can't help with that.".into(),
        });
    } else {
        let mut text = if let Some(output) = &function_output {
            format!(
                "Thanks - the tool returned {}, so here is your answer based on it.",
                first_chars(output, 200)
            )
        } else {
            match &user_text {
                Some(t) if t.to_lowercase().contains("welcome") => {
                    "Welcome aboard - we're glad you're here.".to_string()
                }
                Some(t) if !t.trim().is_empty() => format!(
                    "Demo reply from the fake OpenAI upstream: you said \"{}\".",
                    first_chars(t, 200)
                ),
                _ => "Demo reply from the fake OpenAI upstream.".to_string(),
            }
        };
        if let Some(note) = &turn_note {
            text.push_str(note);
        }
        if reasoning {
            let said = user_text
                .as_deref()
                .map_or(String::new(), |t| first_chars(t, 60));
            items.push(Item::Reasoning {
                summary: format!(
                    "**Reading the request**\n\nThe user wrote \"{said}\". I'll answer briefly and clearly."
                ),
                show: show_summary,
            });
        }
        items.push(Item::Message { text });
    }

    let mut plan = Plan::for_request(body);
    plan.input_tokens = lifecycle::input_tokens_of(body, &context.items);
    plan.budget = budget;
    // Stored transcripts keep `obfuscation`; the replies drop it when asked to.
    let obfuscation = non_null(body, "stream_options")
        .and_then(|o| o.get("include_obfuscation"))
        .and_then(Value::as_bool)
        != Some(false);
    plan.obfuscation = true;
    plan.encrypted_reasoning = non_null(body, "include")
        .and_then(Value::as_array)
        .is_some_and(|inc| inc.iter().any(|v| v == "reasoning.encrypted_content"));
    let mut events = transcripts::transcript(plan, items);
    if background {
        events = transcripts::as_background(events);
    }
    let id = events
        .first()
        .and_then(|e| e.pointer("/response/id"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();

    {
        let mut inner = shared.lock();
        let pacing = inner.store.pacing;
        if store_it {
            let stored = StoredResponse {
                events: events.clone(),
                input_items,
                previous_response_id: context.previous.clone(),
                conversation: context.conversation.clone(),
                job: None,
            };
            inner
                .store
                .insert_response(id.clone(), stored, background.then_some(pacing));
        } else if let Some(conversation) = &context.conversation {
            let mut added = input_items;
            if let Some(output) = events
                .last()
                .and_then(|e| e.pointer("/response/output"))
                .and_then(Value::as_array)
            {
                added.extend(output.iter().cloned());
            }
            inner.store.append_items(conversation, added);
        }
    }

    if background {
        return Ok(if stream {
            Reply::live(LiveSpec {
                id,
                next: 0,
                strip_obfuscation: !obfuscation,
            })
        } else {
            let queued = events
                .first()
                .map_or(Value::Null, |e| e["response"].clone());
            Reply::json(200, &queued)
        });
    }
    if stream {
        if !obfuscation {
            for e in &mut events {
                if let Some(m) = e.as_object_mut() {
                    m.remove("obfuscation");
                }
            }
        }
        Ok(Reply::sse(events))
    } else {
        let last = events.pop().unwrap_or(Value::Null);
        Ok(Reply::json(200, &last["response"]))
    }
}

/// Parses `WxH`.
fn parse_size(size: &str) -> Option<(u32, u32)> {
    let (w, h) = size.split_once('x')?;
    let (w, h) = (w.parse::<u32>().ok()?, h.parse::<u32>().ok()?);
    let ok = |v: u32| (1..=media::MAX_IMAGE_SIDE).contains(&v);
    (ok(w) && ok(h)).then_some((w, h))
}

/// `POST /v1/images/generations` (§9).
fn images(req: &RecordedRequest) -> Result<Reply, Reply> {
    let body = json_body(req)?;
    let prompt = match non_null(body, "prompt") {
        Some(Value::String(p)) if !p.is_empty() => p.as_str(),
        _ => return Err(missing("prompt")),
    };
    let gpt_only = [
        "output_format",
        "output_compression",
        "background",
        "moderation",
        "stream",
        "partial_images",
    ]
    .iter()
    .any(|k| non_null(body, k).is_some());
    let model = model(
        body,
        Some(if gpt_only { "gpt-image-1" } else { "dall-e-2" }),
    )?;
    let dalle = model.starts_with("dall-e");
    let dalle3 = model.starts_with("dall-e-3");

    let n = match non_null(body, "n") {
        None => 1,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=10) => n,
            _ => {
                return Err(bad_request(
                    &format!("Invalid 'n': expected an integer between 1 and 10, but got {v}."),
                    Some("n"),
                    Some("invalid_value"),
                ));
            }
        },
    };
    if dalle3 && n != 1 {
        return Err(bad_request(
            "Invalid 'n': dall-e-3 only supports n=1.",
            Some("n"),
            Some("invalid_value"),
        ));
    }
    let size_str = non_null(body, "size")
        .and_then(Value::as_str)
        .unwrap_or("auto");
    let (w, h) = if size_str == "auto" {
        (1024, 1024)
    } else {
        parse_size(size_str).ok_or_else(|| {
            bad_request(
                &format!("Invalid value: '{size_str}'. Supported values are: '256x256', '512x512', '1024x1024', '1024x1536', '1536x1024', and 'auto'."),
                Some("size"),
                Some("invalid_value"),
            )
        })?
    };
    let stream = non_null(body, "stream").and_then(Value::as_bool) == Some(true);
    if stream && dalle {
        return Err(bad_request(
            &format!("Streaming is not supported for model '{model}'."),
            Some("stream"),
            Some("invalid_value"),
        ));
    }
    if stream && n > 1 {
        return Err(bad_request(
            "Streaming is only supported with n=1",
            Some("n"),
            Some("invalid_value"),
        ));
    }
    let created = now_unix();

    if dalle {
        let format = non_null(body, "response_format")
            .and_then(Value::as_str)
            .unwrap_or("url");
        if format != "url" && format != "b64_json" {
            return Err(bad_request(
                &format!("Invalid value: '{format}'. Supported values are: 'url' and 'b64_json'."),
                Some("response_format"),
                Some("invalid_value"),
            ));
        }
        let data: Vec<Value> = (0..n)
            .map(|_| {
                let mut entry = if format == "url" {
                    json!({"url": format!("https://fake-openai.invalid/images/img-{}.png", random_alnum(24))})
                } else {
                    json!({"b64_json": &*media::png_base64(w, h, false)})
                };
                if dalle3 {
                    entry["revised_prompt"] = json!(format!(
                        "A detailed, high-quality illustration of {}",
                        first_chars(prompt, 300)
                    ));
                }
                entry
            })
            .collect();
        return Ok(Reply::json(200, &json!({"created": created, "data": data})));
    }

    // GPT image models: always base64. (For output_format jpeg/webp the fake still sends PNG
    // bytes; only the labels follow the request.)
    let transparent = non_null(body, "background").and_then(Value::as_str) == Some("transparent");
    let background = if transparent { "transparent" } else { "opaque" };
    let output_format = non_null(body, "output_format")
        .and_then(Value::as_str)
        .unwrap_or("png");
    let quality = match non_null(body, "quality").and_then(Value::as_str) {
        None | Some("auto") => "medium",
        Some(q) => q,
    };
    let size = format!("{w}x{h}");
    let text_tokens = estimate_tokens(prompt.chars().count());
    let per_image: u64 = match quality {
        "low" => 272,
        "high" => 4160,
        _ => 1056,
    };
    let pixels = (w as u64 * h as u64).max(1);
    let image_tokens = (per_image * pixels).div_ceil(1024 * 1024).max(1) * n;
    let usage = json!({
        "input_tokens": text_tokens,
        "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": 0},
        "output_tokens": image_tokens,
        "output_tokens_details": {"image_tokens": image_tokens, "text_tokens": 0},
        "total_tokens": text_tokens + image_tokens,
    });

    if stream {
        let partials = non_null(body, "partial_images")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .min(3);
        let mut events = Vec::new();
        for i in 0..partials {
            let preview = media::png_base64((w / 4).max(1), (h / 4).max(1), transparent);
            events.push(json!({
                "type": "image_generation.partial_image",
                "sequence_number": i,
                "b64_json": &*preview,
                "created_at": created,
                "size": size,
                "quality": quality,
                "background": background,
                "output_format": output_format,
                "partial_image_index": i,
            }));
        }
        events.push(json!({
            "type": "image_generation.completed",
            "sequence_number": partials,
            "b64_json": &*media::png_base64(w, h, transparent),
            "created_at": created,
            "size": size,
            "quality": quality,
            "background": background,
            "output_format": output_format,
            "usage": usage,
        }));
        return Ok(Reply::sse(events));
    }

    let image = media::png_base64(w, h, transparent);
    let data: Vec<Value> = (0..n).map(|_| json!({"b64_json": &*image})).collect();
    Ok(Reply::json(
        200,
        &json!({
            "created": created,
            "data": data,
            "background": background,
            "output_format": output_format,
            "size": size,
            "quality": quality,
            "usage": usage,
        }),
    ))
}

/// `POST /v1/audio/speech` (§10).
fn speech(req: &RecordedRequest) -> Result<Reply, Reply> {
    let body = json_body(req)?;
    let model = model(body, None)?;
    let input = match non_null(body, "input") {
        Some(Value::String(s)) => s.as_str(),
        _ => return Err(missing("input")),
    };
    let chars = input.chars().count();
    if chars > 4096 {
        return Err(bad_request(
            &format!(
                "Invalid 'input': string too long. Expected a string with maximum length 4096, but got a string with length {chars} instead."
            ),
            Some("input"),
            Some("string_above_max_length"),
        ));
    }
    match non_null(body, "voice") {
        Some(Value::String(v)) if !v.is_empty() => {}
        Some(Value::Object(v)) if v.get("id").is_some_and(Value::is_string) => {}
        _ => return Err(missing("voice")),
    }
    let format = non_null(body, "response_format")
        .and_then(Value::as_str)
        .unwrap_or("mp3");
    // The fake has only a WAV encoder: mp3/opus/aac/flac bodies are WAV bytes labelled with
    // that format's content type; pcm is the raw samples without a header.
    let content_type = match format {
        "mp3" => "audio/mpeg",
        "opus" => "audio/opus",
        "aac" => "audio/aac",
        "flac" => "audio/flac",
        "wav" => "audio/wav",
        "pcm" => "audio/pcm",
        other => {
            return Err(bad_request(
                &format!(
                    "Invalid value: '{other}'. Supported values are: 'mp3', 'opus', 'aac', 'flac', 'wav', and 'pcm'."
                ),
                Some("response_format"),
                Some("invalid_value"),
            ));
        }
    };
    let speed = match non_null(body, "speed") {
        None => 1.0,
        Some(v) => match v.as_f64() {
            Some(s) if (0.25..=4.0).contains(&s) => s,
            _ => {
                return Err(bad_request(
                    &format!(
                        "Invalid 'speed': expected a number between 0.25 and 4.0, but got {v}."
                    ),
                    Some("speed"),
                    Some("invalid_value"),
                ));
            }
        },
    };
    let stream_format = non_null(body, "stream_format")
        .and_then(Value::as_str)
        .unwrap_or("audio");
    match stream_format {
        "audio" => {}
        "sse" if model == "tts-1" || model == "tts-1-hd" => {
            return Err(bad_request(
                &format!(
                    "Unsupported value: 'stream_format' does not support 'sse' with model '{model}'."
                ),
                Some("stream_format"),
                Some("unsupported_value"),
            ));
        }
        "sse" => {}
        other => {
            return Err(bad_request(
                &format!("Invalid value: '{other}'. Supported values are: 'audio' and 'sse'."),
                Some("stream_format"),
                Some("invalid_value"),
            ));
        }
    }

    // About 60 ms of speech per character, at least half a second, scaled by speed.
    let seconds = (chars as f64 * 0.06).max(0.5) / speed;
    let samples = (seconds * media::SAMPLE_RATE as f64).round() as usize;
    let audio = Bytes::from(if format == "pcm" {
        media::sine_pcm(samples)
    } else {
        media::wav_sine(samples)
    });

    if stream_format == "sse" {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut events: Vec<Value> = audio
            .chunks(AUDIO_SSE_CHUNK)
            .map(|c| json!({"type": "speech.audio.delta", "audio": b64.encode(c)}))
            .collect();
        let input_tokens = estimate_tokens(chars);
        let output_tokens = ((seconds * 1000.0) / 80.0).ceil() as u64;
        events.push(json!({
            "type": "speech.audio.done",
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens, "total_tokens": input_tokens + output_tokens},
        }));
        let mut reply = Reply::sse(events);
        reply.content_type = "text/event-stream".into();
        return Ok(reply);
    }
    let chunks = (0..audio.len())
        .step_by(AUDIO_CHUNK)
        .map(|at| audio.slice(at..(at + AUDIO_CHUNK).min(audio.len())))
        .collect();
    Ok(Reply::chunks(content_type, chunks))
}
