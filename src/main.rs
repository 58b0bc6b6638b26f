//! The `openai-grpc-gateway` binary: parse config, init logging, bind, run. Nothing else.

use std::process::ExitCode;

use clap::Parser;
use openai_grpc_gateway::{
    config::{Cli, EXIT_CONFIG},
    fake::FakeOpenAi,
};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help / --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let mut settings = match cli.into_settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("openai-grpc-gateway: configuration error: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let filter = match tracing_subscriber::EnvFilter::try_new(&settings.log) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("openai-grpc-gateway: configuration error: --log / GATEWAY_LOG: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    // Flushes exported traces when main returns.
    let _tracing = match openai_grpc_gateway::telemetry::init_tracing(
        settings.log_format,
        filter,
        settings.otlp_endpoint.as_ref(),
        &settings.otel_service_name,
    ) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("openai-grpc-gateway: {e}");
            return ExitCode::FAILURE;
        }
    };

    // Keeps the demo upstream alive for the life of the process.
    let _demo = if settings.demo {
        match FakeOpenAi::start().await {
            Ok(fake) => {
                tracing::warn!(upstream = %fake.base_url(), "demo mode: answering from the built-in fake OpenAI, not api.openai.com");
                let demo = match openai_grpc_gateway::config::UpstreamConfig::new(&fake.base_url())
                {
                    Ok(u) => u,
                    Err(e) => {
                        eprintln!("openai-grpc-gateway: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                // Every profile answers from the fake too (their keys and headers are kept, so
                // profile routing can be tried in demo mode).
                for profile in settings.config.profiles.named.values_mut() {
                    profile.upstream.base_url = demo.base_url.clone();
                }
                settings.config.upstream = demo;
                Some(fake)
            }
            Err(e) => {
                eprintln!("openai-grpc-gateway: cannot start the demo upstream: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };

    let listener = match tokio::net::TcpListener::bind(settings.config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "openai-grpc-gateway: cannot listen on {}: {e}",
                settings.config.listen
            );
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().map_or(settings.config.listen, |a| a);
    tracing::info!(%addr, upstream = %settings.config.upstream.base_url, "serving gRPC");

    match openai_grpc_gateway::run(listener, settings.config, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openai-grpc-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
