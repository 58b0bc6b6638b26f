//! The Responses lifecycle routes besides create (`GET`/`DELETE /v1/responses/{id}`, `cancel`,
//! `input_items`, `input_tokens`, `compact`) and the live body of a background stream, which
//! sends each event of the job's transcript when it becomes due.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::Stream;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::routes::{bad_request, missing, model, non_null, object_body, resolve_context};
use super::store::{self, Due, Order, new_id};
use super::transcripts::{estimate_tokens, now_unix};
use super::{Ending, FLUSH_BEFORE_ABORT, Framing, RecordedRequest, Reply, Shared, Step};

/// Decodes `%XX` escapes (and `+` as a space when `plus` is set); invalid escapes stay as they
/// are.
pub(super) fn percent_decode(s: &str, plus: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded query parameters of a request, in order (repeats kept).
pub(super) fn query(req: &RecordedRequest) -> Vec<(String, String)> {
    let Some((_, q)) = req.path.split_once('?') else {
        return Vec::new();
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn bool_query(q: &[(String, String)], name: &str) -> Result<Option<bool>, Reply> {
    match param(q, name) {
        None => Ok(None),
        Some("true" | "1" | "True") => Ok(Some(true)),
        Some("false" | "0" | "False") => Ok(Some(false)),
        Some(other) => Err(bad_request(
            &format!("Invalid value for '{name}': expected a boolean, but got '{other}' instead."),
            Some(name),
            Some("invalid_type"),
        )),
    }
}

/// `limit`, `order` and `after` of a list request (OpenAI's cursor paging).
pub(super) struct PageParams {
    limit: usize,
    order: Order,
    after: Option<String>,
}

impl PageParams {
    /// Parses them: `limit` 1..=100 (default 20), `order` `asc`|`desc` (default `desc`).
    pub(super) fn parse(req: &RecordedRequest) -> Result<Self, Reply> {
        let q = query(req);
        let limit = match param(&q, "limit") {
            None => 20,
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if n < 1 => {
                    return Err(bad_request(
                        &format!(
                            "Invalid 'limit': integer below minimum value. Expected a value >= 1, but got {n} instead."
                        ),
                        Some("limit"),
                        Some("integer_below_min_value"),
                    ));
                }
                Ok(n) if n > 100 => {
                    return Err(bad_request(
                        &format!(
                            "Invalid 'limit': integer above maximum value. Expected a value <= 100, but got {n} instead."
                        ),
                        Some("limit"),
                        Some("integer_above_max_value"),
                    ));
                }
                Ok(n) => n as usize,
                Err(_) => {
                    return Err(bad_request(
                        &format!(
                            "Invalid type for 'limit': expected an integer, but got '{v}' instead."
                        ),
                        Some("limit"),
                        Some("invalid_type"),
                    ));
                }
            },
        };
        let order = match param(&q, "order") {
            None | Some("desc") => Order::Desc,
            Some("asc") => Order::Asc,
            Some(other) => {
                return Err(bad_request(
                    &format!("Invalid value: '{other}'. Supported values are: 'asc' and 'desc'."),
                    Some("order"),
                    Some("invalid_value"),
                ));
            }
        };
        let after = param(&q, "after")
            .filter(|a| !a.is_empty())
            .map(str::to_string);
        Ok(PageParams {
            limit,
            order,
            after,
        })
    }

    /// The page of `items`.
    pub(super) fn page(&self, items: &[Value]) -> Value {
        store::page(items, self.limit, self.order, self.after.as_deref())
    }
}

/// 404 for a response that is not stored (never was, `store: false`, or deleted).
pub(super) fn response_not_found(id: &str) -> Reply {
    Reply::error(
        404,
        &format!("Response with id '{id}' not found."),
        "invalid_request_error",
        None,
        None,
    )
}

/// `GET /v1/responses/{id}`: the Response as of now, or with `stream=true` the SSE events of a
/// background response after `starting_after`.
pub(super) fn get(req: &RecordedRequest, shared: &Shared, id: &str) -> Result<Reply, Reply> {
    let q = query(req);
    let stream = bool_query(&q, "stream")?.unwrap_or(false);
    let starting_after = match param(&q, "starting_after") {
        None => None,
        Some(v) => Some(v.trim().parse::<i64>().map_err(|_| {
            bad_request(
                &format!(
                    "Invalid type for 'starting_after': expected an integer, but got '{v}' instead."
                ),
                Some("starting_after"),
                Some("invalid_type"),
            )
        })?),
    };
    let obfuscation = bool_query(&q, "include_obfuscation")?.unwrap_or(true);
    let now = Instant::now();
    let mut inner = shared.lock();
    inner.store.settle(now);
    let r = inner
        .store
        .response(id)
        .ok_or_else(|| response_not_found(id))?;
    if !stream {
        return Ok(Reply::json(200, &r.response_at(now)));
    }
    if !r.is_background() {
        return Err(bad_request(
            "Streaming is only supported for background responses.",
            Some("stream"),
            None,
        ));
    }
    let next = starting_after.map_or(0, |n| usize::try_from(n.saturating_add(1)).unwrap_or(0));
    Ok(Reply::live(LiveSpec {
        id: id.to_string(),
        next,
        strip_obfuscation: !obfuscation,
    }))
}

/// `DELETE /v1/responses/{id}`.
pub(super) fn delete(shared: &Shared, id: &str) -> Result<Reply, Reply> {
    let deleted = shared.lock().store.delete_response(id);
    shared.notify();
    if !deleted {
        return Err(response_not_found(id));
    }
    Ok(Reply::json(
        200,
        &json!({"id": id, "object": "response", "deleted": true}),
    ))
}

/// `POST /v1/responses/{id}/cancel`: an unfinished background job is cancelled now; a finished
/// one comes back as it is.
pub(super) fn cancel(shared: &Shared, id: &str) -> Result<Reply, Reply> {
    let now = Instant::now();
    let reply = {
        let mut inner = shared.lock();
        inner.store.settle(now);
        let r = inner
            .store
            .response_mut(id)
            .ok_or_else(|| response_not_found(id))?;
        if !r.is_background() {
            return Err(bad_request(
                "Only responses created with background=true can be cancelled.",
                None,
                None,
            ));
        }
        r.cancel(now);
        Reply::json(200, &r.response_at(now))
    };
    // Wakes live streams of the job so they stop.
    shared.notify();
    Ok(reply)
}

/// `GET /v1/responses/{id}/input_items`.
pub(super) fn input_items(
    req: &RecordedRequest,
    shared: &Shared,
    id: &str,
) -> Result<Reply, Reply> {
    let paging = PageParams::parse(req)?;
    let inner = shared.lock();
    let r = inner
        .store
        .response(id)
        .ok_or_else(|| response_not_found(id))?;
    Ok(Reply::json(200, &paging.page(&r.input_items)))
}

/// Characters of a create-like body that count as input: `input` (as sent), `instructions` and
/// `tools`, plus the text of the items it continues from.
pub(super) fn input_chars(body: &Value, context: &[Value]) -> usize {
    non_null(body, "input").map_or(0, |i| i.to_string().len())
        + non_null(body, "instructions").map_or(0, |i| i.to_string().len())
        + non_null(body, "tools").map_or(0, |t| t.to_string().len())
        + context.iter().map(store::item_chars).sum::<usize>()
}

/// The fake's input token count: a quarter token per character plus a fixed overhead, the same
/// figure `usage.input_tokens` of a create with the same body reports.
pub(super) fn input_tokens_of(body: &Value, context: &[Value]) -> u64 {
    estimate_tokens(input_chars(body, context)) + 7
}

/// `POST /v1/responses/input_tokens`.
pub(super) fn input_tokens(req: &RecordedRequest, shared: &Shared) -> Result<Reply, Reply> {
    let body = object_body(req, true)?;
    store::normalize_input(non_null(&body, "input"))
        .map_err(|(m, p, c)| bad_request(&m, Some(&p), Some(c)))?;
    let context = resolve_context(&body, shared)?.items;
    Ok(Reply::json(
        200,
        &json!({"object": "response.input_tokens", "input_tokens": input_tokens_of(&body, &context)}),
    ))
}

/// `POST /v1/responses/compact`: the user messages are kept, everything else becomes one opaque
/// `compaction` item.
pub(super) fn compact(req: &RecordedRequest, shared: &Shared) -> Result<Reply, Reply> {
    let body = object_body(req, true)?;
    if non_null(&body, "model").is_none() {
        return Err(missing("model"));
    }
    let model = model(&body, None)?.to_string();
    if non_null(&body, "conversation").is_some() {
        return Err(bad_request(
            "Unknown parameter: 'conversation'.",
            Some("conversation"),
            Some("unknown_parameter"),
        ));
    }
    let input = store::normalize_input(non_null(&body, "input"))
        .map_err(|(m, p, c)| bad_request(&m, Some(&p), Some(c)))?;
    let mut items = resolve_context(&body, shared)?.items;
    items.extend(input);
    let kept: Vec<Value> = items
        .iter()
        .filter(|i| store::is_user_message(i))
        .cloned()
        .collect();
    let dropped = items.len() - kept.len();
    let summary = json!({
        "fake_compaction": true,
        "model": model,
        "items": items.len(),
        "user_messages": kept.len(),
        "compacted_items": dropped,
    })
    .to_string();
    let encrypted = base64::engine::general_purpose::STANDARD.encode(summary.as_bytes());
    let input_tokens = input_tokens_of(&body, &items);
    let output_tokens = estimate_tokens(summary.len());
    let mut output = kept;
    output.push(json!({"type": "compaction", "id": new_id("cmp"), "encrypted_content": encrypted}));
    Ok(Reply::json(
        200,
        &json!({
            "id": new_id("cmp"),
            "object": "response.compaction",
            "created_at": now_unix(),
            "output": output,
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            },
        }),
    ))
}

/// What a live body streams: the events of background response `id` from index `next` on.
#[derive(Debug, Clone)]
pub(crate) struct LiveSpec {
    /// The response id.
    pub id: String,
    /// Index (= sequence number) of the first event to send.
    pub next: usize,
    /// Remove `obfuscation` from the events (`include_obfuscation=false`).
    pub strip_obfuscation: bool,
}

/// The state of one live body.
struct Live {
    shared: Arc<Shared>,
    spec: LiveSpec,
    framing: Framing,
    ending: Ending,
    /// With [`Ending::Drop`] / [`Ending::Stall`]: send this many events, then drop or stall
    /// (`framing.limit`, default all but the last).
    cut: Option<usize>,
    /// Events sent by this body.
    sent: usize,
    /// The framing's own pause is owed before the next event.
    pause: bool,
    queue: VecDeque<Step>,
    changed: watch::Receiver<()>,
    over: bool,
}

/// What the next event of a live body is.
enum Next {
    /// Send this (it is due).
    Send(Value),
    /// Wait until then (or until something changes).
    Wait(Instant),
    /// The transcript is done.
    End,
    /// Cancelled or deleted: stop.
    Stop,
}

impl Live {
    fn look(&self) -> Next {
        let now = Instant::now();
        let inner = self.shared.lock();
        let Some(r) = inner.store.response(&self.spec.id) else {
            return Next::Stop;
        };
        let Some(job) = &r.job else {
            return Next::Stop;
        };
        let n = r.events.len();
        if self.spec.next >= n {
            // Nothing after `starting_after`, or the terminal event was sent.
            return if job.cancelled() {
                Next::Stop
            } else {
                Next::End
            };
        }
        match job.due(self.spec.next, n, now) {
            Due::Now => Next::Send(r.events[self.spec.next].clone()),
            Due::At(at) => Next::Wait(at),
            Due::Never => Next::Stop,
        }
    }

    fn render(&self, mut event: Value) -> Bytes {
        if self.spec.strip_obfuscation
            && let Some(m) = event.as_object_mut()
        {
            m.remove("obfuscation");
        }
        super::render_event(&event, &self.framing)
    }

    fn push_data(&mut self, bytes: Bytes) {
        match self.framing.chunk_size.filter(|s| *s > 0) {
            Some(size) => {
                let mut at = 0;
                while at < bytes.len() {
                    let end = (at + size).min(bytes.len());
                    self.queue.push_back(Step::Data(bytes.slice(at..end)));
                    at = end;
                }
            }
            None => self.queue.push_back(Step::Data(bytes)),
        }
    }

    /// The transcript ran out: end as the scenario says (as a planned body would).
    fn end(&mut self) {
        self.over = true;
        match self.ending {
            Ending::Close => {
                if self.framing.done_marker {
                    let nl = self.framing.line_ending.as_str();
                    self.push_data(Bytes::from(format!("data: [DONE]{nl}{nl}")));
                }
            }
            Ending::Drop => {
                self.queue.push_back(Step::Sleep(FLUSH_BEFORE_ABORT));
                self.queue.push_back(Step::Abort);
            }
            Ending::Stall => self.queue.push_back(Step::Stall),
        }
    }

    /// Sends a due event, or cuts the body here if the scenario says so.
    fn send(&mut self, event: Value) {
        if self.cut == Some(self.sent) {
            self.over = true;
            match self.ending {
                Ending::Drop => {
                    let bytes = self.render(event);
                    self.queue
                        .push_back(Step::Data(bytes.slice(..bytes.len() / 2)));
                    self.queue.push_back(Step::Sleep(FLUSH_BEFORE_ABORT));
                    self.queue.push_back(Step::Abort);
                }
                Ending::Stall | Ending::Close => self.queue.push_back(Step::Stall),
            }
            return;
        }
        let bytes = self.render(event);
        self.push_data(bytes);
        self.spec.next += 1;
        self.sent += 1;
        self.pause = self.framing.delay.is_some();
    }

    async fn next_step(&mut self) -> Option<Step> {
        loop {
            if let Some(step) = self.queue.pop_front() {
                return Some(step);
            }
            if self.over {
                return None;
            }
            if std::mem::take(&mut self.pause)
                && let Some(d) = self.framing.delay
            {
                // The framing's own pause between events, on top of the job's pacing.
                tokio::time::sleep(d).await;
            }
            self.changed.borrow_and_update();
            match self.look() {
                // Cancelled or deleted: stop sending and close cleanly.
                Next::Stop => self.over = true,
                Next::End => self.end(),
                Next::Wait(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = self.changed.changed() => {}
                    }
                }
                Next::Send(event) => self.send(event),
            }
        }
    }
}

