//! Builders of Responses-API stream transcripts: pure functions returning the event JSON objects
//! in order, with `sequence_number` from 0 strictly +1, `response.created` first and exactly one
//! terminal event (OpenAI's "Streaming responses" guide and its `ResponseStreamEvent` reference).
//!
//! Identifiers (`resp_…`, `msg_…`, `fc_…`, `call_…`, `rs_…`) and `obfuscation` padding are random,
//! so two calls give different ids; everything else is deterministic.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng as _;
use serde_json::{Map, Value, json};

/// Seconds since the Unix epoch.
pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `n` random lowercase hex digits.
pub(crate) fn random_hex(n: usize) -> String {
    const HEX: &[u8] = b"0123456789abcdef";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| HEX[rng.random_range(0..16)] as char)
        .collect()
}

/// `n` random ASCII letters and digits.
pub(crate) fn random_alnum(n: usize) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| ALNUM[rng.random_range(0..ALNUM.len())] as char)
        .collect()
}

/// Random `obfuscation` padding, 4 to 15 characters (§4.1).
fn obfuscation() -> String {
    let n = rand::rng().random_range(4..=15);
    random_alnum(n)
}

/// Splits text into small streaming pieces the way the model's tokens arrive: mostly a word with
/// its leading space (" there"), punctuation on its own, and now and then a lone space or a long
/// word cut in two. Deterministic; the pieces concatenate back to `text` exactly.
pub fn split_text(text: &str) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        if chars[i].is_whitespace() {
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            while i < chars.len() && chars[i].is_alphanumeric() {
                i += 1;
            }
        } else if chars[i].is_alphanumeric() {
            while i < chars.len() && chars[i].is_alphanumeric() {
                i += 1;
            }
        } else if chars[i] == '\'' && chars.get(i + 1).is_some_and(|c| c.is_alphabetic()) {
            i += 1;
            while i < chars.len() && chars[i].is_alphabetic() {
                i += 1;
            }
        } else {
            i += 1;
        }
        tokens.push(chars[start..i].iter().collect());
    }
    let mut pieces = Vec::with_capacity(tokens.len() + tokens.len() / 3);
    let mut spaced_words = 0usize;
    for token in tokens {
        let n = token.chars().count();
        let lead = token.chars().take_while(|c| c.is_whitespace()).count();
        if lead > 0 && lead < n {
            spaced_words += 1;
            if spaced_words.is_multiple_of(4) {
                // Space and word in separate pieces, as real streams send them (the README's "Why do
                // streamed pieces look garbled?").
                let cut = token
                    .char_indices()
                    .nth(lead)
                    .map_or(token.len(), |(b, _)| b);
                pieces.push(token[..cut].to_string());
                pieces.push(token[cut..].to_string());
                continue;
            }
        }
        if n - lead > 8 {
            let cut = token
                .char_indices()
                .nth(lead + (n - lead) / 2)
                .map_or(token.len(), |(b, _)| b);
            pieces.push(token[..cut].to_string());
            pieces.push(token[cut..].to_string());
            continue;
        }
        pieces.push(token);
    }
    pieces
}

/// Splits a JSON argument string at every change between word characters and punctuation:
/// `{"city":"Paris"}` gives `{"`, `city`, `":"`, `Paris`, `"}` (as in §6.2).
pub fn split_json(arguments: &str) -> Vec<String> {
    let mut pieces: Vec<String> = Vec::new();
    let mut last: Option<bool> = None;
    for c in arguments.chars() {
        let word = c.is_alphanumeric() || c == '_';
        match pieces.last_mut() {
            Some(p) if last == Some(word) => p.push(c),
            _ => pieces.push(c.to_string()),
        }
        last = Some(word);
    }
    pieces
}

/// Rough token count used for `usage`: one token per four characters, at least one.
pub(crate) fn estimate_tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4).max(1)
}

fn non_null<'a>(request: &'a Value, key: &str) -> Option<&'a Value> {
    request.get(key).filter(|v| !v.is_null())
}

fn echo(request: &Value, key: &str, default: Value) -> Value {
    non_null(request, key).cloned().unwrap_or(default)
}

/// Tools as the Response echoes them: function tools get `strict` (default true),
/// `description` (null) and `parameters` (null) filled in.
fn echo_tools(request: &Value) -> Value {
    let Some(tools) = non_null(request, "tools").and_then(Value::as_array) else {
        return json!([]);
    };
    let tools = tools
        .iter()
        .map(|tool| {
            let mut tool = tool.clone();
            if tool.get("type").and_then(Value::as_str) == Some("function")
                && let Some(obj) = tool.as_object_mut()
            {
                obj.entry("strict").or_insert(json!(true));
                obj.entry("description").or_insert(Value::Null);
                obj.entry("parameters").or_insert(Value::Null);
            }
            tool
        })
        .collect();
    Value::Array(tools)
}

/// Whether the fake treats this request as a reasoning model run: `reasoning` is set, or the
/// model is an o-series (`o1`, `o3-mini`, `o4-mini`, …) or `gpt-5*` model.
pub(crate) fn is_reasoning(request: &Value) -> bool {
    let model = request.get("model").and_then(Value::as_str).unwrap_or("");
    let o_series = model.starts_with('o') && model[1..].starts_with(|c: char| c.is_ascii_digit());
    non_null(request, "reasoning").is_some() || o_series || model.starts_with("gpt-5")
}

