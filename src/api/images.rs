//! `ImagesService`: the request's own parts of `CreateImage`; [`super::call`] runs it and
//! [`crate::convert::images`] converts what comes back.
//!
//! Without `partial_images` there is one JSON upstream call: its status is checked and the whole
//! body decoded before the first message, so any upstream failure is a Trailers-Only status.
//! With `partial_images > 0` the upstream call is streamed (`stream: true`) and each preview is
//! forwarded as it arrives.

use super::{
    call::{Failure, Opened, Rpc, Upstream, serve},
    pump::{Pending, Source, Step},
};
use crate::{
    convert::images as convert,
    openai::{Accept, EventStream, UpstreamError},
    pb::{CreateImageRequest, CreateImageResponse, images_service_server::ImagesService},
    usage::Usage,
};

serve!(ImagesService {
    stream create_image(CreateImage) -> CreateImageStream;
});

/// `CreateImage`: `POST /images/generations`.
pub struct CreateImage;

impl Rpc for CreateImage {
    type Request = CreateImageRequest;
    type Message = CreateImageResponse;
    type Source = Previews;
    const METHOD: &'static str = "CreateImage";

    async fn open(
        &self,
        upstream: Upstream,
        request: CreateImageRequest,
    ) -> Result<Opened<CreateImageResponse, Previews>, Failure> {
        let model = request.model().to_owned();
        let stream = request.partial_images.unwrap_or(0) > 0;
        let body = convert::request_body(&request, stream);
        let response = upstream
            .post("/images/generations", body, Accept::stream_if(stream))
            .await?;
        let headers = response.headers().clone();
        if stream {
            let previews = Previews {
                events: response.events()?,
                pending: Pending::new([]),
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
/// image's chunks), queued in `pending`.
pub struct Previews {
    events: EventStream,
    pending: Pending<CreateImageResponse>,
    /// The requested model, under which token usage is counted.
    model: String,
}

impl Source for Previews {
    type Message = CreateImageResponse;

    async fn next(&mut self) -> Step<CreateImageResponse> {
        loop {
            if let Some(step) = self.pending.take() {
                return step;
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
                    if converted.complete {
                        self.pending.complete();
                    }
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
