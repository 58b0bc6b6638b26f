//! The fake's memory: stored responses (with their whole event transcript and input items),
//! background jobs that advance with time, and conversations with their items.
//!
//! Everything here is plain data behind the fake's one mutex ([`super::Shared`]); nothing runs
//! on its own. A background job is a timeline: its events become due at fixed offsets from its
//! start ([`Job::due_at`]), so "the job as of now" is computed from the clock on every look
//! (`tokio::time::Instant`, so a test may pause time). [`Store::settle`] does the one deferred
//! side effect: appending a finished background response's items to its conversation.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::transcripts::{now_unix, random_hex};

/// At most this many stored responses are kept; the oldest go first (the `--demo` upstream can
/// run for days, and the benchmark sends many thousands of requests).
const MAX_STORED_RESPONSES: usize = 2048;
/// At most this many conversations are kept; the oldest go first.
const MAX_CONVERSATIONS: usize = 1024;
/// How far back a `previous_response_id` chain is followed.
const MAX_CHAIN: usize = 256;

/// A fresh id: `prefix` + `_` + 48 hex digits (OpenAI's `resp_…`, `msg_…`, `conv_…` shape).
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_hex(48))
}

/// How a background job advances: it stays `queued` for `queued`, then one event becomes due
/// every `per_event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pacing {
    /// Time in `queued` before `response.in_progress`.
    pub queued: Duration,
    /// Time between two events after that.
    pub per_event: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            queued: Duration::from_millis(150),
            per_event: Duration::from_millis(25),
        }
    }
}

/// The timeline of a background response. Its transcript is `response.created` (status
/// `queued`), `response.queued`, `response.in_progress`, the item events, the terminal event.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    started: Instant,
    pacing: Pacing,
    cancelled_at: Option<Instant>,
}

/// Whether event `i` of a background stream may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// It is due (and was not cut off by a cancel).
    Now,
    /// It becomes due at this instant.
    At(Instant),
    /// It never will: the job was cancelled before it, or there is no such event.
    Never,
}

impl Job {
    fn new(pacing: Pacing) -> Self {
        Job {
            started: Instant::now(),
            pacing,
            cancelled_at: None,
        }
    }

    /// When event `i` becomes due: `created` and `queued` at once, `in_progress` after the
    /// queued time, then one event per `per_event`.
    pub(crate) fn due_at(&self, i: usize) -> Instant {
        if i < 2 {
            return self.started;
        }
        let steps = u32::try_from(i - 2).unwrap_or(u32::MAX);
        self.started + self.pacing.queued + self.pacing.per_event.saturating_mul(steps)
    }

    /// How many of the `n` events are due at `t` (ignoring cancellation).
    fn due_count(&self, n: usize, t: Instant) -> usize {
        let start = self.started + self.pacing.queued;
        if t < start {
            return n.min(2);
        }
        let per = self.pacing.per_event.as_nanos();
        if per == 0 {
            return n;
        }
        let k = (t - start).as_nanos() / per;
        n.min(3usize.saturating_add(usize::try_from(k).unwrap_or(usize::MAX)))
    }

    /// How many of the `n` events were delivered before the job was cancelled (at least the two
    /// that exist from the start).
    fn delivered_before_cancel(&self, n: usize, cancelled: Instant) -> usize {
        let start = self.started + self.pacing.queued;
        if cancelled <= start {
            return n.min(2);
        }
        let per = self.pacing.per_event.as_nanos();
        if per == 0 {
            return n;
        }
        // Event 2 + j is due at start + j * per; it counts when that is before `cancelled`.
        let k = ((cancelled - start).as_nanos() - 1) / per;
        n.min(3usize.saturating_add(usize::try_from(k).unwrap_or(usize::MAX)))
    }

    /// Events visible at `now`: due ones, cut at the cancel if there was one.
    pub(crate) fn visible(&self, n: usize, now: Instant) -> usize {
        match self.cancelled_at {
            Some(c) => self.delivered_before_cancel(n, c),
            None => self.due_count(n, now),
        }
    }