/// The requested reasoning summary mode (`reasoning.summary`, or the deprecated
/// `generate_summary`), if any.
pub(crate) fn summary_mode(request: &Value) -> Option<&str> {
    let r = non_null(request, "reasoning")?;
    non_null(r, "summary")
        .or_else(|| non_null(r, "generate_summary"))
        .and_then(Value::as_str)
}

/// The in-progress Response object echoing the request (§3, §6.1): status `in_progress`,
/// `output: []`, `usage: null`.
pub(crate) fn response_base(request: &Value) -> Map<String, Value> {
    let reasoning = if is_reasoning(request) {
        let r = non_null(request, "reasoning");
        let effort = r
            .and_then(|r| non_null(r, "effort"))
            .cloned()
            .unwrap_or(json!("medium"));
        let summary = match summary_mode(request) {
            Some("auto") => json!("detailed"),
            Some(s) => json!(s),
            None => Value::Null,
        };
        json!({"effort": effort, "summary": summary})
    } else {
        json!({"effort": null, "summary": null})
    };
    let mut text = non_null(request, "text")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    text.entry("format").or_insert(json!({"type": "text"}));
    text.entry("verbosity").or_insert(json!("medium"));

    let mut r = Map::new();
    r.insert("id".into(), json!(format!("resp_{}", random_hex(48))));
    r.insert("object".into(), json!("response"));
    r.insert("created_at".into(), json!(now_unix()));
    r.insert("status".into(), json!("in_progress"));
    r.insert(
        "background".into(),
        echo(request, "background", json!(false)),
    );
    r.insert("completed_at".into(), Value::Null);
    r.insert("error".into(), Value::Null);
    r.insert("frequency_penalty".into(), json!(0.0));
    r.insert("incomplete_details".into(), Value::Null);
    for key in [
        "instructions",
        "max_output_tokens",
        "max_tool_calls",
        "previous_response_id",
        "prompt_cache_key",
        "safety_identifier",
        "user",
    ] {
        r.insert(key.into(), echo(request, key, Value::Null));
    }
    r.insert(
        "model".into(),
        echo(request, "model", json!("gpt-4.1-mini")),
    );
    r.insert("output".into(), json!([]));
    r.insert(
        "parallel_tool_calls".into(),
        echo(request, "parallel_tool_calls", json!(true)),
    );
    r.insert("presence_penalty".into(), json!(0.0));
    r.insert("reasoning".into(), reasoning);
    r.insert(
        "service_tier".into(),
        echo(request, "service_tier", json!("auto")),
    );
    r.insert("store".into(), echo(request, "store", json!(true)));
    r.insert(
        "temperature".into(),
        echo(request, "temperature", json!(1.0)),
    );
    r.insert("text".into(), Value::Object(text));
    r.insert(
        "tool_choice".into(),
        echo(request, "tool_choice", json!("auto")),
    );
    r.insert("tools".into(), echo_tools(request));
    r.insert(
        "top_logprobs".into(),
        echo(request, "top_logprobs", json!(0)),
    );
    r.insert("top_p".into(), echo(request, "top_p", json!(1.0)));
    r.insert(
        "truncation".into(),
        echo(request, "truncation", json!("disabled")),
    );
    r.insert("usage".into(), Value::Null);
    r.insert("metadata".into(), echo(request, "metadata", json!({})));
    for key in ["prompt", "prompt_cache_retention", "moderation"] {
        if let Some(v) = non_null(request, key) {
            r.insert(key.into(), v.clone());
        }
    }
    match non_null(request, "conversation") {
        Some(Value::String(id)) => {
            r.insert("conversation".into(), json!({ "id": id }));
        }
        Some(v) => {
            let id = v.get("id").cloned().unwrap_or(Value::Null);
            r.insert("conversation".into(), json!({ "id": id }));
        }
        None => {}
    }
    r
}

/// A transcript as a background response streams it: `response.created` with status `queued`,
/// then `response.queued`, then the rest (`response.in_progress` onwards); sequence numbers
/// renumbered from 0.
pub(crate) fn as_background(mut events: Vec<Value>) -> Vec<Value> {
    if let Some(r) = events.first_mut().and_then(|e| e.get_mut("response")) {
        r["status"] = json!("queued");
        let queued =
            json!({"type": "response.queued", "sequence_number": 1, "response": r.clone()});
        events.insert(1.min(events.len()), queued);
    }
    for (i, e) in events.iter_mut().enumerate() {
        e["sequence_number"] = json!(i);
    }
    events
}

/// One output item the transcript should produce.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    /// A reasoning item; `summary` split into parts at blank lines. With `show`, summary part
    /// and text events are streamed; otherwise the item is just added and done with
    /// `summary: []` while its tokens still count as reasoning tokens.
    Reasoning { summary: String, show: bool },
    /// An assistant message with one `output_text` part.
    Message { text: String },
    /// An assistant message with one `refusal` part (no text): the model declined.
    Refusal { text: String },
    /// A function call.
    FunctionCall { name: String, arguments: String },
}

/// Everything besides the items that shapes a transcript.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The in-progress Response ([`response_base`]).
    pub base: Map<String, Value>,
    /// `usage.input_tokens`.
    pub input_tokens: u64,
    /// Output token budget (`max_output_tokens`): every streamed piece, and every hidden reasoning
    /// token, costs one. When it runs out the response ends `incomplete`.
    pub budget: Option<u64>,
    /// End with `response.incomplete` even if everything fitted.
    pub force_incomplete: bool,
    /// Add `obfuscation` to delta events.
    pub obfuscation: bool,
    /// Give reasoning items an `encrypted_content` (include `reasoning.encrypted_content`).
    pub encrypted_reasoning: bool,
}

