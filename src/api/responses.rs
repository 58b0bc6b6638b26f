//! `ResponsesService`: the request's own parts of each RPC; [`super::call`] runs them.
//!
//! `CreateResponse` streams (unless `stream: false`): each upstream event becomes one typed
//! message; an `error` or `response.failed` event is forwarded and then the stream ends with the
//! mapped status; a broken or truncated upstream ends it with UNAVAILABLE. When the caller goes
//! away the pump stops and drops the upstream request at once.
//!
//! Background streams (`background: true`, and every `ResumeResponse`) survive a broken upstream:
//! when the connection drops, or stays silent past the idle limit, after the response id is
//! known, [`Events`] re-opens it with `GET /responses/{id}?stream=true&starting_after=N` (N the
//! last forwarded `sequence_number`) and the caller's stream goes on: every event exactly once,
//! sequence numbers contiguous. A few attempts with backoff, within the caller's deadline; then
//! UNAVAILABLE naming the response id and where to resume.

use std::{pin::Pin, time::Duration};

use super::{
    call::{Failure, Opened, Rpc, Stored, Upstream, serve},
    pump::{Source, Step},
};
use crate::{
    convert::responses::{self as convert, Outcome},
    error,
    openai::{Accept, EventStream, UpstreamError},
    owners::Kind,
    pb::{
        CancelResponseRequest, CancelResponseResponse, CompactResponseRequest,
        CompactResponseResponse, CountInputTokensRequest, CountInputTokensResponse,
        CreateResponseRequest, CreateResponseResponse, DeleteResponseRequest,
        DeleteResponseResponse, GetResponseRequest, GetResponseResponse, ListInputItemsRequest,
        ListInputItemsResponse, ResumeResponseRequest, responses_service_server::ResponsesService,
    },
    usage::Usage,
};

serve!(ResponsesService {
    stream create_response(CreateResponse) -> CreateResponseStream;
    stream resume_response(ResumeResponse) -> ResumeResponseStream;
    unary get_response(GetResponse);
    unary delete_response(DeleteResponse);
    unary cancel_response(CancelResponse);
    unary list_input_items(ListInputItems);
    unary count_input_tokens(CountInputTokens);
    unary compact_response(CompactResponse);
});

/// How often the gateway re-opens one broken background stream before giving up.
const RESUME_ATTEMPTS: u32 = 3;
/// The wait before the first re-open; doubled for each further one.
const RESUME_BACKOFF: Duration = Duration::from_millis(200);

/// The upstream path of a stored response.
fn response_path(id: &str) -> String {
    format!("/responses/{id}")
}

/// `include[]` query parameters.
fn include(values: &[String]) -> impl Iterator<Item = (&'static str, String)> + '_ {
    values.iter().map(|v| ("include[]", v.clone()))
}

/// `CreateResponse`: `POST /responses`, streamed or not.
pub struct CreateResponse;

impl Rpc for CreateResponse {
    type Request = CreateResponseRequest;
    type Message = CreateResponseResponse;
    type Source = Events;
    const METHOD: &'static str = "CreateResponse";

    fn references(request: &CreateResponseRequest) -> Vec<Stored<'_>> {
        let mut refs = Vec::new();
        if let Some(id) = &request.previous_response_id {
            refs.push(Stored::response(id));
        }
        let conversation = request
            .conversation
            .as_deref()
            .or(request.conversation_object.as_ref().map(|c| c.id.as_str()));
        refs.extend(conversation.map(Stored::conversation));
        refs
    }

    async fn open(
        &self,
        upstream: Upstream,
        request: CreateResponseRequest,
    ) -> Result<Opened<CreateResponseResponse, Events>, Failure> {
        let stream = request.stream.unwrap_or(true);
        let body = convert::request_body(&request, stream);
        let response = upstream
            .post("/responses", body, Accept::stream_if(stream))
            .await?;
        let headers = response.headers().clone();
        if stream {
            let events = Events::new(
                response.events()?,
                upstream,
                Resume {
                    background: request.background.unwrap_or(false),
                    cancel_on_disconnect: request.cancel_on_disconnect.unwrap_or(false),
                    response_id: None,
                    last_seq: None,
                    method: Self::METHOD,
                },
            );
            return Ok(Opened::stream(headers, events));
        }
        let meta = response.meta().clone();
        let single = convert::non_streamed(&response.body().await?, &meta)?;
        if let Some(id) = convert::response_id(&single.message) {
            upstream.bind(Kind::Response, id).await;
        }
        let usage = convert::usage(&single.message);
        let end = match single.outcome {
            Outcome::Failed(e) => Some(e.into()),
            Outcome::Continue | Outcome::Terminal => None,
        };
        Ok(Opened::ready_ending(
            headers,
            vec![single.message],
            usage,
            end,
        ))
    }
}