    /// Whether event `i` of `n` may be sent at `now`.
    pub(crate) fn due(&self, i: usize, n: usize, now: Instant) -> Due {
        if i >= n {
            return Due::Never;
        }
        match self.cancelled_at {
            Some(c) if i < self.delivered_before_cancel(n, c) => Due::Now,
            Some(_) => Due::Never,
            None => {
                let at = self.due_at(i);
                if at <= now { Due::Now } else { Due::At(at) }
            }
        }
    }

    /// Whether all `n` events are due at `now` and no cancel came first.
    pub(crate) fn finished(&self, n: usize, now: Instant) -> bool {
        self.cancelled_at.is_none() && self.due_count(n, now) >= n
    }

    /// Whether the job was cancelled.
    pub(crate) fn cancelled(&self) -> bool {
        self.cancelled_at.is_some()
    }

    /// Total time from start to the terminal event of `n` events.
    fn duration(&self, n: usize) -> Duration {
        self.due_at(n.saturating_sub(1)) - self.started
    }
}

/// A response kept because it was created with `store` (the default).
#[derive(Debug)]
pub(crate) struct StoredResponse {
    /// The full transcript; `events[i]` has `sequence_number` i; the last one is terminal.
    pub events: Vec<Value>,
    /// The input items, with ids, oldest first.
    pub input_items: Vec<Value>,
    /// The `previous_response_id` it was created with.
    pub previous_response_id: Option<String>,
    /// The conversation it belongs to.
    pub conversation: Option<String>,
    /// For background responses: the timeline.
    pub job: Option<Job>,
}

impl StoredResponse {
    /// The terminal Response object (`completed` / `incomplete` / ...).
    pub(crate) fn final_response(&self) -> &Value {
        self.events
            .last()
            .and_then(|e| e.get("response"))
            .unwrap_or(&Value::Null)
    }