impl Plan {
    /// A plan for a bare request JSON.
    pub(crate) fn for_request(request: &Value) -> Self {
        Plan {
            base: response_base(request),
            input_tokens: 12,
            budget: None,
            force_incomplete: false,
            obfuscation: true,
            encrypted_reasoning: false,
        }
    }
}

struct Emitter {
    seq: u64,
    events: Vec<Value>,
    obfuscation: bool,
}

impl Emitter {
    fn emit(&mut self, ty: &str, fields: Value) {
        let mut m = Map::new();
        m.insert("type".into(), json!(ty));
        m.insert("sequence_number".into(), json!(self.seq));
        if let Value::Object(fields) = fields {
            m.extend(fields);
        }
        self.seq += 1;
        self.events.push(Value::Object(m));
    }

    fn delta(&mut self, ty: &str, mut fields: Value) {
        if self.obfuscation {
            fields["obfuscation"] = json!(obfuscation());
        }
        self.emit(ty, fields);
    }
}

/// Sends `pieces` as `ty` deltas (`fields` gives each one's fields) while the output-token budget
/// lasts, one token per piece, counting them in `tokens` (budget left, output tokens, truncated);
/// returns the text sent. `truncated` is set when the budget ran out before the last piece.
fn deltas(
    e: &mut Emitter,
    ty: &str,
    pieces: &[String],
    tokens: (&mut u64, &mut u64, &mut bool),
    fields: impl Fn(&str) -> Value,
) -> String {
    let (budget, out_tokens, truncated) = tokens;
    let mut sent = String::new();
    for (k, piece) in pieces.iter().enumerate() {
        if *budget == 0 {
            *truncated = k < pieces.len();
            break;
        }
        *budget -= 1;
        *out_tokens += 1;
        sent.push_str(piece);
        e.delta(ty, fields(piece));
    }
    sent
}

fn usage(input: u64, output: u64, reasoning: u64) -> Value {
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input + output,
    })
}

