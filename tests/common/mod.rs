//! Test harness: the fake OpenAI and a gateway pointed at it, both on 127.0.0.1:0.
#![allow(dead_code, unreachable_pub)]

use std::{net::SocketAddr, path::PathBuf, sync::OnceLock, time::Duration};

use openai_grpc_gateway::{
    config::{Config, Drain},
    fake::FakeOpenAi,
    openai::{ApiKey, UpstreamConfig},
    pb::{
        CreateResponseRequest, CreateResponseResponse,
        responses_service_client::ResponsesServiceClient,
    },
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{Request, Status, Streaming, transport::Channel};
use tonic_types::StatusExt;

/// The key the harness gives the gateway; tests assert it never leaks.
pub const TEST_KEY: &str = "sk-test-harness-0123456789";

/// A running fake upstream plus a gateway in front of it.
pub struct Harness {
    /// The fake OpenAI: queue scenarios, read what it received.
    pub fake: FakeOpenAi,
    /// The gateway's gRPC address.
    pub addr: SocketAddr,
    /// The Prometheus endpoint's address.
    pub metrics_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Harness {
    /// Fake + gateway with the default configuration and [`TEST_KEY`].
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Fake + gateway; `tweak` adjusts the configuration before the gateway starts.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let fake = FakeOpenAi::start().await.expect("fake upstream starts");
        let mut upstream = UpstreamConfig::new(&fake.base_url()).expect("fake URL is valid");
        upstream.api_key = Some(ApiKey::new(TEST_KEY).unwrap());
        let mut config = Config::new(upstream);
        // Tests stop at once unless a test asks for a drain.
        config.drain = Drain {
            delay: Duration::ZERO,
            timeout: Duration::from_secs(5),
        };
        tweak(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let metrics = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let metrics_addr = metrics.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            openai_grpc_gateway::server::run_with_metrics(listener, Some(metrics), config, async {
                let _ = rx.await;
            })
            .await
            .expect("gateway runs");
        });
        Self {
            fake,
            addr,
            metrics_addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A channel to the gateway (connects lazily; the listener is already bound).
    pub fn channel(&self) -> Channel {
        Channel::from_shared(self.endpoint())
            .unwrap()
            .connect_lazy()
    }

    /// A generated ResponsesService client.
    pub fn responses(&self) -> ResponsesServiceClient<Channel> {
        ResponsesServiceClient::new(self.channel())
    }

    /// One CreateResponse call read to its end: the messages and the final status (None when it
    /// ended OK); Err when the call failed before the stream opened.
    pub async fn call(
        &self,
        request: impl tonic::IntoRequest<CreateResponseRequest>,
    ) -> Result<(Vec<CreateResponseResponse>, Option<Status>), Status> {
        let stream = self
            .responses()
            .create_response(request)
            .await?
            .into_inner();
        Ok(drain(stream).await)
    }

    /// The Prometheus text served at `/metrics`.
    pub async fn scrape(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.metrics_addr))
            .await
            .expect("metrics endpoint answers")
            .text()
            .await
            .unwrap()
    }

    /// Signals shutdown (as SIGTERM does) without waiting; [`Harness::stop`] then waits.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Stops the gateway and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("gateway task ends cleanly");
        }
    }
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The interop tools (grpcurl 1.8.6 and a Python venv with grpcio-tools in `venv/`, buf in
/// `node/`), installed once per test binary by `scripts/interop-setup.sh` into `target/interop`
/// (idempotent; nothing system-wide).
pub fn interop_tools() -> PathBuf {
    static SETUP: OnceLock<()> = OnceLock::new();
    SETUP.get_or_init(|| {
        let status = std::process::Command::new("bash")
            .arg(repo_root().join("scripts/interop-setup.sh"))
            .status()
            .expect("run scripts/interop-setup.sh");
        assert!(status.success(), "installing the interop tools failed");
    });
    repo_root().join("target/interop")
}

/// A minimal valid CreateResponse request.
pub fn text_request(input: &str) -> CreateResponseRequest {
    CreateResponseRequest {
        model: "gpt-4.1".into(),
        input_text: Some(input.into()),
        ..Default::default()
    }
}

/// `message` with these metadata pairs.
pub fn with_metadata<T>(message: T, pairs: &[(&'static str, &str)]) -> Request<T> {
    let mut request = Request::new(message);
    for (key, value) in pairs {
        request
            .metadata_mut()
            .insert(*key, value.parse().expect("valid metadata value"));
    }
    request
}

/// Reads a stream to its end: the messages, then the final status (None when it ended OK).
pub async fn drain<T>(mut stream: Streaming<T>) -> (Vec<T>, Option<Status>) {
    let mut messages = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(m)) => messages.push(m),
            Ok(None) => return (messages, None),
            Err(status) => return (messages, Some(status)),
        }
    }
}

/// The ErrorInfo reason of a status ("" when it has none).
pub fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

/// A JSON object as a `google.protobuf.Struct` (for `extra_body`, tool parameters...).
pub fn struct_of(value: serde_json::Value) -> prost_types::Struct {
    fn to_value(v: serde_json::Value) -> prost_types::Value {
        use prost_types::value::Kind;
        prost_types::Value {
            kind: Some(match v {
                serde_json::Value::Null => Kind::NullValue(0),
                serde_json::Value::Bool(b) => Kind::BoolValue(b),
                serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
                serde_json::Value::String(s) => Kind::StringValue(s),
                serde_json::Value::Array(a) => Kind::ListValue(prost_types::ListValue {
                    values: a.into_iter().map(to_value).collect(),
                }),
                serde_json::Value::Object(o) => Kind::StructValue(prost_types::Struct {
                    fields: o.into_iter().map(|(k, v)| (k, to_value(v))).collect(),
                }),
            }),
        }
    }
    match to_value(value).kind {
        Some(prost_types::value::Kind::StructValue(s)) => s,
        _ => panic!("not an object"),
    }
}
