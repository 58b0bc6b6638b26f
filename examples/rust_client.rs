//! A Rust client of openai-grpc-gateway: streams a response, printing each text delta as it
//! arrives, and on failure reads the error's details (google.rpc.ErrorInfo reason, RetryInfo)
//! with tonic-types.
//!
//! ```sh
//! cargo run --example rust_client -- http://127.0.0.1:50051 [MODEL]
//! ```
//!
//! It uses this crate's generated client (`openai_grpc_gateway::pb`, built from `proto/` by
//! build.rs). Another crate generates the same types from the same protos with
//! tonic-prost-build. tests/clients.rs runs [`stream_response`] against a test gateway.

use std::{io::Write, time::Duration};

use openai_grpc_gateway::pb::{
    CreateResponseRequest, create_response_response::Event,
    responses_service_client::ResponsesServiceClient,
};
use tonic::{Code, transport::Endpoint};
use tonic_types::StatusExt;

/// What a successful stream produced.
#[derive(Debug)]
pub struct Streamed {
    /// Every `output_text_delta`, appended in order.
    pub joined: String,
    /// The final Response's `output_text`.
    pub output_text: String,
    /// How many messages arrived.
    pub events: usize,
}

/// Why the call failed, from the status and its details.
#[derive(Debug)]
pub struct Failed {
    /// The gRPC code.
    pub code: Code,
    /// The ErrorInfo reason, e.g. `UPSTREAM_NOT_FOUND`.
    pub reason: String,
    /// How long to wait before retrying, when the gateway says (RetryInfo).
    pub retry_delay: Option<Duration>,
    /// The status message.
    pub message: String,
}

/// Streams one response from the gateway at `endpoint`, writing each delta to `out` as it
/// arrives.
pub async fn stream_response(
    endpoint: &str,
    model: &str,
    input: &str,
    out: &mut impl Write,
) -> Result<Streamed, Failed> {
    let channel = Endpoint::from_shared(endpoint.to_string())
        .map_err(|e| failed(tonic::Status::invalid_argument(e.to_string())))?
        .connect()
        .await
        .map_err(|e| failed(tonic::Status::unavailable(e.to_string())))?;
    let mut client = ResponsesServiceClient::new(channel);
    let mut request = tonic::Request::new(CreateResponseRequest {
        model: model.into(),
        input_text: Some(input.into()),
        ..Default::default()
    });
    request.set_timeout(Duration::from_secs(60));
    let mut stream = client
        .create_response(request)
        .await
        .map_err(failed)?
        .into_inner();
    let mut done = Streamed {
        joined: String::new(),
        output_text: String::new(),
        events: 0,
    };
    while let Some(message) = stream.message().await.map_err(failed)? {
        done.events += 1;
        match message.event {
            Some(Event::OutputTextDelta(delta)) => {
                let piece = delta.delta.unwrap_or_default();
                let _ = write!(out, "{piece}").and_then(|_| out.flush());
                done.joined.push_str(&piece);
            }
            Some(Event::Completed(completed)) => {
                let response = completed.response.unwrap_or_default();
                let tokens = response.usage.and_then(|u| u.total_tokens).unwrap_or(0);
                let _ = writeln!(out, "\nusage: {tokens} tokens");
                done.output_text = response.output_text;
            }
            _ => {}
        }
    }
    Ok(done)
}

fn failed(status: tonic::Status) -> Failed {
    let details = status.get_error_details();
    Failed {
        code: status.code(),
        reason: details
            .error_info()
            .map(|i| i.reason.clone())
            .unwrap_or_default(),
        retry_delay: details.retry_info().and_then(|r| r.retry_delay),
        message: status.message().to_string(),
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let endpoint = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let model = args.next().unwrap_or_else(|| "gpt-4.1".into());
    match stream_response(
        &endpoint,
        &model,
        "Write a haiku about gRPC.",
        &mut std::io::stdout(),
    )
    .await
    {
        Ok(done) => println!("{} events", done.events),
        Err(e) => {
            eprintln!("{:?} ({}): {}", e.code, e.reason, e.message);
            if let Some(delay) = e.retry_delay {
                eprintln!("retry after {delay:?}");
            }
            std::process::exit(1);
        }
    }
}