    /// The output items of the final response.
    pub(crate) fn output_items(&self) -> Vec<Value> {
        self.final_response()
            .get("output")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    /// Whether it runs as a background job.
    pub(crate) fn is_background(&self) -> bool {
        self.job.is_some()
    }

    /// Whether it is finished at `now` (always true for non-background responses).
    pub(crate) fn finished(&self, now: Instant) -> bool {
        self.job
            .as_ref()
            .is_none_or(|j| j.finished(self.events.len(), now))
    }

    /// The Response as of `now`: for a background job the last lifecycle snapshot (`queued`,
    /// `in_progress`) with the output streamed so far, or `cancelled` (usage null), or the final
    /// one once finished.
    pub(crate) fn response_at(&self, now: Instant) -> Value {
        let Some(job) = &self.job else {
            return self.final_response().clone();
        };
        let n = self.events.len();
        if job.finished(n, now) {
            return self.final_response().clone();
        }
        let seen = &self.events[..job.visible(n, now)];
        let mut r = seen
            .iter()
            .rev()
            .find_map(|e| e.get("response"))
            .cloned()
            .unwrap_or_else(|| self.final_response().clone());
        r["output"] = Value::Array(snapshot_output(seen));
        r["usage"] = Value::Null;
        if job.cancelled() {
            r["status"] = json!("cancelled");
        }
        r
    }

    /// Marks an unfinished background job cancelled at `now`; returns whether it was.
    pub(crate) fn cancel(&mut self, now: Instant) -> bool {
        let n = self.events.len();
        match &mut self.job {
            Some(job) if !job.cancelled() && !job.finished(n, now) => {
                job.cancelled_at = Some(now);
                true
            }
            _ => false,
        }
    }
}

/// Rebuilds `response.output` from the events seen so far: items as added, their content parts,
/// text and argument deltas appended, finished items replaced by their `done` copy.
pub(crate) fn snapshot_output(events: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let index = |e: &Value, key: &str| e.get(key).and_then(Value::as_u64).map(|i| i as usize);
    let append = |target: Option<&mut Value>, delta: &Value| {
        if let (Some(Value::String(s)), Some(d)) = (target, delta.as_str()) {
            s.push_str(d);
        }
    };
    for e in events {
        let Some(oi) = index(e, "output_index") else {
            continue;
        };
        let ty = e.get("type").and_then(Value::as_str).unwrap_or("");
        if matches!(
            ty,
            "response.output_item.added" | "response.output_item.done"
        ) {
            let item = e.get("item").cloned().unwrap_or(Value::Null);
            if oi < out.len() {
                out[oi] = item;
            } else if oi == out.len() {
                out.push(item);
            }
            continue;
        }
        let Some(item) = out.get_mut(oi) else {
            continue;
        };
        let delta = e.get("delta").unwrap_or(&Value::Null);
        match ty {
            "response.content_part.added" => {
                if let (Some(Value::Array(parts)), Some(part)) =
                    (item.get_mut("content"), e.get("part"))
                {
                    parts.push(part.clone());
                }
            }
            "response.output_text.delta" => {
                let ci = index(e, "content_index").unwrap_or(0);
                append(item.pointer_mut(&format!("/content/{ci}/text")), delta);
            }
            "response.function_call_arguments.delta" => append(item.get_mut("arguments"), delta),
            "response.reasoning_summary_part.added" => {
                if let (Some(Value::Array(parts)), Some(part)) =
                    (item.get_mut("summary"), e.get("part"))
                {
                    parts.push(part.clone());
                }
            }
            "response.reasoning_summary_text.delta" => {
                let si = index(e, "summary_index").unwrap_or(0);
                append(item.pointer_mut(&format!("/summary/{si}/text")), delta);
            }
            _ => {}
        }
    }
    out
}

/// A conversation: metadata and items, oldest first.
#[derive(Debug)]
pub(crate) struct Conversation {
    pub id: String,
    pub created_at: u64,
    pub metadata: Value,
    pub items: Vec<Value>,
}

impl Conversation {
    /// The `conversation` object.
    pub(crate) fn resource(&self) -> Value {
        json!({
            "id": self.id,
            "object": "conversation",
            "created_at": self.created_at,
            "metadata": self.metadata,
        })
    }
}

/// Everything the fake remembers between requests.
#[derive(Debug, Default)]
pub(crate) struct Store {
    responses: HashMap<String, StoredResponse>,
    /// Response ids in insertion order, for eviction.
    order: VecDeque<String>,
    conversations: HashMap<String, Conversation>,
    conversation_order: VecDeque<String>,
    /// Background responses whose items go to their conversation once they finish.
    pending: Vec<String>,
    /// Pacing of background jobs created from now on.
    pub pacing: Pacing,
}

impl Store {
    /// Applies what time has done: finished background responses add their input and output
    /// items to their conversation (cancelled ones add nothing).
    pub(crate) fn settle(&mut self, now: Instant) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        for id in pending {
            let Some(r) = self.responses.get(&id) else {
                continue;
            };
            if r.job.as_ref().is_some_and(Job::cancelled) {
                continue;
            }
            if !r.finished(now) {
                self.pending.push(id);
                continue;
            }
            let (conversation, mut items) = (r.conversation.clone(), r.input_items.clone());
            items.extend(r.output_items());
            if let Some(c) = conversation.and_then(|c| self.conversations.get_mut(&c)) {
                c.items.extend(items);
            }
        }
    }

    /// A stored response.
    pub(crate) fn response(&self, id: &str) -> Option<&StoredResponse> {
        self.responses.get(id)
    }

    /// A stored response, mutably.
    pub(crate) fn response_mut(&mut self, id: &str) -> Option<&mut StoredResponse> {
        self.responses.get_mut(id)
    }

