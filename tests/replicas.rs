//! Several replicas sharing one Redis, as they run in production: two gateway processes (the
//! release binary under test) in front of the same fake OpenAI, sharing a real `redis-server`
//! (Debian's package, installed by `scripts/redis-setup.sh`; started here on a loopback port and
//! stopped by PID).
//!
//! One caller's limits hold across both replicas (requests, tokens, concurrent streams); a key
//! rate-limited on one replica is skipped by the other; a response created through one replica
//! is readable by its caller through the other and by nobody else; when Redis stops, calls are
//! served (fail-open) or refused (fail-closed), and limits hold again when it is back; and no
//! key or caller token is ever written to Redis or to a log.

mod common;

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpListener as StdListener,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use common::{drain, reason, repo_root, text_request, with_metadata};
use openai_grpc_gateway::{
    fake::{FakeOpenAi, Scenario},
    pb::{
        CreateResponseRequest, GetResponseRequest, create_response_response::Event,
        responses_service_client::ResponsesServiceClient,
    },
};
use tonic::{Code, Status, transport::Channel};

const BIN: &str = env!("CARGO_BIN_EXE_openai-grpc-gateway");
const ALICE: &str = "alice-token-0123456789abcdef";
const BOB: &str = "bob-token-0123456789abcdefgh";
const KEY_ONE: &str = "sk-replica-key-one-000000";
const KEY_TWO: &str = "sk-replica-key-two-000000";

/// `redis-server` is installed once per test binary.
fn redis_installed() {
    static SETUP: OnceLock<()> = OnceLock::new();
    SETUP.get_or_init(|| {
        let status = Command::new("bash")
            .arg(repo_root().join("scripts/redis-setup.sh"))
            .status()
            .expect("run scripts/redis-setup.sh");
        assert!(status.success(), "installing redis-server failed");
    });
}

