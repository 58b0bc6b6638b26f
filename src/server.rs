//! Wiring: the gRPC services, grpc.health.v1, reflection (v1 and v1alpha), and shutdown.

use std::future::Future;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;

use crate::{
    api::responses::ResponsesApi, config::Config, openai::OpenAiClient,
    pb::responses_service_server::ResponsesServiceServer,
};

/// A failure to start or run the server.
pub type ServeError = Box<dyn std::error::Error + Send + Sync>;

/// Serves the gateway on `listener` until `shutdown` resolves; then health turns NOT_SERVING,
/// new connections stop, and in-flight calls finish before this returns.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let client = OpenAiClient::new(&config.upstream)?;
    let responses = ResponsesServiceServer::new(ResponsesApi::new(client, config.stream_buffer));

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<ResponsesServiceServer<ResponsesApi>>()
        .await;

    // Reflection knows our contract plus the health and google.rpc error-detail types, so
    // grpcurl can describe every service and decode the details of an error status.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: health NOT_SERVING, finishing in-flight calls");
        health
            .set_not_serving::<ResponsesServiceServer<ResponsesApi>>()
            .await;
        health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
    };

    Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(responses)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}