/// Runs a plan: lifecycle events, every item's events, and the terminal event.
pub(crate) fn transcript(plan: Plan, items: Vec<Item>) -> Vec<Value> {
    let mut e = Emitter {
        seq: 0,
        events: Vec::new(),
        obfuscation: plan.obfuscation,
    };
    let base = Value::Object(plan.base.clone());
    e.emit("response.created", json!({ "response": base }));
    e.emit("response.in_progress", json!({ "response": base }));

    let mut budget = plan.budget.unwrap_or(u64::MAX);
    let mut truncated = false;
    let mut output: Vec<Value> = Vec::new();
    let (mut out_tokens, mut reasoning_tokens) = (0u64, 0u64);

    for item in items {
        if budget == 0 {
            truncated = true;
            break;
        }
        let oi = output.len();
        match item {
            Item::Message { text } => {
                let id = format!("msg_{}", random_hex(48));
                e.emit(
                    "response.output_item.added",
                    json!({"output_index": oi, "item": {"id": id, "type": "message", "status": "in_progress", "content": [], "role": "assistant"}}),
                );
                let empty =
                    json!({"type": "output_text", "annotations": [], "logprobs": [], "text": ""});
                e.emit(
                    "response.content_part.added",
                    json!({"item_id": id, "output_index": oi, "content_index": 0, "part": empty}),
                );
                let pieces = split_text(&text);
                let sent = deltas(
                    &mut e,
                    "response.output_text.delta",
                    &pieces,
                    (&mut budget, &mut out_tokens, &mut truncated),
                    |piece| json!({"item_id": id, "output_index": oi, "content_index": 0, "delta": piece, "logprobs": []}),
                );
                e.emit(
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": oi, "content_index": 0, "text": sent, "logprobs": []}),
                );
                let part =
                    json!({"type": "output_text", "annotations": [], "logprobs": [], "text": sent});
                e.emit(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": oi, "content_index": 0, "part": part}),
                );
                let status = if truncated { "incomplete" } else { "completed" };
                let item = json!({"id": id, "type": "message", "status": status, "content": [part], "role": "assistant"});
                e.emit(
                    "response.output_item.done",
                    json!({"output_index": oi, "item": item}),
                );
                output.push(item);
            }
            Item::Refusal { text } => {
                let id = format!("msg_{}", random_hex(48));
                e.emit(
                    "response.output_item.added",
                    json!({"output_index": oi, "item": {"id": id, "type": "message", "status": "in_progress", "content": [], "role": "assistant"}}),
                );
                e.emit(
                    "response.content_part.added",
                    json!({"item_id": id, "output_index": oi, "content_index": 0, "part": {"type": "refusal", "refusal": ""}}),
                );
                let pieces = split_text(&text);
                let sent = deltas(
                    &mut e,
                    "response.refusal.delta",
                    &pieces,
                    (&mut budget, &mut out_tokens, &mut truncated),
                    |piece| json!({"item_id": id, "output_index": oi, "content_index": 0, "delta": piece}),
                );
                e.emit(
                    "response.refusal.done",
                    json!({"item_id": id, "output_index": oi, "content_index": 0, "refusal": sent}),
                );
                let part = json!({"type": "refusal", "refusal": sent});
                e.emit(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": oi, "content_index": 0, "part": part}),
                );
                let status = if truncated { "incomplete" } else { "completed" };
                let item = json!({"id": id, "type": "message", "status": status, "content": [part], "role": "assistant"});
                e.emit(
                    "response.output_item.done",
                    json!({"output_index": oi, "item": item}),
                );
                output.push(item);
            }
            Item::FunctionCall { name, arguments } => {
                let id = format!("fc_{}", random_hex(48));
                let call_id = format!("call_{}", random_alnum(24));
                e.emit(
                    "response.output_item.added",
                    json!({"output_index": oi, "item": {"id": id, "type": "function_call", "status": "in_progress", "arguments": "", "call_id": call_id, "name": name}}),
                );
                let pieces = split_json(&arguments);
                let sent = deltas(
                    &mut e,
                    "response.function_call_arguments.delta",
                    &pieces,
                    (&mut budget, &mut out_tokens, &mut truncated),
                    |piece| json!({"item_id": id, "output_index": oi, "delta": piece}),
                );
                // `name` is absent on the wire (§4.4), so it is left out here too.
                e.emit(
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": oi, "arguments": sent}),
                );
                let status = if truncated { "incomplete" } else { "completed" };
                let item = json!({"id": id, "type": "function_call", "status": status, "arguments": sent, "call_id": call_id, "name": name});
                e.emit(
                    "response.output_item.done",
                    json!({"output_index": oi, "item": item}),
                );
                output.push(item);
            }
            Item::Reasoning { summary, show } => {
                let id = format!("rs_{}", random_hex(48));
                let mut item = json!({"id": id, "type": "reasoning", "summary": []});
                if plan.encrypted_reasoning {
                    item["encrypted_content"] = json!(format!("gAAAAAB{}", random_alnum(120)));
                }
                e.emit(
                    "response.output_item.added",
                    json!({"output_index": oi, "item": item}),
                );
                let mut parts = Vec::new();
                if show {
                    for (si, part_text) in summary
                        .split("\n\n")
                        .filter(|p| !p.trim().is_empty())
                        .enumerate()
                    {
                        if budget == 0 {
                            truncated = true;
                            break;
                        }
                        e.emit(
                            "response.reasoning_summary_part.added",
                            json!({"item_id": id, "output_index": oi, "summary_index": si, "part": {"type": "summary_text", "text": ""}}),
                        );
                        let mut sent = String::new();
                        for piece in split_text(part_text) {
                            if budget == 0 {
                                truncated = true;
                                break;
                            }
                            budget -= 1;
                            out_tokens += 1;
                            reasoning_tokens += 1;
                            sent.push_str(&piece);
                            e.delta(
                                "response.reasoning_summary_text.delta",
                                json!({"item_id": id, "output_index": oi, "summary_index": si, "delta": piece}),
                            );
                        }
                        e.emit(
                            "response.reasoning_summary_text.done",
                            json!({"item_id": id, "output_index": oi, "summary_index": si, "text": sent}),
                        );
                        let part = json!({"type": "summary_text", "text": sent});
                        let mut done = json!({"item_id": id, "output_index": oi, "summary_index": si, "part": part});
                        if truncated {
                            done["status"] = json!("incomplete");
                        }
                        e.emit("response.reasoning_summary_part.done", done);
                        parts.push(part);
                        if truncated {
                            break;
                        }
                    }
                } else {
                    let hidden = split_text(&summary).len() as u64;
                    let spent = hidden.min(budget);
                    budget -= spent;
                    out_tokens += spent;
                    reasoning_tokens += spent;
                    truncated = spent < hidden;
                }
                item["summary"] = Value::Array(parts);
                e.emit(
                    "response.output_item.done",
                    json!({"output_index": oi, "item": item}),
                );
                output.push(item);
            }
        }
        if truncated {
            break;
        }
    }
    truncated |= plan.force_incomplete;

    let mut r = plan.base;
    if r.get("service_tier").and_then(Value::as_str) == Some("auto") {
        r.insert("service_tier".into(), json!("default"));
    }
    r.insert("output".into(), Value::Array(output));
    r.insert(
        "usage".into(),
        usage(plan.input_tokens, out_tokens, reasoning_tokens),
    );
    if truncated {
        r.insert("status".into(), json!("incomplete"));
        r.insert(
            "incomplete_details".into(),
            json!({"reason": "max_output_tokens"}),
        );
        e.emit("response.incomplete", json!({ "response": r }));
    } else {
        r.insert("status".into(), json!("completed"));
        r.insert("completed_at".into(), json!(now_unix()));
        e.emit("response.completed", json!({ "response": r }));
    }
    e.events
}

/// A streamed text answer (§6.1): created, in_progress, message item with one `output_text`
/// part whose deltas are [`split_text`] pieces of `text`, then `response.completed`.
pub fn text_events(model: &str, text: &str) -> Vec<Value> {
    let request = json!({ "model": model });
    transcript(
        Plan::for_request(&request),
        vec![Item::Message { text: text.into() }],
    )
}

/// A streamed function call (§6.2) of the function `name` with the JSON `arguments_json`,
/// split into deltas by [`split_json`]. The echoed `tools` hold a matching function tool.
pub fn tool_call_events(model: &str, name: &str, arguments_json: &str) -> Vec<Value> {
    let mut properties = Map::new();
    if let Ok(Value::Object(args)) = serde_json::from_str::<Value>(arguments_json) {
        for (k, v) in args {
            let ty = match v {
                Value::String(_) => "string",
                Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                Value::Number(_) => "number",
                Value::Bool(_) => "boolean",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
                Value::Null => "null",
            };
            properties.insert(k, json!({ "type": ty }));
        }
    }
    let required: Vec<&String> = properties.keys().collect();
    let request = json!({
        "model": model,
        "tools": [{
            "type": "function",
            "name": name,
            "description": null,
            "parameters": {"type": "object", "properties": properties, "required": required, "additionalProperties": false},
            "strict": true,
        }],
    });
    transcript(
        Plan::for_request(&request),
        vec![Item::FunctionCall {
            name: name.into(),
            arguments: arguments_json.into(),
        }],
    )
}