    /// Forgets a response; returns whether it existed.
    pub(crate) fn delete_response(&mut self, id: &str) -> bool {
        self.order.retain(|o| o != id);
        self.responses.remove(id).is_some()
    }

    /// Stores a finished (or, with `pacing`, background) response. A finished one in a
    /// conversation adds its items to it now; a background one when it finishes.
    pub(crate) fn insert_response(
        &mut self,
        id: String,
        mut response: StoredResponse,
        background: Option<Pacing>,
    ) {
        if let Some(pacing) = background {
            let job = Job::new(pacing);
            let duration = job.duration(response.events.len());
            // The terminal Response says when the job will have completed.
            if let Some(r) = response
                .events
                .last_mut()
                .and_then(|e| e.get_mut("response"))
                && r.get("completed_at").is_some_and(Value::is_u64)
            {
                let created = r.get("created_at").and_then(Value::as_u64).unwrap_or(0);
                r["completed_at"] = json!(created + duration.as_secs_f64().ceil() as u64);
            }
            response.job = Some(job);
            if response.conversation.is_some() {
                self.pending.push(id.clone());
            }
        } else if let Some(conversation) = &response.conversation {
            let mut items = response.input_items.clone();
            items.extend(response.output_items());
            self.append_items(conversation, items);
        }
        while self.order.len() >= MAX_STORED_RESPONSES {
            if let Some(old) = self.order.pop_front() {
                self.responses.remove(&old);
            }
        }
        self.order.push_back(id.clone());
        self.responses.insert(id, response);
    }

    /// Adds items to a conversation (no-op if it is gone).
    pub(crate) fn append_items(&mut self, conversation: &str, items: Vec<Value>) {
        if let Some(c) = self.conversations.get_mut(conversation) {
            c.items.extend(items);
        }
    }

    /// The items a response sees before its own input: the whole `previous_response_id` chain
    /// (each response's input then output), oldest first.
    pub(crate) fn chain_items(&self, previous: &str) -> Vec<Value> {
        let mut chunks = Vec::new();
        let mut next = Some(previous.to_string());
        while let Some(id) = next.take() {
            let Some(r) = self.responses.get(&id) else {
                break;
            };
            let mut chunk = r.input_items.clone();
            chunk.extend(r.output_items());
            chunks.push(chunk);
            if chunks.len() < MAX_CHAIN {
                next = r.previous_response_id.clone();
            }
        }
        chunks.into_iter().rev().flatten().collect()
    }

    /// Creates a conversation.
    pub(crate) fn create_conversation(&mut self, metadata: Value, items: Vec<Value>) -> Value {
        let c = Conversation {
            id: new_id("conv"),
            created_at: now_unix(),
            metadata,
            items,
        };
        let resource = c.resource();
        while self.conversation_order.len() >= MAX_CONVERSATIONS {
            if let Some(old) = self.conversation_order.pop_front() {
                self.conversations.remove(&old);
            }
        }
        self.conversation_order.push_back(c.id.clone());
        self.conversations.insert(c.id.clone(), c);
        resource
    }

    /// A conversation.
    pub(crate) fn conversation(&self, id: &str) -> Option<&Conversation> {
        self.conversations.get(id)
    }

    /// A conversation, mutably.
    pub(crate) fn conversation_mut(&mut self, id: &str) -> Option<&mut Conversation> {
        self.conversations.get_mut(id)
    }

    /// Forgets a conversation; returns whether it existed.
    pub(crate) fn delete_conversation(&mut self, id: &str) -> bool {
        self.conversation_order.retain(|o| o != id);
        self.conversations.remove(id).is_some()
    }
}