/// A free loopback port (bound and released; the tiny race with other processes is accepted).
fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits, bounded, until `ready` holds (each try is a real attempt, not a timed guess).
async fn until(what: &str, within: Duration, mut ready: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !ready().await {
        assert!(
            start.elapsed() < within,
            "{what} did not happen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `redis-server` on a loopback port, without persistence; killed by PID when dropped.
struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    async fn start() -> Self {
        redis_installed();
        let mut redis = Self {
            child: None,
            port: free_port(),
        };
        redis.run().await;
        redis
    }

    async fn run(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let url = self.url();
        until(
            "redis-server answering PING",
            Duration::from_secs(10),
            async || {
                let Ok(client) = redis::Client::open(url.as_str()) else {
                    return false;
                };
                let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
                    return false;
                };
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            },
        )
        .await;
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Every key in Redis with a printable form of its value.
    async fn dump(&self) -> Vec<(String, String)> {
        let client = redis::Client::open(self.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut out = Vec::new();
        for key in keys {
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            let value = match kind.as_str() {
                "string" => redis::cmd("GET")
                    .arg(&key)
                    .query_async::<String>(&mut conn)
                    .await
                    .unwrap(),
                "zset" => redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async::<Vec<String>>(&mut conn)
                    .await
                    .unwrap()
                    .join(","),
                other => format!("<{other}>"),
            };
            out.push((key, value));
        }
        out
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One gateway process; killed by PID when dropped. Its log is kept for inspection.
struct Replica {
    child: Child,
    addr: String,
    metrics: String,
    log: Arc<Mutex<String>>,
}

impl Replica {
    fn start(redis: &Redis, config_dir: &std::path::Path, extra: &[&str]) -> Self {
        let limits = config_dir.join("limits.json");
        let profiles = config_dir.join("profiles.json");
        let mut child = Command::new(BIN)
            .env_clear()
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(["--log-format", "json", "--log", "info"])
            .arg("--auth-tokens")
            .arg(format!("alice={ALICE},bob={BOB}"))
            .arg("--redis-url")
            .arg(redis.url())
            .arg("--limits-file")
            .arg(&limits)
            .arg("--profiles-file")
            .arg(&profiles)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the gateway");
        let log = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut addr, mut metrics) = (None, None);
        while addr.is_none() || metrics.is_none() {
            let line = lines
                .next()
                .expect("the gateway logs before exiting")
                .unwrap();
            log.lock().unwrap().push_str(&line);
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            let field = v["fields"]["addr"].as_str().map(str::to_owned);
            if line.contains("serving gRPC") {
                addr = field;
            } else if line.contains("serving Prometheus metrics") {
                metrics = field;
            }
        }
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push_str(&line);
            }
        });
        Self {
            child,
            addr: addr.unwrap(),
            metrics: metrics.unwrap(),
            log,
        }
    }

    fn client(&self) -> ResponsesServiceClient<Channel> {
        ResponsesServiceClient::new(
            Channel::from_shared(format!("http://{}", self.addr))
                .unwrap()
                .connect_lazy(),
        )
    }

    /// One non-streamed call by `token`.
    async fn call(&self, token: &str) -> Result<String, Status> {
        let request = with_metadata(
            CreateResponseRequest {
                stream: Some(false),
                ..text_request("hi")
            },
            &[("authorization", &format!("Bearer {token}"))],
        );
        let stream = self.client().create_response(request).await?.into_inner();
        let (messages, end) = drain(stream).await;
        if let Some(status) = end {
            return Err(status);
        }
        match messages.into_iter().next().and_then(|m| m.event) {
            Some(Event::Completed(e)) => Ok(e.response.unwrap().id.unwrap()),
            other => panic!("{other:?}"),
        }
    }

    async fn scrape(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.metrics))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// A fake OpenAI, a Redis and the configuration files both replicas read: `limits` as the
/// limits file, and one profile holding two keys.
async fn deployment(limits: &str) -> (FakeOpenAi, Redis, tempdir::Dir) {
    let fake = FakeOpenAi::start().await.unwrap();
    let redis = Redis::start().await;
    let dir = tempdir::Dir::new();
    std::fs::File::create(dir.path().join("limits.json"))
        .unwrap()
        .write_all(limits.as_bytes())
        .unwrap();
    let profiles = serde_json::json!({
        "default": "main",
        "profiles": {"main": {"base_url": fake.base_url(), "api_keys": [KEY_ONE, KEY_TWO]}}
    });
    std::fs::write(dir.path().join("profiles.json"), profiles.to_string()).unwrap();
    (fake, redis, dir)
}

/// A scratch folder under `target/`, removed when dropped.
mod tempdir {
    use std::path::{Path, PathBuf};

    pub(super) struct Dir(PathBuf);

    impl Dir {
        pub(super) fn new() -> Self {
            let path = super::repo_root()
                .join("target/replicas-test")
                .join(format!("{:016x}", rand::random::<u64>()));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        pub(super) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn quota_subject(status: &Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .quota_failure()
        .unwrap()
        .violations[0]
        .subject
        .clone()
}

#[tokio::test]
async fn one_callers_requests_per_minute_hold_across_two_replicas() {
    let (fake, redis, dir) = deployment(r#"{"default":{"requests_per_minute":10}}"#).await;
    let a = Replica::start(&redis, dir.path(), &[]);
    let b = Replica::start(&redis, dir.path(), &[]);
    let (mut answered, mut refused) = (0, 0);
    for i in 0..12 {
        let replica = if i % 2 == 0 { &a } else { &b };
        match replica.call(ALICE).await {
            Ok(_) => answered += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert_eq!(reason(&status), "QUOTA_EXCEEDED");
                assert_eq!(quota_subject(&status), "caller:alice");
                refused += 1;
            }
        }
    }
    assert_eq!((answered, refused), (10, 2));
    assert_eq!(
        fake.requests().len(),
        10,
        "the refusals reached no upstream"
    );
    b.call(BOB).await.expect("bob has his own allowance");
}

#[tokio::test]
async fn tokens_and_streams_are_counted_across_replicas() {
    // One call to "hi" through a replica, to learn what it uses (the fake is deterministic).
    let (fake, redis, dir) = deployment(r#"{}"#).await;
    let probe = Replica::start(&redis, dir.path(), &[]);
    let id = probe.call(ALICE).await.unwrap();
    let used = {
        let response = probe
            .client()
            .get_response(with_metadata(
                GetResponseRequest {
                    response_id: id,
                    ..Default::default()
                },
                &[("authorization", &format!("Bearer {ALICE}"))],
            ))
            .await
            .unwrap()
            .into_inner()
            .response
            .unwrap();
        response.usage.unwrap().total_tokens.unwrap()
    };
    drop(probe);
    let limits = format!(
        r#"{{"default":{{"tokens_per_minute":{},"concurrent_streams":1}}}}"#,
        used + used / 2
    );
    std::fs::write(dir.path().join("limits.json"), limits).unwrap();
    let a = Replica::start(&redis, dir.path(), &[]);
    let b = Replica::start(&redis, dir.path(), &[]);
    a.call(ALICE).await.unwrap();
    b.call(ALICE).await.unwrap(); // admitted: A's usage alone is within the limit
    // Both calls' tokens together are over it, on either replica.
    let refused = a.call(ALICE).await.unwrap_err();
    assert_eq!(reason(&refused), "QUOTA_EXCEEDED");

    // One stream at a time for bob, whichever replica serves it.
    fake.push(Scenario::slow(Duration::from_millis(100)));
    let bob = [("authorization", format!("Bearer {BOB}"))];
    let bob: Vec<(&str, &str)> = bob.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut first = a
        .client()
        .create_response(with_metadata(text_request("slow"), &bob))
        .await
        .unwrap()
        .into_inner();
    first.message().await.unwrap().unwrap();
    let second = b
        .client()
        .create_response(with_metadata(text_request("second"), &bob))
        .await
        .unwrap_err();
    assert_eq!(reason(&second), "QUOTA_EXCEEDED");
    drain(first).await;
    // The lease goes back when the stream ends (released asynchronously: wait, bounded).
    until(
        "the lease freed on the other replica",
        Duration::from_secs(5),
        async || match b
            .client()
            .create_response(with_metadata(text_request("third"), &bob))
            .await
        {
            Ok(stream) => drain(stream.into_inner()).await.1.is_none(),
            Err(_) => false,
        },
    )
    .await;
}

#[tokio::test]
async fn a_key_rate_limited_on_one_replica_is_skipped_by_the_other() {
    let (fake, redis, dir) = deployment(r#"{}"#).await;
    fake.refuse_key(KEY_ONE, Scenario::rate_limited(60));
    let a = Replica::start(&redis, dir.path(), &[]);
    let b = Replica::start(&redis, dir.path(), &[]);
    a.call(ALICE).await.unwrap();
    let on_a = fake.requests().len();
    for _ in 0..4 {
        b.call(ALICE).await.unwrap();
    }
    let keys: Vec<String> = fake.requests()[on_a..]
        .iter()
        .map(|r| r.header("authorization").unwrap_or("").to_owned())
        .collect();
    assert!(
        keys.iter().all(|k| k == &format!("Bearer {KEY_TWO}")),
        "{keys:?}"
    );
    assert_eq!(keys.len(), 4, "B never tried the cooling key");
}

#[tokio::test]
async fn a_response_is_its_callers_on_every_replica_and_nobody_elses() {
    let (fake, redis, dir) = deployment(r#"{}"#).await;
    let a = Replica::start(&redis, dir.path(), &[]);
    let b = Replica::start(&redis, dir.path(), &[]);
    let id = a.call(ALICE).await.unwrap();
    let get = |token: &str| {
        with_metadata(
            GetResponseRequest {
                response_id: id.clone(),
                ..Default::default()
            },
            &[("authorization", &format!("Bearer {token}"))],
        )
    };
    let got = b
        .client()
        .get_response(get(ALICE))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.response.unwrap().id.as_deref(), Some(id.as_str()));
    let asked = fake.requests().len();
    for replica in [&a, &b] {
        let refused = replica.client().get_response(get(BOB)).await.unwrap_err();
        assert_eq!(refused.code(), Code::NotFound);
    }
    assert_eq!(
        fake.requests().len(),
        asked,
        "refused without an upstream call"
    );
    // A restart forgets nothing: a new replica knows the binding from Redis.
    drop(a);
    let c = Replica::start(&redis, dir.path(), &[]);
    c.client().get_response(get(ALICE)).await.unwrap();

    // Nothing secret was written to Redis or to a log.
    let dump = redis.dump().await;
    assert!(
        dump.iter()
            .any(|(k, _)| k.starts_with("openai-gateway:owner:response:")),
        "{dump:?}"
    );
    for (key, value) in &dump {
        assert!(key.starts_with("openai-gateway:"), "{key}");
        for secret in [KEY_ONE, KEY_TWO, ALICE, BOB, "sk-"] {
            assert!(
                !key.contains(secret) && !value.contains(secret),
                "{key} = {value}"
            );
        }
    }
    for replica in [&b, &c] {
        let log = replica.log.lock().unwrap().clone();
        for secret in [KEY_ONE, KEY_TWO, ALICE, BOB] {
            assert!(!log.contains(secret), "a secret in the log");
        }
    }
}

#[tokio::test]
async fn with_a_key_prefix_every_key_the_gateway_writes_starts_with_it() {
    // Every kind of key at once: request and token counters, a stream lease (the dump is taken
    // while the stream is open), a key cooldown (KEY_ONE is rate limited; the pool takes its
    // keys in turn, so one of two calls tries it) and a response binding.
    const PREFIX: &str = "team-b:gw:";
    let (fake, redis, dir) = deployment(
        r#"{"default":{"requests_per_minute":100,"tokens_per_minute":100000,"concurrent_streams":5}}"#,
    )
    .await;
    fake.refuse_key(KEY_ONE, Scenario::rate_limited(60));
    let a = Replica::start(&redis, dir.path(), &["--redis-key-prefix", PREFIX]);
    a.call(ALICE).await.unwrap();
    a.call(ALICE).await.unwrap();
    fake.push(Scenario::slow(Duration::from_millis(100)));
    let mut open = a
        .client()
        .create_response(with_metadata(
            text_request("slow"),
            &[("authorization", &format!("Bearer {ALICE}"))],
        ))
        .await
        .unwrap()
        .into_inner();
    open.message().await.unwrap().unwrap();
    let dump = redis.dump().await;
    drain(open).await;

    let keys: Vec<&str> = dump.iter().map(|(k, _)| k.as_str()).collect();
    for key in &keys {
        assert!(key.starts_with(PREFIX), "{key} lacks the prefix: {keys:?}");
        assert!(!key.starts_with("openai-gateway:"), "{key}");
    }
    for kind in [
        "quota:caller:alice:requests_per_minute",
        "quota:caller:alice:tokens_per_minute",
        "quota:caller:alice:concurrent_streams",
        "cooldown:",
        "owner:response:",
    ] {
        assert!(
            keys.iter()
                .any(|k| k.starts_with(&format!("{PREFIX}{kind}"))),
            "no {kind} key: {keys:?}"
        );
    }
}

#[tokio::test]
async fn when_redis_stops_calls_fail_open_or_closed_and_limits_return_with_it() {
    let (_fake, mut redis, dir) = deployment(r#"{"default":{"requests_per_minute":2}}"#).await;
    let open = Replica::start(&redis, dir.path(), &[]);
    let closed = Replica::start(&redis, dir.path(), &["--limits-fail-closed"]);
    open.call(ALICE).await.unwrap();
    open.call(ALICE).await.unwrap();
    assert_eq!(
        reason(&open.call(ALICE).await.unwrap_err()),
        "QUOTA_EXCEEDED"
    );

    redis.stop();
    // Fail-open: served, over the limit, while Redis is away.
    for _ in 0..3 {
        open.call(BOB).await.expect("served while Redis is down");
    }
    // Fail-closed: refused with UNAVAILABLE.
    let refused = closed.call(BOB).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    assert_eq!(reason(&refused), "LIMITS_UNAVAILABLE");
    let metrics = open.scrape().await;
    assert!(metrics.contains("gateway_redis_up 0"), "{metrics}");
    let log = open.log.lock().unwrap().clone();
    assert_eq!(
        log.matches("Redis is unreachable").count(),
        1,
        "logged once per outage"
    );

    redis.run().await;
    // Both replicas recover by themselves; the (fresh) counters hold again.
    until(
        "the fail-closed replica serving again",
        Duration::from_secs(10),
        async || closed.call(BOB).await.is_ok(),
    )
    .await;
    closed.call(BOB).await.unwrap();
    // The fail-open replica counts in Redis again once its own connection is back (calls it
    // serves before that are not counted): bob's two calls above use up his allowance.
    until(
        "the limit holding again on the other replica",
        Duration::from_secs(10),
        async || {
            open.call(BOB)
                .await
                .is_err_and(|status| reason(&status) == "QUOTA_EXCEEDED")
        },
    )
    .await;
    assert!(open.scrape().await.contains("gateway_redis_up 1"));
    assert!(
        open.log
            .lock()
            .unwrap()
            .contains("Redis is reachable again")
    );
}
