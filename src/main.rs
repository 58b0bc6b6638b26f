//! The `openai-grpc-gateway` binary: parse config, init logging, bind, run. Nothing else.

use std::process::ExitCode;

use clap::Parser;
use openai_grpc_gateway::config::{Cli, EXIT_CONFIG, StartupError};

/// mimalloc rather than glibc's malloc: after a burst of streams it gives the memory back to the
/// system, and it costs less CPU per event (BENCHMARKS.md, "Allocator and runtime").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print to stdout and succeed; a bad flag is a config error.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match serve(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openai-grpc-gateway: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn serve(cli: Cli) -> Result<(), StartupError> {
    let mut settings = cli.load()?;
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log)
        .map_err(|e| StartupError::config(format!("--log / GATEWAY_LOG: {e}")))?;
    // Flushes exported traces when serving ends.
    let _tracing = openai_grpc_gateway::telemetry::init_tracing(
        settings.log_format,
        filter,
        settings.otlp_endpoint.as_ref(),
        &settings.otel_service_name,
    )
    .map_err(StartupError::runtime)?;
    let shutdown = shutdown_signal()?;
    // Keeps the demo upstream alive for the life of the process.
    let _demo = demo(settings.demo, &mut settings.config).await?;
    let listen = settings.config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| StartupError::runtime(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener.local_addr().unwrap_or(listen);
    tracing::info!(%addr, upstream = %settings.config.upstream.base_url, "serving gRPC");
    if settings.config.web.page {
        let scheme = if settings.config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!(
            "web page at {scheme}://{addr}/ (gRPC-Web on the same port; --no-web turns it off)"
        );
    }
    openai_grpc_gateway::run(listener, settings.config, shutdown).await
}

#[cfg(feature = "demo")]
async fn demo(
    on: bool,
    config: &mut openai_grpc_gateway::config::Config,
) -> Result<Option<openai_grpc_gateway::fake::FakeOpenAi>, StartupError> {
    if !on {
        return Ok(None);
    }
    let fake = openai_grpc_gateway::demo::start(config).await?;
    tracing::warn!(upstream = %fake.base_url(), "demo mode: answering from the built-in fake OpenAI, not api.openai.com");
    Ok(Some(fake))
}

#[cfg(not(feature = "demo"))]
async fn demo(on: bool, _: &mut openai_grpc_gateway::config::Config) -> Result<(), StartupError> {
    if on {
        return Err(StartupError::config(
            "--demo: this build has no demo upstream (built without the `demo` feature)",
        ));
    }
    Ok(())
}

/// Registers for SIGINT (Ctrl-C) and SIGTERM now, and returns a future that resolves on
/// either. Registering before the listener binds matters: a signal that arrives before the
/// handler is installed would kill the process without a drain.
fn shutdown_signal() -> Result<impl Future<Output = ()> + Send, StartupError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let register = |kind| {
            signal(kind).map_err(|e| StartupError::runtime(format!("cannot handle signals: {e}")))
        };
        let mut term = register(SignalKind::terminate())?;
        let mut int = register(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