/// The body steps of a live (background) stream: each event of the job's transcript from
/// `spec.next` on, sent when it becomes due, framed per `framing` and cut per `ending` (counting
/// this body's events); it closes after the terminal event, or as soon as the job is cancelled
/// or deleted.
pub(super) fn live_steps(
    shared: Arc<Shared>,
    spec: LiveSpec,
    framing: Framing,
    ending: Ending,
) -> Pin<Box<dyn Stream<Item = Step> + Send>> {
    let n = shared
        .lock()
        .store
        .response(&spec.id)
        .map_or(0, |r| r.events.len());
    let cut = match ending {
        Ending::Close => None,
        Ending::Drop | Ending::Stall => Some(
            framing
                .limit
                .unwrap_or(n.saturating_sub(spec.next).saturating_sub(1)),
        ),
    };
    let changed = shared.changed.subscribe();
    let live = Live {
        shared,
        spec,
        framing,
        ending,
        cut,
        sent: 0,
        pause: false,
        queue: VecDeque::new(),
        changed,
        over: false,
    };
    Box::pin(futures_util::stream::unfold(live, |mut live| async move {
        let step = live.next_step().await?;
        Some((step, live))
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use futures_util::StreamExt as _;

    use super::super::store::{Pacing, StoredResponse};
    use super::super::transcripts::as_background;
    use super::super::{Inner, text_events};
    use super::*;

    /// A fake's shared state holding one background job; returns it with the job's id and its
    /// number of events.
    fn shared_with_job(pacing: Pacing) -> (Arc<Shared>, String, usize) {
        let events = as_background(text_events("gpt-4.1-mini", "one two three"));
        let id = events[0]["response"]["id"].as_str().unwrap().to_string();
        let n = events.len();
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            changed: watch::channel(()).0,
            shutdown: watch::channel(false).1,
        });
        let stored = StoredResponse {
            events,
            input_items: Vec::new(),
            previous_response_id: None,
            conversation: None,
            job: None,
        };
        shared
            .lock()
            .store
            .insert_response(id.clone(), stored, Some(pacing));
        (shared, id, n)
    }

    fn seq(step: Option<Step>) -> u64 {
        let Some(Step::Data(bytes)) = step else {
            panic!("expected data, got {step:?}");
        };
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
        serde_json::from_str::<Value>(data).unwrap()["sequence_number"]
            .as_u64()
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn live_body_sends_each_event_when_due_and_stops_at_a_cancel() {
        let ms = Duration::from_millis;
        let (shared, id, n) = shared_with_job(Pacing {
            queued: ms(100),
            per_event: ms(10),
        });
        let spec = LiveSpec {
            id: id.clone(),
            next: 0,
            strip_obfuscation: false,
        };
        let t0 = Instant::now();
        let mut live = live_steps(shared.clone(), spec, Framing::default(), Ending::Close);
        assert_eq!(seq(live.next().await), 0);
        assert_eq!(seq(live.next().await), 1);
        assert_eq!(Instant::now(), t0, "created and queued come at once");
        assert_eq!(seq(live.next().await), 2);
        assert_eq!(
            Instant::now() - t0,
            ms(100),
            "in_progress after the queued time"
        );
        assert_eq!(seq(live.next().await), 3);
        assert_eq!(Instant::now() - t0, ms(110));
        assert_eq!(seq(live.next().await), 4);
        assert_eq!(Instant::now() - t0, ms(120));
        // Cancel while the body waits for event 5: it ends at once, without waiting.
        let waiting = tokio::spawn(async move { live.next().await.is_none() });
        tokio::time::sleep(ms(5)).await;
        assert!(
            shared
                .lock()
                .store
                .response_mut(&id)
                .unwrap()
                .cancel(Instant::now())
        );
        shared.notify();
        assert!(waiting.await.unwrap(), "the body ended");
        assert_eq!(Instant::now() - t0, ms(125));

        // A body resumed after the cancel sends what was due before it, then ends.
        let spec = LiveSpec {
            id,
            next: 3,
            strip_obfuscation: false,
        };
        let mut resumed = live_steps(shared, spec, Framing::default(), Ending::Close);
        assert_eq!(seq(resumed.next().await), 3);
        assert_eq!(seq(resumed.next().await), 4);
        assert!(resumed.next().await.is_none());
        assert!(n > 6);
    }

    #[tokio::test(start_paused = true)]
    async fn live_body_cut_by_a_scenario_keeps_the_pacing() {
        let ms = Duration::from_millis;
        let (shared, id, _) = shared_with_job(Pacing {
            queued: ms(50),
            per_event: ms(20),
        });
        let spec = LiveSpec {
            id,
            next: 2,
            strip_obfuscation: false,
        };
        let framing = Framing {
            limit: Some(2),
            ..Framing::default()
        };
        let t0 = Instant::now();
        let mut live = live_steps(shared, spec, framing, Ending::Drop);
        assert_eq!(seq(live.next().await), 2);
        assert_eq!(seq(live.next().await), 3);
        assert_eq!(Instant::now() - t0, ms(70));
        // Half of event 4, when it is due; then the abort.
        let Some(Step::Data(half)) = live.next().await else {
            panic!("expected half an event");
        };
        assert_eq!(Instant::now() - t0, ms(90));
        assert!(!half.ends_with(b"\n\n"));
        assert!(matches!(live.next().await, Some(Step::Sleep(_))));
        assert!(matches!(live.next().await, Some(Step::Abort)));
        assert!(live.next().await.is_none());
    }
}