/// `ResumeResponse`: `GET /responses/{id}?stream=true&starting_after=N`.
pub struct ResumeResponse;

impl Rpc for ResumeResponse {
    type Request = ResumeResponseRequest;
    type Message = CreateResponseResponse;
    type Source = Events;
    const METHOD: &'static str = "ResumeResponse";

    fn target(request: &ResumeResponseRequest) -> Option<Stored<'_>> {
        Some(Stored::response(&request.response_id))
    }

    async fn open(
        &self,
        upstream: Upstream,
        request: ResumeResponseRequest,
    ) -> Result<Opened<CreateResponseResponse, Events>, Failure> {
        let id = request.response_id;
        let stream = open_stream(&upstream, &id, request.starting_after).await?;
        let headers = stream.0.clone();
        let events = Events::new(
            stream.1,
            upstream,
            Resume {
                background: true,
                cancel_on_disconnect: request.cancel_on_disconnect.unwrap_or(false),
                response_id: Some(id),
                last_seq: request.starting_after,
                method: Self::METHOD,
            },
        );
        Ok(Opened::stream(headers, events))
    }
}

/// Opens the event stream of stored response `id` after `starting_after`.
async fn open_stream(
    upstream: &Upstream,
    id: &str,
    starting_after: Option<i64>,
) -> Result<(tonic::codegen::http::HeaderMap, EventStream), Failure> {
    let mut query = vec![("stream", "true".to_owned())];
    if let Some(n) = starting_after {
        query.push(("starting_after", n.to_string()));
    }
    let about = |e: UpstreamError| {
        Failure::Status(error::upstream_about(
            &e,
            upstream.client.origin(),
            Kind::Response,
            id,
        ))
    };
    let response = upstream
        .client
        .get(
            &response_path(id),
            &query,
            Accept::EventStream,
            upstream.deadline,
        )
        .await
        .map_err(about)?;
    let headers = response.headers().clone();
    Ok((headers, response.events().map_err(about)?))
}

/// `GetResponse`: `GET /responses/{id}`.
pub struct GetResponse;

impl Rpc for GetResponse {
    type Request = GetResponseRequest;
    type Message = GetResponseResponse;
    type Source = super::call::NoStream<GetResponseResponse>;
    const METHOD: &'static str = "GetResponse";

    fn target(request: &GetResponseRequest) -> Option<Stored<'_>> {
        Some(Stored::response(&request.response_id))
    }

    async fn open(
        &self,
        upstream: Upstream,
        request: GetResponseRequest,
    ) -> Result<Opened<GetResponseResponse, Self::Source>, Failure> {
        let id = &request.response_id;
        let query: Vec<_> = include(&request.include).collect();
        let answer = upstream
            .client
            .get(&response_path(id), &query, Accept::Json, upstream.deadline)
            .await;
        let (headers, body, meta) = upstream.answer_about(answer, Kind::Response, id).await?;
        let response = convert::stored(&body, &meta)?;
        Ok(Opened::ready(
            headers,
            vec![GetResponseResponse {
                response: Some(response),
            }],
            None,
        ))
    }
}

/// `DeleteResponse`: `DELETE /responses/{id}`.
pub struct DeleteResponse;