/// A refusal instead of an answer: one assistant message whose only content part is a
/// `refusal` (its deltas are [`split_text`] pieces of `refusal`, as `response.refusal.delta`),
/// then `response.completed` with an empty `output_text`.
pub fn refusal_events(model: &str, refusal: &str) -> Vec<Value> {
    let request = json!({ "model": model });
    transcript(
        Plan::for_request(&request),
        vec![Item::Refusal {
            text: refusal.into(),
        }],
    )
}

/// A reasoning-model answer (§4.2): a reasoning item at output_index 0 whose summary (`summary`,
/// parts separated by blank lines) streams as summary part/text events, then a message at
/// output_index 1 with `text`.
pub fn reasoning_events(model: &str, summary: &str, text: &str) -> Vec<Value> {
    let request = json!({"model": model, "reasoning": {"effort": "medium", "summary": "auto"}});
    transcript(
        Plan::for_request(&request),
        vec![
            Item::Reasoning {
                summary: summary.into(),
                show: true,
            },
            Item::Message { text: text.into() },
        ],
    )
}

/// An answer cut off by `max_output_tokens`: the message streams all of `text` (the part that
/// fitted), its item ends `incomplete`, and the stream ends with `response.incomplete`
/// (`incomplete_details.reason: "max_output_tokens"`).
pub fn incomplete_events(model: &str, text: &str) -> Vec<Value> {
    let pieces = split_text(text).len().max(16);
    let request = json!({ "model": model, "max_output_tokens": pieces });
    let mut plan = Plan::for_request(&request);
    plan.force_incomplete = true;
    let mut events = transcript(plan, vec![Item::Message { text: text.into() }]);
    // The message item itself was cut off too.
    for ev in &mut events {
        let ty = ev["type"].as_str().unwrap_or("").to_string();
        if ty == "response.output_item.done" {
            ev["item"]["status"] = json!("incomplete");
        } else if ty == "response.incomplete"
            && let Some(items) = ev["response"]["output"].as_array_mut()
        {
            for item in items {
                item["status"] = json!("incomplete");
            }
        }
    }
    events
}

/// A model failure (§7.4): created, in_progress, then `response.failed` whose Response has
/// `status: "failed"` and `error: {code: "server_error", message}`.
pub fn failed_events(model: &str) -> Vec<Value> {
    let base = response_base(&json!({ "model": model }));
    let mut e = Emitter {
        seq: 0,
        events: Vec::new(),
        obfuscation: false,
    };
    e.emit("response.created", json!({ "response": base }));
    e.emit("response.in_progress", json!({ "response": base }));
    let mut r = base;
    r.insert("status".into(), json!("failed"));
    r.insert(
        "error".into(),
        json!({"code": "server_error", "message": "The model failed to generate a response."}),
    );
    r.insert("usage".into(), usage(12, 0, 0));
    e.emit("response.failed", json!({ "response": r }));
    e.events
}

/// An in-stream `error` event (§7.4) carrying both the nested `error{type,code,message,param}`
/// object seen on the wire and the flat `code`/`message`/`param` keys the spec documents.
pub fn error_event(
    seq: u64,
    error_type: &str,
    code: &str,
    message: &str,
    param: Option<&str>,
) -> Value {
    json!({
        "type": "error",
        "sequence_number": seq,
        "error": {"type": error_type, "code": code, "message": message, "param": param},
        "code": code,
        "message": message,
        "param": param,
    })
}