/// The id prefix OpenAI uses for items of this type.
fn id_prefix(ty: &str) -> &'static str {
    match ty {
        "message" => "msg",
        "function_call" => "fc",
        "function_call_output" => "fco",
        "custom_tool_call" => "ctc",
        "custom_tool_call_output" => "ctco",
        "reasoning" => "rs",
        "compaction" => "cmp",
        "web_search_call" => "ws",
        "file_search_call" => "fs",
        "computer_call" => "cu",
        "computer_call_output" => "cuo",
        "mcp_approval_response" => "mcpr",
        _ => "item",
    }
}

/// "a string", "an integer", ... for error messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Why an item was refused: message, param, code (for a 400).
pub(crate) type BadItem = (String, String, &'static str);

fn invalid(message: String, param: String) -> BadItem {
    (message, param, "invalid_type")
}

fn absent(param: String) -> BadItem {
    (
        format!("Missing required parameter: '{param}'."),
        param,
        "missing_required_parameter",
    )
}

/// An input item as OpenAI stores it: an `id` if it had none; messages get `type: "message"`,
/// `status: "completed"` and their string `content` as one `input_text` part (`output_text`
/// for the assistant's). `param` names the item in error messages (e.g. `input[2]`).
pub(crate) fn normalize_item(item: &Value, param: &str) -> Result<Value, BadItem> {
    let Value::Object(src) = item else {
        return Err(invalid(
            format!(
                "Invalid type for '{param}': expected an object, but got {} instead.",
                kind(item)
            ),
            param.to_string(),
        ));
    };
    let mut m: Map<String, Value> = src.clone();
    let ty = match m.get("type") {
        None | Some(Value::Null) if m.contains_key("role") => "message".to_string(),
        Some(Value::String(t)) => t.clone(),
        None | Some(Value::Null) => return Err(absent(format!("{param}.type"))),
        Some(other) => {
            return Err(invalid(
                format!(
                    "Invalid type for '{param}.type': expected a string, but got {} instead.",
                    kind(other)
                ),
                format!("{param}.type"),
            ));
        }
    };
    if ty == "item_reference" {
        return Ok(Value::Object(m));
    }
    if ty == "message" {
        let role = match m.get("role") {
            Some(Value::String(r)) => r.clone(),
            _ => return Err(absent(format!("{param}.role"))),
        };
        let content = match m.get("content") {
            Some(Value::String(text)) if role == "assistant" => {
                json!([{"type": "output_text", "text": text, "annotations": [], "logprobs": []}])
            }
            Some(Value::String(text)) => json!([{"type": "input_text", "text": text}]),
            Some(Value::Array(parts)) => Value::Array(parts.clone()),
            Some(other) => {
                return Err(invalid(
                    format!(
                        "Invalid type for '{param}.content': expected one of a string or array of content parts, but got {} instead.",
                        kind(other)
                    ),
                    format!("{param}.content"),
                ));
            }
            None => return Err(absent(format!("{param}.content"))),
        };
        m.insert("content".into(), content);
        m.entry("status").or_insert(json!("completed"));
    } else if matches!(ty.as_str(), "function_call" | "function_call_output") {
        m.entry("status").or_insert(json!("completed"));
    }
    if !m.get("id").is_some_and(Value::is_string) {
        m.insert("id".into(), json!(new_id(id_prefix(&ty))));
    }
    m.insert("type".into(), json!(ty));
    Ok(Value::Object(m))
}

/// A request's `input` as stored input items (a string is one user message).
pub(crate) fn normalize_input(input: Option<&Value>) -> Result<Vec<Value>, BadItem> {
    match input {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![normalize_item(
            &json!({"role": "user", "content": text}),
            "input",
        )?]),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| normalize_item(item, &format!("input[{i}]")))
            .collect(),
        Some(other) => Err(invalid(
            format!(
                "Invalid type for 'input': expected one of a string or array of input items, but got {} instead.",
                kind(other)
            ),
            "input".to_string(),
        )),
    }
}

/// Whether an item is a user message.
pub(crate) fn is_user_message(item: &Value) -> bool {
    item.get("type").and_then(Value::as_str) == Some("message")
        && item.get("role").and_then(Value::as_str) == Some("user")
}

