//! Wiring: the gRPC services, grpc.health.v1, reflection (v1 and v1alpha), gRPC-Web and the
//! browser side ([`crate::web`]), HTTP/2 settings and graceful drain.

use std::{future::Future, sync::Arc};

use tokio::{net::TcpListener, sync::watch};
use tonic::{
    codec::CompressionEncoding,
    server::NamedService,
    service::{Routes, interceptor::InterceptedService},
    transport::{Certificate, Identity, Server, ServerTlsConfig, server::TcpIncoming},
};
use tonic_web::GrpcWebLayer;
use tower::Layer as _;

use crate::{
    api::{
        admission::stamp_arrival,
        call::{CallContext, Ownership},
        profiles::Upstreams,
    },
    auth::CallerAuth,
    config::{Config, StartupError},
    owners::{DEFAULT_CAPACITY, Owners},
    pb::{
        conversations_service_server::ConversationsServiceServer,
        images_service_server::ImagesServiceServer,
        responses_service_server::ResponsesServiceServer,
        speech_service_server::SpeechServiceServer,
    },
    quotas::Quotas,
    store::Store,
    telemetry::Metrics,
};

/// Serves the gateway on `listener` until `shutdown` resolves, then drains:
///
/// 1. health turns NOT_SERVING for every service (and overall), while calls are still served
///    for the drain delay, so load balancers and the mesh stop routing here;
/// 2. the listener stops accepting and connections get GOAWAY; in-flight calls may finish
///    within the drain timeout;
/// 3. calls still running then end with UNAVAILABLE "server shutting down" (their upstream
///    requests are closed), and this returns.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StartupError> {
    let metrics_listener =
        match config.metrics_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                StartupError::runtime(format!("cannot serve metrics on {addr}: {e}"))
            })?),
            None => None,
        };
    run_with_metrics(listener, metrics_listener, config, shutdown).await
}