impl Rpc for DeleteResponse {
    type Request = DeleteResponseRequest;
    type Message = DeleteResponseResponse;
    type Source = super::call::NoStream<DeleteResponseResponse>;
    const METHOD: &'static str = "DeleteResponse";

    fn target(request: &DeleteResponseRequest) -> Option<Stored<'_>> {
        Some(Stored::response(&request.response_id))
    }

    async fn open(
        &self,
        upstream: Upstream,
        request: DeleteResponseRequest,
    ) -> Result<Opened<DeleteResponseResponse, Self::Source>, Failure> {
        let id = &request.response_id;
        let answer = upstream
            .client
            .delete(&response_path(id), upstream.deadline)
            .await;
        let (headers, body, meta) = upstream.answer_about(answer, Kind::Response, id).await?;
        upstream.forget(Kind::Response, id).await;
        // OpenAI's spec declares no body for this 200; its example is the deletion object. A
        // body that is not one still means the response was deleted.
        let deleted =
            convert::answer(&body, DELETED, &meta).unwrap_or_else(|_| DeleteResponseResponse {
                id: Some(id.clone()),
                object: Some("response".into()),
                deleted: Some(true),
                extra_json: String::new(),
            });
        Ok(Opened::ready(headers, vec![deleted], None))
    }
}

const DELETED: &str = "openai_gateway.v1.DeleteResponseResponse";

/// `CancelResponse`: `POST /responses/{id}/cancel`.
pub struct CancelResponse;

impl Rpc for CancelResponse {
    type Request = CancelResponseRequest;
    type Message = CancelResponseResponse;
    type Source = super::call::NoStream<CancelResponseResponse>;
    const METHOD: &'static str = "CancelResponse";

    fn target(request: &CancelResponseRequest) -> Option<Stored<'_>> {
        Some(Stored::response(&request.response_id))
    }

    async fn open(
        &self,
        upstream: Upstream,
        request: CancelResponseRequest,
    ) -> Result<Opened<CancelResponseResponse, Self::Source>, Failure> {
        let id = &request.response_id;
        let answer = upstream
            .client
            .post_empty(&format!("/responses/{id}/cancel"), upstream.deadline)
            .await;
        // OpenAI answers 400 for a response that was not created with `background: true`.
        let answer = match answer {
            Err(e @ UpstreamError::Status { status: 400, .. }) => {
                return Err(Failure::Status(error::not_cancellable(&e, id)));
            }
            other => other,
        };
        let (headers, body, meta) = upstream.answer_about(answer, Kind::Response, id).await?;
        let response = convert::stored(&body, &meta)?;
        // A job cancelled mid-run has spent tokens: where OpenAI's answer reports them, they
        // count against the caller's tokens_per_minute (this answer is where the gateway sees
        // the job end). A finished job comes back unchanged and is not charged here. OpenAI
        // answers a repeated cancel the same way, so each one charges the usage again.
        let usage = (response.status.as_deref() == Some("cancelled"))
            .then(|| convert::response_usage(&response))
            .flatten();
        Ok(Opened::ready(
            headers,
            vec![CancelResponseResponse {
                response: Some(response),
            }],
            usage,
        ))
    }
}

/// `ListInputItems`: `GET /responses/{id}/input_items`.
pub struct ListInputItems;

impl Rpc for ListInputItems {
    type Request = ListInputItemsRequest;
    type Message = ListInputItemsResponse;
    type Source = super::call::NoStream<ListInputItemsResponse>;
    const METHOD: &'static str = "ListInputItems";