/// The text of a message item's content parts, joined by spaces.
pub(crate) fn message_text(item: &Value) -> Option<String> {
    let parts = item.get("content")?.as_array()?;
    let texts: Vec<&str> = parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    (!texts.is_empty()).then(|| texts.join(" "))
}

/// Characters of an item's text, for token estimates: message text, call names and arguments,
/// call outputs; the JSON of anything else.
pub(crate) fn item_chars(item: &Value) -> usize {
    let len = |key: &str| match item.get(key) {
        Some(Value::String(s)) => s.chars().count(),
        Some(Value::Null) | None => 0,
        Some(other) => other.to_string().len(),
    };
    match item.get("type").and_then(Value::as_str) {
        Some("message") => message_text(item).map_or(0, |t| t.chars().count()),
        Some("function_call" | "custom_tool_call") => len("name") + len("arguments") + len("input"),
        Some("function_call_output" | "custom_tool_call_output") => len("output"),
        _ => item.to_string().len(),
    }
}

/// Which way a list goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// Oldest first.
    Asc,
    /// Newest first (OpenAI's default).
    Desc,
}

/// One page of a list: `limit` items in `order` after the item `after`. An unknown `after`
/// gives an empty page.
pub(crate) fn page(items: &[Value], limit: usize, order: Order, after: Option<&str>) -> Value {
    let ordered: Vec<&Value> = match order {
        Order::Asc => items.iter().collect(),
        Order::Desc => items.iter().rev().collect(),
    };
    let start = match after {
        None => 0,
        Some(after) => ordered
            .iter()
            .position(|i| i.get("id").and_then(Value::as_str) == Some(after))
            .map_or(ordered.len(), |p| p + 1),
    };
    let rest = &ordered[start..];
    let data: Vec<Value> = rest.iter().take(limit).map(|v| (*v).clone()).collect();
    list(data, rest.len() > limit)
}