/// [`run`], with the Prometheus endpoint on an already bound `metrics_listener` (if any)
/// instead of binding `config.metrics_listen`.
pub async fn run_with_metrics(
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StartupError> {
    let metrics = Metrics::new();
    if let Some(listener) = metrics_listener {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "serving Prometheus metrics at /metrics");
        }
        tokio::spawn(crate::telemetry::serve_metrics(listener, metrics.clone()));
    }
    let upstreams = Upstreams::new(&config, &metrics)?;
    let (force_stop, forced) = watch::channel(false);
    let store = config
        .shared
        .redis
        .as_ref()
        .map(|url| Store::new(url, &config.shared.key_prefix, metrics.clone()))
        .transpose()?;
    let enforce = !config.auth.tokens.is_empty();
    let mut owners = Owners::in_memory(DEFAULT_CAPACITY);
    match &store {
        Some(store) => {
            tracing::info!(redis = %config.shared.redis.as_ref().map(ToString::to_string).unwrap_or_default(), prefix = %config.shared.key_prefix, "sharing quotas, key cooldowns and response ownership through Redis");
            owners = owners.shared_through(Arc::new(store.clone()));
            upstreams.share_cooldowns(Arc::new(store.clone()));
        }
        None if enforce => tracing::warn!(
            "caller authentication is on and stored responses and conversations are bound to their callers in this process's memory only: the bindings do not survive a restart and are not shared with other replicas (set --redis-url to share them)"
        ),
        None => {}
    }
    let quotas = config.quotas.clone().map(|limits| match &store {
        Some(store) => Quotas::shared(
            limits,
            store.clone(),
            config.shared.fail_closed,
            metrics.clone(),
        ),
        None => Quotas::in_memory(limits, metrics.clone()),
    });
    let ownership = Ownership {
        owners,
        enforce,
        allow_foreign_ids: config.allow_foreign_ids,
    };
    let ctx = CallContext::new(
        &config.limits,
        upstreams,
        ownership,
        config.stream_buffer,
        config.heartbeat,
        forced,
        metrics.clone(),
    )
    .with_quotas(quotas);
    let limits = &config.http2;
    let auth = CallerAuth::new(config.auth.tokens.clone());
    // Every API service gets the same treatment: compressed requests accepted, message size
    // limits, and the caller-token check in front. gRPC-Web is translated per service (not as a
    // server-wide layer, which would answer the page's plain HTTP/1.1 GETs with 400), so every
    // service, health and reflection included, speaks it, and a translated call then runs
    // exactly as a native one: the same token check, limits, call path, metrics and drain.
    let web = GrpcWebLayer::new();
    macro_rules! api_service {
        ($server:ident, $api:expr) => {
            web.layer(InterceptedService::new(
                $server::new($api)
                    .accept_compressed(CompressionEncoding::Gzip)
                    .accept_compressed(CompressionEncoding::Zstd)
                    .max_decoding_message_size(limits.max_request_bytes)
                    .max_encoding_message_size(limits.max_response_bytes),
                auth.clone(),
            ))
        };
    }
    let responses = api_service!(ResponsesServiceServer, ctx.clone());
    let images = api_service!(ImagesServiceServer, ctx.clone());
    let speech = api_service!(SpeechServiceServer, ctx.clone());
    let conversations = api_service!(ConversationsServiceServer, ctx);

    let (health, health_service) = tonic_health::server::health_reporter();
    for service in SERVICES {
        health
            .set_service_status(service, tonic_health::ServingStatus::Serving)
            .await;
    }

    // Reflection knows our contract plus the health and google.rpc error-detail types, so
    // grpcurl can describe every service and decode the details of an error status.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };
    // Health is never behind the token check (probes carry no credentials); reflection only
    // when configured.
    let reflection_auth = if config.auth.protect_reflection {
        auth.clone()
    } else {
        CallerAuth::default()
    };
    let reflection_v1 = web.layer(InterceptedService::new(
        reflection().build_v1().map_err(StartupError::runtime)?,
        reflection_auth.clone(),
    ));
    let reflection_v1alpha = web.layer(InterceptedService::new(
        reflection()
            .build_v1alpha()
            .map_err(StartupError::runtime)?,
        reflection_auth,
    ));
    let routes = Routes::new(web.layer(health_service))
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(responses)
        .add_service(images)
        .add_service(speech)
        .add_service(conversations)
        .into_axum_router();
    let routes = Routes::from(crate::web::with_page(routes, config.web.page));

    let drain = config.drain.clone();
    let mut forced = force_stop.subscribe();
    let shutdown = async move {
        shutdown.await;
        tracing::info!(
            delay_ms = drain.delay.as_millis() as u64,
            "shutting down: health NOT_SERVING, still serving during the drain delay"
        );
        for service in SERVICES.into_iter().chain([""]) {
            health
                .set_service_status(service, tonic_health::ServingStatus::NotServing)
                .await;
        }
        tokio::time::sleep(drain.delay).await;
        tracing::info!(
            timeout_ms = drain.timeout.as_millis() as u64,
            "draining: no new connections; in-flight calls may finish"
        );
        tokio::spawn(async move {
            tokio::time::sleep(drain.timeout).await;
            tracing::warn!("drain timeout passed: ending the calls still in flight");
            let _ = force_stop.send(true);
        });
    };

    let mut server = Server::builder();
    if let Some(tls) = &config.tls {
        let mut tls_config =
            ServerTlsConfig::new().identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem));
        if let Some(ca) = &tls.client_ca_pem {
            tls_config = tls_config.client_ca_root(Certificate::from_pem(ca));
        }
        server = server
            .tls_config(tls_config)
            .map_err(|e| StartupError::config(format!("--tls-cert / --tls-key: {e}")))?;
    }
    let mut server = server
        .layer(tower::util::MapRequestLayer::new(stamp_arrival))
        // CORS answers preflights itself, before any gRPC routing; off unless configured.
        .layer(tower::util::option_layer(crate::web::cors_layer(
            &config.web.cors,
        )))
        // Browsers speak HTTP/1.1 to a plaintext port (h2c is never offered to them); gRPC
        // clients keep HTTP/2.
        .accept_http1(true)
        .http2_keepalive_interval(limits.keepalive_interval)
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .max_concurrent_streams(Some(limits.max_concurrent_streams));
    if let Some(age) = limits.max_connection_age {
        // No grace period on purpose: with one, tonic 0.14 closes the connection outright when
        // the grace ends and never sends GOAWAY; without, it shuts the connection down
        // gracefully (GOAWAY, in-flight streams finish).
        server = server.max_connection_age(age);
    }
    let serve = server.add_routes(routes).serve_with_incoming_shutdown(
        // TCP_NODELAY: without it Nagle's algorithm holds a response's second small write
        // (e.g. the trailers) until the client's delayed ACK, ~40 ms on every call.
        TcpIncoming::from(listener).with_nodelay(Some(true)),
        shutdown,
    );
    tokio::pin!(serve);
    tokio::select! {
        served = &mut serve => return served.map_err(StartupError::runtime),
        _ = forced.wait_for(|forced| *forced) => {}
    }
    // The drain timeout passed and the calls still running were told to end. Give their final
    // statuses a moment to reach the callers, then stop waiting: streams that never end on
    // their own (health Watch from a kubelet or the mesh) must not hold the process forever.
    match tokio::time::timeout(FINAL_FLUSH, &mut serve).await {
        Ok(served) => served.map_err(StartupError::runtime),
        Err(_) => {
            tracing::warn!("closing the connections still open after the drain");
            Ok(())
        }
    }
}

/// The gateway's gRPC services by name: health reports each (and `""` for the whole server).
const SERVICES: [&str; 4] = [
    <ResponsesServiceServer<CallContext> as NamedService>::NAME,
    <ImagesServiceServer<CallContext> as NamedService>::NAME,
    <SpeechServiceServer<CallContext> as NamedService>::NAME,
    <ConversationsServiceServer<CallContext> as NamedService>::NAME,
];

/// How long, after the drain timeout, the final statuses of ended calls may take to flush.
const FINAL_FLUSH: std::time::Duration = std::time::Duration::from_millis(500);