    fn target(request: &ListInputItemsRequest) -> Option<Stored<'_>> {
        Some(Stored::response(&request.response_id))
    }

    async fn open(
        &self,
        upstream: Upstream,
        request: ListInputItemsRequest,
    ) -> Result<Opened<ListInputItemsResponse, Self::Source>, Failure> {
        let id = &request.response_id;
        let query = page_query(
            request.limit,
            request.order.as_deref(),
            request.after.as_deref(),
            &request.include,
        );
        let answer = upstream
            .client
            .get(
                &format!("/responses/{id}/input_items"),
                &query,
                Accept::Json,
                upstream.deadline,
            )
            .await;
        let (headers, body, meta) = upstream.answer_about(answer, Kind::Response, id).await?;
        let page = convert::answer(&body, "openai_gateway.v1.ListInputItemsResponse", &meta)?;
        Ok(Opened::ready(headers, vec![page], None))
    }
}

/// The query of a paged list: `limit`, `order`, `after`, `include[]`, each only when set.
pub(crate) fn page_query(
    limit: Option<i64>,
    order: Option<&str>,
    after: Option<&str>,
    include_values: &[String],
) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    if let Some(limit) = limit {
        query.push(("limit", limit.to_string()));
    }
    if let Some(order) = order {
        query.push(("order", order.to_owned()));
    }
    if let Some(after) = after {
        query.push(("after", after.to_owned()));
    }
    query.extend(include(include_values));
    query
}

/// `CountInputTokens`: `POST /responses/input_tokens`.
pub struct CountInputTokens;

impl Rpc for CountInputTokens {
    type Request = CountInputTokensRequest;
    type Message = CountInputTokensResponse;
    type Source = super::call::NoStream<CountInputTokensResponse>;
    const METHOD: &'static str = "CountInputTokens";

    fn references(request: &CountInputTokensRequest) -> Vec<Stored<'_>> {
        let mut refs: Vec<_> = request
            .previous_response_id
            .as_deref()
            .map(Stored::response)
            .into_iter()
            .collect();
        refs.extend(request.conversation.as_deref().map(Stored::conversation));
        refs
    }

    async fn open(
        &self,
        upstream: Upstream,
        request: CountInputTokensRequest,
    ) -> Result<Opened<CountInputTokensResponse, Self::Source>, Failure> {
        const TYPE: &str = "openai_gateway.v1.CountInputTokensRequest";
        let body = convert::to_bytes(convert::request_object(&request, TYPE));
        let response = upstream
            .post("/responses/input_tokens", body, Accept::Json)
            .await?;
        let headers = response.headers().clone();
        let meta = response.meta().clone();
        let count = convert::answer(
            &response.body().await?,
            "openai_gateway.v1.CountInputTokensResponse",
            &meta,
        )?;
        Ok(Opened::ready(headers, vec![count], None))
    }
}

/// `CompactResponse`: `POST /responses/compact`.
pub struct CompactResponse;

impl Rpc for CompactResponse {
    type Request = CompactResponseRequest;
    type Message = CompactResponseResponse;
    type Source = super::call::NoStream<CompactResponseResponse>;
    const METHOD: &'static str = "CompactResponse";

    fn references(request: &CompactResponseRequest) -> Vec<Stored<'_>> {
        request
            .previous_response_id
            .as_deref()
            .map(Stored::response)
            .into_iter()
            .collect()
    }

    async fn open(
        &self,
        upstream: Upstream,
        request: CompactResponseRequest,
    ) -> Result<Opened<CompactResponseResponse, Self::Source>, Failure> {
        const TYPE: &str = "openai_gateway.v1.CompactResponseRequest";
        let model = request.model.clone();
        let body = convert::to_bytes(convert::request_object(&request, TYPE));
        let response = upstream
            .post("/responses/compact", body, Accept::Json)
            .await?;
        let headers = response.headers().clone();
        let meta = response.meta().clone();
        let compacted: CompactResponseResponse = convert::answer(
            &response.body().await?,
            "openai_gateway.v1.CompactResponseResponse",
            &meta,
        )?;
        let usage = compacted.usage.as_ref().map(|u| Usage {
            model,
            input_tokens: u.input_tokens.unwrap_or(0),
            output_tokens: u.output_tokens.unwrap_or(0),
            cached_input_tokens: u
                .input_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens),
            reasoning_tokens: u
                .output_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens),
        });
        Ok(Opened::ready(headers, vec![compacted], usage))
    }
}