/// `{"object":"list","data":…,"first_id","last_id","has_more"}` (ids null when empty).
pub(crate) fn list(data: Vec<Value>, has_more: bool) -> Value {
    let id = |v: Option<&Value>| v.and_then(|v| v.get("id")).cloned().unwrap_or(Value::Null);
    json!({
        "object": "list",
        "first_id": id(data.first()),
        "last_id": id(data.last()),
        "has_more": has_more,
        "data": data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(queued_ms: u64, per_ms: u64) -> Job {
        Job::new(Pacing {
            queued: Duration::from_millis(queued_ms),
            per_event: Duration::from_millis(per_ms),
        })
    }

    #[test]
    fn job_timeline_and_cancel() {
        let mut j = job(100, 10);
        let t0 = j.started;
        let ms = Duration::from_millis;
        assert_eq!(j.due_at(0), t0);
        assert_eq!(j.due_at(1), t0);
        assert_eq!(j.due_at(2), t0 + ms(100));
        assert_eq!(j.due_at(5), t0 + ms(130));
        assert_eq!(j.visible(8, t0), 2);
        assert_eq!(j.visible(8, t0 + ms(99)), 2);
        assert_eq!(j.visible(8, t0 + ms(100)), 3);
        assert_eq!(j.visible(8, t0 + ms(129)), 5);
        assert_eq!(j.visible(8, t0 + ms(130)), 6);
        assert!(!j.finished(8, t0 + ms(149)));
        assert!(j.finished(8, t0 + ms(150)));
        assert_eq!(j.due(5, 8, t0 + ms(120)), Due::At(t0 + ms(130)));
        assert_eq!(j.due(5, 8, t0 + ms(130)), Due::Now);
        assert_eq!(j.due(8, 8, t0), Due::Never);
        // Cancelled exactly when event 5 became due: event 5 was not delivered.
        j.cancelled_at = Some(t0 + ms(130));
        assert_eq!(j.visible(8, t0 + ms(999)), 5);
        assert_eq!(j.due(4, 8, t0 + ms(999)), Due::Now);
        assert_eq!(j.due(5, 8, t0 + ms(999)), Due::Never);
        assert!(!j.finished(8, t0 + ms(999)));
        // Cancelled while queued: created and queued still count as sent.
        j.cancelled_at = Some(t0);
        assert_eq!(j.visible(8, t0 + ms(999)), 2);
    }

    #[test]
    fn items_get_ids_and_normal_content() {
        let items = normalize_input(Some(&json!([
            {"role": "user", "content": "Hi"},
            {"type": "message", "role": "assistant", "content": "Hello"},
            {"id": "msg_keep", "role": "user", "content": [{"type": "input_text", "text": "x"}]},
            {"type": "function_call_output", "call_id": "call_1", "output": "{}"},
        ])))
        .unwrap();
        assert!(items[0]["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(items[0]["id"].as_str().unwrap().len(), 52);
        assert_eq!(items[0]["type"], "message");
        assert_eq!(items[0]["status"], "completed");
        assert_eq!(
            items[0]["content"],
            json!([{"type": "input_text", "text": "Hi"}])
        );
        assert_eq!(items[1]["content"][0]["type"], "output_text");
        assert_eq!(items[2]["id"], "msg_keep");
        assert!(items[3]["id"].as_str().unwrap().starts_with("fco_"));
        let one = normalize_input(Some(&json!("Hello"))).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0]["role"], "user");
        let (msg, param, code) =
            normalize_input(Some(&json!([{"role": "user", "content": 5}]))).unwrap_err();
        assert_eq!((param.as_str(), code), ("input[0].content", "invalid_type"));
        assert!(msg.contains("an integer"), "{msg}");
        assert_eq!(
            normalize_input(Some(&json!([{"role": "user"}]))).unwrap_err(),
            (
                "Missing required parameter: 'input[0].content'.".to_string(),
                "input[0].content".to_string(),
                "missing_required_parameter"
            )
        );
        assert_eq!(normalize_input(Some(&json!(3))).unwrap_err().1, "input");
        assert_eq!(
            normalize_input(Some(&json!(["x"]))).unwrap_err().1,
            "input[0]"
        );
    }

    #[test]
    fn paging() {
        let items: Vec<Value> = (0..5).map(|i| json!({"id": format!("i{i}")})).collect();
        let ids = |v: &Value| -> Vec<String> {
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_string())
                .collect()
        };
        let p = page(&items, 2, Order::Desc, None);
        assert_eq!(ids(&p), ["i4", "i3"]);
        assert_eq!(p["first_id"], "i4");
        assert_eq!(p["last_id"], "i3");
        assert_eq!(p["has_more"], true);
        let p = page(&items, 2, Order::Desc, Some("i3"));
        assert_eq!(ids(&p), ["i2", "i1"]);
        let p = page(&items, 2, Order::Asc, Some("i2"));
        assert_eq!(ids(&p), ["i3", "i4"]);
        assert_eq!(p["has_more"], false);
        let p = page(&items, 20, Order::Asc, Some("nope"));
        assert!(ids(&p).is_empty());
        assert!(p["first_id"].is_null());
    }

    #[test]
    fn snapshot_replays_deltas() {
        let events = super::super::text_events("gpt-4.1-mini", "one two three");
        // Up to and including the second delta.
        let cut = events
            .iter()
            .enumerate()
            .filter(|(_, e)| e["type"] == "response.output_text.delta")
            .nth(1)
            .unwrap()
            .0;
        let out = snapshot_output(&events[..=cut]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["status"], "in_progress");
        assert_eq!(out[0]["content"][0]["text"], "one two");
        let all = snapshot_output(&events);
        assert_eq!(all[0]["status"], "completed");
        assert_eq!(all[0]["content"][0]["text"], "one two three");
    }
}
