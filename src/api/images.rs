//! `ImagesService`: the request's own parts of `CreateImage`; [`super::call`] runs it and
//! [`crate::convert::images`] converts what comes back.
//!
//! Without `partial_images` there is one JSON upstream call: its status is checked and the whole
//! body decoded before the first message, so any upstream failure is a Trailers-Only status.
//! With `partial_images > 0` the upstream call is streamed (`stream: true`) and each preview is
//! forwarded as it arrives.

use std::collections::VecDeque;

use tonic::{Request, Response, Status};

use super::{
    call::{CallContext, Failure, Opened, ReplyStream, Rpc, Upstream},
    pump::{Source, Step},
    validate_media,
};
use crate::{
    convert::images as convert,
    error::Violation,
    openai::{Accept, EventStream, UpstreamError},
    pb::{CreateImageRequest, CreateImageResponse, images_service_server::ImagesService},
    usage::Usage,
};

/// The `ImagesService` implementation.
#[derive(Debug, Clone)]
pub struct ImagesApi {
    ctx: CallContext,
}

impl ImagesApi {
    /// The service, running its RPCs through `ctx`.
    pub fn new(ctx: CallContext) -> Self {
        Self { ctx }
    }
}

#[tonic::async_trait]
impl ImagesService for ImagesApi {
    type CreateImageStream = ReplyStream<CreateImageResponse>;

    async fn create_image(
        &self,
        request: Request<CreateImageRequest>,
    ) -> Result<Response<Self::CreateImageStream>, Status> {
        self.ctx.streaming(&CreateImage, request).await
    }
}

/// `CreateImage`: `POST /images/generations`.
struct CreateImage;

impl Rpc for CreateImage {
    type Request = CreateImageRequest;
    type Message = CreateImageResponse;
    type Source = Previews;
    const METHOD: &'static str = "CreateImage";

    fn model(request: &CreateImageRequest) -> &str {
        request.model.as_deref().unwrap_or_default()
    }

    fn validate(request: &CreateImageRequest) -> Vec<Violation> {
        validate_media::create_image(request)
    }

    async fn open(
        &self,
        upstream: Upstream,
        request: CreateImageRequest,
    ) -> Result<Opened<CreateImageResponse, Previews>, Failure> {
        let model = Self::model(&request).to_owned();
        let stream = request.partial_images.unwrap_or(0) > 0;
        let body = convert::request_body(&request, stream);
        let accept = if stream {
            Accept::EventStream
        } else {
            Accept::Json
        };
        let response = upstream
            .client
            .post_json("/images/generations", body, accept, upstream.deadline)
            .await?;
        let headers = response.headers().clone();
        if stream {
            let previews = Previews {
                events: response.events()?,
                pending: VecDeque::new(),
                complete: false,
                model,
            };
            return Ok(Opened::stream(headers, previews));
        }
        let meta = response.meta().clone();
        let messages = convert::whole(&response.body().await?, &meta)?;
        let usage = messages.iter().find_map(|m| convert::usage(&model, m));
        Ok(Opened::ready(headers, messages, usage))
    }
}

/// A streamed generation as a [`Source`]: one upstream event becomes several messages (an
/// image's chunks), queued in `pending` and handed out one at a time.
struct Previews {
    events: EventStream,
    pending: VecDeque<CreateImageResponse>,
    /// The final image was converted: the last pending message ends the stream.
    complete: bool,
    /// The requested model, under which token usage is counted.
    model: String,
}

impl Source for Previews {
    type Message = CreateImageResponse;

    async fn next(&mut self) -> Step<CreateImageResponse> {
        loop {
            // Popping is synchronous, so a `next` dropped for a heartbeat loses nothing.
            if let Some(message) = self.pending.pop_front() {
                return if self.complete && self.pending.is_empty() {
                    Step::Last(message)
                } else {
                    Step::Send(message)
                };
            }
            if self.complete {
                return Step::End;
            }
            let converted = match self.events.next().await {
                Some(Ok(event)) => convert::stream_event(&event.data, self.events.meta()),
                Some(Err(e)) => Err(e),
                None => Err(UpstreamError::Dropped {
                    message: "the upstream image stream closed before image_generation.completed"
                        .into(),
                    meta: self.events.meta().clone(),
                }),
            };
            match converted {
                Ok(converted) => {
                    self.pending.extend(converted.messages);
                    self.complete = converted.complete;
                }
                Err(e) => return Step::Fail(e.into()),
            }
        }
    }

    fn keepalive(&self) -> CreateImageResponse {
        convert::keepalive()
    }

    fn usage(&self, message: &CreateImageResponse) -> Option<Usage> {
        convert::usage(&self.model, message)
    }
}