/// What a stream knows about resuming itself.
#[derive(Debug)]
struct Resume {
    /// A background response: the job outlives the connection, so the stream can be re-opened.
    background: bool,
    /// Cancel the background job when the caller goes away.
    cancel_on_disconnect: bool,
    /// The response id, once an event carried it (or from `ResumeResponse`).
    response_id: Option<String>,
    /// The `sequence_number` of the last event forwarded.
    last_seq: Option<i64>,
    /// The RPC, for the resume metric.
    method: &'static str,
}

/// The outcome of one re-open.
enum Reopened {
    /// The stream goes on from here.
    Stream(Box<EventStream>),
    /// The response was cancelled meanwhile: there is nothing more to stream.
    Cancelled,
}

type Reopening = Pin<Box<dyn Future<Output = Result<Reopened, UpstreamError>> + Send>>;

/// One upstream Responses stream as a [`Source`] of typed events: binds the response to its
/// caller when its id first appears, and re-opens a broken background stream (module docs).
pub struct Events {
    stream: EventStream,
    upstream: Upstream,
    resume: Resume,
    /// The response id has been bound to the caller.
    bound: bool,
    /// A terminal event was forwarded.
    finished: bool,
    /// Re-opens done so far, for the current break.
    attempts: u32,
    /// The re-open under way, kept here so a `next` dropped for a heartbeat loses nothing.
    reopening: Option<Reopening>,
}

impl Events {
    fn new(stream: EventStream, upstream: Upstream, resume: Resume) -> Self {
        Self {
            stream,
            upstream,
            bound: resume.response_id.is_some(),
            resume,
            finished: false,
            attempts: 0,
            reopening: None,
        }
    }

    /// Whether a break of this kind, at this point, can be resumed.
    fn resumable(&self, e: &UpstreamError) -> bool {
        use crate::openai::TimeLimit;
        self.resume.background
            && self.resume.response_id.is_some()
            && !self.finished
            && matches!(
                e,
                UpstreamError::Dropped { .. }
                    | UpstreamError::Timeout {
                        limit: TimeLimit::Idle
                    }
            )
    }

    /// Starts the next re-open, or returns the final step when none is left.
    fn break_off(&mut self, e: UpstreamError) -> Option<Step<CreateResponseResponse>> {
        if !self.resumable(&e) {
            return Some(Step::Fail(e.into()));
        }
        let id = self.resume.response_id.clone().unwrap_or_default();
        let delay = RESUME_BACKOFF * 2u32.pow(self.attempts);
        // No attempt starts that the caller's deadline would cut short: the caller is told
        // where to resume while it is still listening.
        let out_of_time = self
            .upstream
            .deadline
            .is_some_and(|d| tokio::time::Instant::now() + delay >= d);
        if self.attempts >= RESUME_ATTEMPTS || out_of_time {
            self.upstream
                .metrics
                .stream_resume(self.resume.method, false);
            return Some(Step::Fail(Failure::Status(error::resume_failed(
                &e,
                self.upstream.client.origin(),
                &id,
                self.resume.last_seq,
                self.attempts,
                out_of_time && self.attempts < RESUME_ATTEMPTS,
            ))));
        }
        self.attempts += 1;
        tracing::info!(response_id = %id, attempt = self.attempts, error = %e, "resuming a broken background stream");
        let client = self.upstream.client.clone();
        let deadline = self.upstream.deadline;
        let last_seq = self.resume.last_seq;
        self.reopening = Some(Box::pin(async move {
            tokio::time::sleep(delay).await;
            // A cancelled response has nothing more to stream: say so instead of re-opening.
            let status = client
                .get(&response_path(&id), &[], Accept::Json, deadline)
                .await?
                .body()
                .await?;
            let cancelled = serde_json::from_slice::<serde_json::Value>(&status)
                .ok()
                .and_then(|v| v.get("status").and_then(|s| s.as_str()).map(str::to_owned))
                .is_some_and(|s| s == "cancelled");
            if cancelled {
                return Ok(Reopened::Cancelled);
            }
            let mut query = vec![("stream", "true".to_owned())];
            if let Some(n) = last_seq {
                query.push(("starting_after", n.to_string()));
            }
            let stream = client
                .get(&response_path(&id), &query, Accept::EventStream, deadline)
                .await?
                .events()?;
            Ok(Reopened::Stream(Box::new(stream)))
        }));
        None
    }