/// An HTTP error body (§7.1): `{"error": {"message", "type", "param", "code"}}`.
pub fn error_body(
    message: &str,
    error_type: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Value {
    json!({"error": {"message": message, "type": error_type, "param": param, "code": code}})
}

/// One realistic instance of every Responses stream event type of §4.3 (all 58), plus an
/// undocumented `keepalive` and one unknown future type (`response.future_feature.delta`) —
/// 60 events with consecutive sequence numbers from 0. Not a coherent stream (it has several
/// terminal events); meant for lossless round-trip tests. Fixed ids, so the output is
/// deterministic.
pub fn every_event_type() -> Vec<Value> {
    let msg = "msg_68f237ea5fa08196a3c2e1b0d9f8e7d60a1b2c3d4e5f6071";
    let fc = "fc_68f237eb01a88196b1c2d3e4f5a6b7c80112233445566778";
    let rs = "rs_68f237e9c3dc8196a1b2c3d4e5f60718293a4b5c6d7e8f90";
    let ctc = "ctc_68f237ec11b48196c0ffee00112233445566778899aabbcc";
    let ws = "ws_68f237ed2a5c8196d4e5f60718293a4b5c6d7e8f90a1b2c3";
    let fs = "fs_68f237ee3b6d8196e5f60718293a4b5c6d7e8f90a1b2c3d4";
    let ci = "ci_68f237ef4c7e8196f60718293a4b5c6d7e8f90a1b2c3d4e5";
    let ig = "ig_68f237f05d8f81960718293a4b5c6d7e8f90a1b2c3d4e5f6";
    let mcpl = "mcpl_68f237f16e908196718293a4b5c6d7e8f90a1b2c3d4e5f6";
    let mcp = "mcp_68f237f27fa181968293a4b5c6d7e8f90a1b2c3d4e5f607";
    let sh = "sh_68f237f390b28196293a4b5c6d7e8f90a1b2c3d4e5f6071";
    let base = json!({
        "id": "resp_68f237e98214819693e879eb9deb3718a0b1c2d3e4f50617",
        "object": "response",
        "created_at": 1767225600,
        "status": "in_progress",
        "background": false,
        "completed_at": null,
        "error": null,
        "frequency_penalty": 0.0,
        "incomplete_details": null,
        "instructions": "You are terse.",
        "max_output_tokens": 256,
        "max_tool_calls": null,
        "model": "gpt-4.1-mini-2025-04-14",
        "output": [],
        "parallel_tool_calls": true,
        "presence_penalty": 0.0,
        "previous_response_id": null,
        "prompt_cache_key": "",
        "reasoning": {"effort": null, "summary": null},
        "safety_identifier": null,
        "service_tier": "auto",
        "store": true,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [{
            "type": "function", "name": "get_weather", "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false},
            "strict": true
        }],
        "top_logprobs": 0,
        "top_p": 0.9,
        "truncation": "disabled",
        "usage": null,
        "user": null,
        "metadata": {"tenant": "acme", "empty": ""}
    });
    let mut queued = base.clone();
    queued["status"] = json!("queued");
    queued["background"] = json!(true);
    let final_msg = json!({"id": msg, "type": "message", "status": "completed", "role": "assistant", "content": [
        {"type": "output_text", "annotations": [{"type": "url_citation", "url": "https://example.com/weather", "title": "Weather", "start_index": 0, "end_index": 8}], "logprobs": [], "text": "Sunny, 18°C."}
    ]});
    let usage_full = json!({
        "input_tokens": 52,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 15,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 67
    });
    let mut completed = base.clone();
    completed["status"] = json!("completed");
    completed["completed_at"] = json!(1767225601);
    completed["service_tier"] = json!("default");
    completed["output"] = json!([final_msg]);
    completed["usage"] = usage_full.clone();
    let mut incomplete = completed.clone();
    incomplete["status"] = json!("incomplete");
    incomplete["completed_at"] = Value::Null;
    incomplete["incomplete_details"] = json!({"reason": "max_output_tokens"});
    incomplete["output"][0]["status"] = json!("incomplete");
    let mut failed = base.clone();
    failed["status"] = json!("failed");
    failed["error"] =
        json!({"code": "server_error", "message": "The model failed to generate a response."});
    failed["usage"] = json!({
        "input_tokens": 52,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 0,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 52
    });

    let logprob = json!({"token": "Sun", "logprob": -0.0012, "top_logprobs": [{"token": "Sun", "logprob": -0.0012}, {"token": "Cloud", "logprob": -6.75}]});
    let list: Vec<(&str, Value)> = vec![
        ("response.created", json!({"response": base})),
        ("response.queued", json!({"response": queued})),
        ("response.in_progress", json!({"response": base})),
        (
            "response.output_item.added",
            json!({"output_index": 0, "item": {"id": msg, "type": "message", "status": "in_progress", "content": [], "role": "assistant"}}),
        ),
        (
            "response.content_part.added",
            json!({"item_id": msg, "output_index": 0, "content_index": 0, "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}}),
        ),
        (
            "response.output_text.delta",
            json!({"item_id": msg, "output_index": 0, "content_index": 0, "delta": "Sunny", "logprobs": [logprob], "obfuscation": "q8ZrT1vLm0XcAa"}),
        ),
        (
            "response.output_text.annotation.added",
            json!({"item_id": msg, "output_index": 0, "content_index": 0, "annotation_index": 0, "annotation": {"type": "url_citation", "url": "https://example.com/weather", "title": "Weather", "start_index": 0, "end_index": 8}}),
        ),
        (
            "response.output_text.done",
            json!({"item_id": msg, "output_index": 0, "content_index": 0, "text": "Sunny, 18°C.", "logprobs": []}),
        ),
        (
            "response.content_part.done",
            json!({"item_id": msg, "output_index": 0, "content_index": 0, "part": final_msg["content"][0]}),
        ),
        (
            "response.output_item.done",
            json!({"output_index": 0, "item": final_msg}),
        ),
        (
            "response.refusal.delta",
            json!({"item_id": msg, "output_index": 0, "content_index": 1, "delta": "I can't"}),
        ),
        (
            "response.refusal.done",
            json!({"item_id": msg, "output_index": 0, "content_index": 1, "refusal": "I can't help with that."}),
        ),
        (
            "response.function_call_arguments.delta",
            json!({"item_id": fc, "output_index": 1, "delta": "{\"city\":", "obfuscation": "Jq7Lw2Xc9Vb4Nm"}),
        ),
        (
            "response.function_call_arguments.done",
            json!({"item_id": fc, "output_index": 1, "arguments": "{\"city\":\"Paris\"}"}),
        ),
        (
            "response.custom_tool_call_input.delta",
            json!({"item_id": ctc, "output_index": 2, "delta": "SELECT 1"}),
        ),
        (
            "response.custom_tool_call_input.done",
            json!({"item_id": ctc, "output_index": 2, "input": "SELECT 1;"}),
        ),
        (
            "response.reasoning_summary_part.added",
            json!({"item_id": rs, "output_index": 3, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}),
        ),
        (
            "response.reasoning_summary_text.delta",
            json!({"item_id": rs, "output_index": 3, "summary_index": 0, "delta": "**Checking", "obfuscation": "Zx9Cv2"}),
        ),
        (
            "response.reasoning_summary_text.done",
            json!({"item_id": rs, "output_index": 3, "summary_index": 0, "text": "**Checking the weather**\n\nLooking up Paris."}),
        ),
        (
            "response.reasoning_summary_part.done",
            json!({"item_id": rs, "output_index": 3, "summary_index": 0, "part": {"type": "summary_text", "text": "**Checking the weather**\n\nLooking up Paris."}}),
        ),
        (
            "response.reasoning_text.delta",
            json!({"item_id": rs, "output_index": 3, "content_index": 0, "delta": "The user"}),
        ),
        (
            "response.reasoning_text.done",
            json!({"item_id": rs, "output_index": 3, "content_index": 0, "text": "The user wants the weather."}),
        ),
        (
            "response.web_search_call.in_progress",
            json!({"item_id": ws, "output_index": 4}),
        ),
        (
            "response.web_search_call.searching",
            json!({"item_id": ws, "output_index": 4}),
        ),
        (
            "response.web_search_call.completed",
            json!({"item_id": ws, "output_index": 4}),
        ),
        (
            "response.file_search_call.in_progress",
            json!({"item_id": fs, "output_index": 5}),
        ),
        (
            "response.file_search_call.searching",
            json!({"item_id": fs, "output_index": 5}),
        ),
        (
            "response.file_search_call.completed",
            json!({"item_id": fs, "output_index": 5}),
        ),
        (
            "response.code_interpreter_call.in_progress",
            json!({"item_id": ci, "output_index": 6}),
        ),
        (
            "response.code_interpreter_call_code.delta",
            json!({"item_id": ci, "output_index": 6, "delta": "print(1 + 1)"}),
        ),
        (
            "response.code_interpreter_call_code.done",
            json!({"item_id": ci, "output_index": 6, "code": "print(1 + 1)\n"}),
        ),
        (
            "response.code_interpreter_call.interpreting",
            json!({"item_id": ci, "output_index": 6}),
        ),
        (
            "response.code_interpreter_call.completed",
            json!({"item_id": ci, "output_index": 6}),
        ),
        (
            "response.image_generation_call.in_progress",
            json!({"item_id": ig, "output_index": 7}),
        ),
        (
            "response.image_generation_call.generating",
            json!({"item_id": ig, "output_index": 7}),
        ),
        (
            "response.image_generation_call.partial_image",
            json!({"item_id": ig, "output_index": 7, "partial_image_index": 0, "partial_image_b64": "iVBORw0KGgo=", "size": "1024x1024", "quality": "low", "background": "opaque", "output_format": "png"}),
        ),
        (
            "response.image_generation_call.completed",
            json!({"item_id": ig, "output_index": 7}),
        ),
        ("keepalive", json!({})),
        (
            "response.mcp_list_tools.in_progress",
            json!({"item_id": mcpl, "output_index": 8}),
        ),
        (
            "response.mcp_list_tools.completed",
            json!({"item_id": mcpl, "output_index": 8}),
        ),
        (
            "response.mcp_list_tools.failed",
            json!({"item_id": mcpl, "output_index": 8}),
        ),
        (
            "response.mcp_call.in_progress",
            json!({"item_id": mcp, "output_index": 9}),
        ),
        (
            "response.mcp_call_arguments.delta",
            json!({"item_id": mcp, "output_index": 9, "delta": "{\"repo\":"}),
        ),
        (
            "response.mcp_call_arguments.done",
            json!({"item_id": mcp, "output_index": 9, "arguments": "{\"repo\":\"openai/openai-python\"}"}),
        ),
        (
            "response.mcp_call.completed",
            json!({"item_id": mcp, "output_index": 9}),
        ),
        (
            "response.mcp_call.failed",
            json!({"item_id": mcp, "output_index": 9}),
        ),
        (
            "response.shell_call_command.added",
            json!({"output_index": 10, "command_index": 0, "command": ""}),
        ),
        (
            "response.shell_call_command.delta",
            json!({"output_index": 10, "command_index": 0, "delta": "ls -la", "obfuscation": "Rt5Yu8Io"}),
        ),
        (
            "response.shell_call_command.done",
            json!({"output_index": 10, "command_index": 0, "command": "ls -la"}),
        ),
        (
            "response.shell_call_output_content.delta",
            json!({"item_id": sh, "output_index": 10, "command_index": 0, "delta": {"stdout": "total 0\n", "stderr": ""}}),
        ),
        (
            "response.shell_call_output_content.done",
            json!({"item_id": sh, "output_index": 10, "command_index": 0, "output": [{"stdout": "total 0\n", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}}]}),
        ),
        ("response.audio.delta", json!({"delta": "UklGRiQAAABXQVZF"})),
        ("response.audio.done", json!({})),
        ("response.audio.transcript.delta", json!({"delta": "Sunny"})),
        ("response.audio.transcript.done", json!({})),
        (
            "response.future_feature.delta",
            json!({"item_id": msg, "output_index": 0, "delta": {"kind": "sparkle", "weights": [1.0, 0.5, 2], "nested": {"empty": [], "none": null, "flag": false}}, "obfuscation": "Gh3Jk6"}),
        ),
        (
            "error",
            json!({"error": {"type": "invalid_request_error", "code": "context_length_exceeded", "message": "Your input exceeds the context window of this model.", "param": "input"}, "code": "context_length_exceeded", "message": "Your input exceeds the context window of this model.", "param": "input"}),
        ),
        ("response.incomplete", json!({"response": incomplete})),
        ("response.failed", json!({"response": failed})),
        ("response.completed", json!({"response": completed})),
    ];
    let mut e = Emitter {
        seq: 0,
        events: Vec::with_capacity(list.len()),
        obfuscation: false,
    };
    for (ty, fields) in list {
        e.emit(ty, fields);
    }
    e.events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_text_round_trips_and_is_small() {
        for text in [
            "Welcome aboard - we're glad you're here.",
            "Hi there!",
            "  leading and trailing  ",
            "Ünïcödé wörds, extraordinarily long: supercalifragilistic!",
            "",
        ] {
            let pieces = split_text(text);
            assert_eq!(pieces.concat(), text);
            assert!(pieces.iter().all(|p| !p.is_empty()));
        }
        let pieces = split_text("Welcome aboard - we're glad you're here.");
        assert!(pieces.contains(&" ".to_string()) || pieces.contains(&"-".to_string()));
        assert!(pieces.contains(&".".to_string()));
    }

    #[test]
    fn split_json_matches_the_wire_example() {
        assert_eq!(
            split_json(r#"{"city":"Paris"}"#),
            vec![r#"{""#, "city", r#"":""#, "Paris", r#""}"#]
        );
    }

    fn assert_well_formed(events: &[Value], terminal: &str) {
        for (i, ev) in events.iter().enumerate() {
            assert_eq!(ev["sequence_number"], json!(i), "{ev}");
        }
        assert_eq!(events[0]["type"], "response.created");
        assert_eq!(events.last().unwrap()["type"], terminal);
        let terminals = events
            .iter()
            .filter(|e| {
                matches!(
                    e["type"].as_str(),
                    Some(
                        "response.completed" | "response.failed" | "response.incomplete" | "error"
                    )
                )
            })
            .count();
        assert_eq!(terminals, 1);
        assert!(
            events[..events.len() - 1]
                .iter()
                .all(|e| e.get("response").is_none_or(|r| r["usage"].is_null()))
        );
        let usage = &events.last().unwrap()["response"]["usage"];
        assert!(usage["input_tokens_details"]["cache_write_tokens"].is_u64());
    }

    #[test]
    fn text_transcript_is_consistent() {
        let events = text_events("gpt-4.1-mini", "Hi there!");
        assert_well_formed(&events, "response.completed");
        let deltas: String = events
            .iter()
            .filter(|e| e["type"] == "response.output_text.delta")
            .map(|e| {
                assert!(e["obfuscation"].is_string());
                e["delta"].as_str().unwrap()
            })
            .collect();
        assert_eq!(deltas, "Hi there!");
        let done = &events.last().unwrap()["response"];
        assert_eq!(done["output"][0]["content"][0]["text"], "Hi there!");
        assert_eq!(done["output"][0]["id"], events[2]["item"]["id"]);
    }

    #[test]
    fn other_transcripts_are_consistent() {
        let tool = tool_call_events("gpt-4.1-mini", "get_weather", r#"{"city":"Paris"}"#);
        assert_well_formed(&tool, "response.completed");
        assert_eq!(tool.len(), 11);
        let r = reasoning_events("o4-mini", "**Plan**\n\nSay hi.", "Hi!");
        assert_well_formed(&r, "response.completed");
        let out = &r.last().unwrap()["response"]["output"];
        assert_eq!(out[0]["type"], "reasoning");
        assert_eq!(out[0]["summary"].as_array().unwrap().len(), 2);
        assert_eq!(out[1]["content"][0]["text"], "Hi!");
        assert!(
            r.iter()
                .any(|e| e["type"] == "response.output_text.delta" && e["output_index"] == 1)
        );
        let inc = incomplete_events("gpt-4.1-mini", "Once upon a");
        assert_well_formed(&inc, "response.incomplete");
        assert_eq!(
            inc.last().unwrap()["response"]["incomplete_details"]["reason"],
            "max_output_tokens"
        );
        let refusal = refusal_events("gpt-4.1-mini", "I can't help with that.");
        assert_well_formed(&refusal, "response.completed");
        let deltas: String = refusal
            .iter()
            .filter(|e| e["type"] == "response.refusal.delta")
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        assert_eq!(deltas, "I can't help with that.");
        let content = &refusal.last().unwrap()["response"]["output"][0]["content"];
        assert_eq!(
            content,
            &json!([{"type": "refusal", "refusal": "I can't help with that."}])
        );
        let failed = failed_events("gpt-4.1-mini");
        assert_well_formed(&failed, "response.failed");
        assert_eq!(failed[2]["response"]["error"]["code"], "server_error");
    }

    #[test]
    fn budget_cuts_the_message() {
        let request = json!({"model": "gpt-4.1-mini", "max_output_tokens": 3});
        let mut plan = Plan::for_request(&request);
        plan.budget = Some(3);
        let events = transcript(
            plan,
            vec![Item::Message {
                text: "one two three four five".into(),
            }],
        );
        assert_well_formed(&events, "response.incomplete");
        let r = &events.last().unwrap()["response"];
        assert_eq!(r["output"][0]["content"][0]["text"], "one two three");
        assert_eq!(r["output"][0]["status"], "incomplete");
        assert_eq!(r["usage"]["output_tokens"], 3);
    }
}