    /// Forwards one converted event (or skips one already forwarded before a re-open).
    async fn forward(&mut self, data: &[u8]) -> Option<Step<CreateResponseResponse>> {
        let event = match convert::event(data, self.stream.meta()) {
            Ok(event) => event,
            Err(e) => return Some(Step::Fail(e.into())),
        };
        if let Some(seq) = event.message.sequence_number.map(i64::from) {
            if self.resume.last_seq.is_some_and(|last| seq <= last) {
                return None;
            }
            self.resume.last_seq = Some(seq);
        }
        if !self.bound
            && let Some(id) = convert::response_id(&event.message)
        {
            // Boxed: a store round trip is a large future, awaited once per stream.
            Box::pin(self.upstream.bind(Kind::Response, id)).await;
            self.resume.response_id = Some(id.to_owned());
            self.bound = true;
        }
        self.attempts = 0;
        Some(match event.outcome {
            Outcome::Continue => Step::Send(event.message),
            Outcome::Terminal => {
                self.finished = true;
                Step::Last(event.message)
            }
            Outcome::Failed(e) => {
                self.finished = true;
                Step::SendThenFail(event.message, e.into())
            }
        })
    }
}

impl Source for Events {
    type Message = CreateResponseResponse;

    async fn next(&mut self) -> Step<CreateResponseResponse> {
        loop {
            if let Some(reopening) = &mut self.reopening {
                let reopened = reopening.await;
                self.reopening = None;
                match reopened {
                    Ok(Reopened::Stream(stream)) => {
                        self.upstream
                            .metrics
                            .stream_resume(self.resume.method, true);
                        self.stream = *stream;
                    }
                    Ok(Reopened::Cancelled) => {
                        let id = self.resume.response_id.clone().unwrap_or_default();
                        return Step::Fail(Failure::Status(error::background_cancelled(&id)));
                    }
                    Err(e) => {
                        if let Some(step) = self.break_off(e) {
                            return step;
                        }
                    }
                }
                continue;
            }
            let broken = match self.stream.next().await {
                Some(Ok(event)) => match self.forward(&event.data).await {
                    Some(step) => return step,
                    None => continue,
                },
                Some(Err(e)) => e,
                None => UpstreamError::Dropped {
                    message: "the upstream stream closed before a terminal event (response.completed, response.incomplete, response.failed or error)".into(),
                    meta: self.stream.meta().clone(),
                },
            };
            if let Some(step) = self.break_off(broken) {
                return step;
            }
        }
    }

    fn keepalive(&self) -> CreateResponseResponse {
        convert::keepalive()
    }

    fn usage(&self, message: &CreateResponseResponse) -> Option<Usage> {
        convert::usage(message)
    }

    fn finish(self) -> impl Future<Output = ()> + Send + 'static {
        self.stream.drain()
    }

    fn caller_gone(&mut self) {
        if !(self.resume.background && self.resume.cancel_on_disconnect) || self.finished {
            return;
        }
        let Some(id) = self.resume.response_id.clone() else {
            return;
        };
        let client = self.upstream.client.clone();
        tokio::spawn(async move {
            match client
                .post_empty(&format!("/responses/{id}/cancel"), None)
                .await
            {
                Ok(_) => {
                    tracing::info!(response_id = %id, "cancelled the background response: its caller went away")
                }
                Err(e) => {
                    tracing::warn!(response_id = %id, error = %e, "cancelling the background response of a caller that went away failed")
                }
            }
        });
    }
}
