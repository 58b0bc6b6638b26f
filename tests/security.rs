//! Who may call, with whose key: caller tokens, health and reflection exemptions, credential
//! profiles, caller-supplied keys, TLS and mutual TLS, upstream headers returned as metadata,
//! (No secret in any log line or error: tests/logs.rs.)

mod common;

use common::{Harness, TEST_KEY, drain, reason, text_request, with_metadata};
use openai_grpc_gateway::{
    auth::parse_tokens,
    config::{Cli, Profile, Profiles, Tls},
    fake::FakeOpenAi,
    openai::{ApiKey, UpstreamConfig},
    pb::responses_service_client::ResponsesServiceClient,
};
use tonic::{
    Code, Status,
    transport::{Certificate, Channel, ClientTlsConfig, Identity},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const SVC_TOKEN: &str = "svc-token-0123456789abcdef";
const OTHER_TOKEN: &str = "other-token-0123456789abcd";

fn callers() -> Vec<openai_grpc_gateway::auth::CallerToken> {
    parse_tokens(&format!("svc={SVC_TOKEN},other={OTHER_TOKEN}"), "test").unwrap()
}

// ---- caller authentication -------------------------------------------------------------------

#[tokio::test]
async fn calls_without_a_valid_token_are_refused_before_any_upstream_call() {
    let h = Harness::start_with(|c| c.auth.tokens = callers()).await;
    for metadata in [
        vec![],
        vec![("authorization", "Bearer not-a-valid-token-000000")],
        vec![("authorization", SVC_TOKEN)],
    ] {
        let status = h
            .responses()
            .create_response(with_metadata(text_request("hi"), &metadata))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{metadata:?}");
        assert_eq!(reason(&status), "CALLER_UNAUTHENTICATED");
    }
    assert!(
        h.fake.requests().is_empty(),
        "refused before any upstream call"
    );

    // With a token: served, and upstream gets the gateway's OpenAI key, not the caller token.
    let bearer = format!("Bearer {SVC_TOKEN}");
    let stream = h
        .responses()
        .create_response(with_metadata(
            text_request("hi"),
            &[("authorization", &bearer)],
        ))
        .await
        .unwrap();
    assert!(drain(stream.into_inner()).await.1.is_none());
    assert_eq!(
        h.fake.requests()[0].header("authorization"),
        Some(format!("Bearer {TEST_KEY}").as_str())
    );
}

#[tokio::test]
async fn health_always_answers_and_reflection_is_open_unless_configured() {
    for protect in [false, true] {
        let h = Harness::start_with(|c| {
            c.auth.tokens = callers();
            c.auth.protect_reflection = protect;
        })
        .await;
        let health = HealthClient::new(h.channel())
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health needs no token");
        assert_eq!(health.into_inner().status(), ServingStatus::Serving);

        use tonic_reflection::pb::v1::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest,
        };
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let listed = ServerReflectionClient::new(h.channel())
            .server_reflection_info(tokio_stream::iter([request]))
            .await;
        let result = match listed {
            Ok(r) => r.into_inner().message().await.map(|_| ()),
            Err(s) => Err(s),
        };
        if protect {
            assert_eq!(result.unwrap_err().code(), Code::Unauthenticated);
        } else {
            result.expect("reflection is open by default");
        }
    }
}

// ---- credential profiles ----------------------------------------------------------------------

async fn two_profiles(tweak: impl FnOnce(&mut Profiles)) -> (Harness, FakeOpenAi) {
    let staging_fake = FakeOpenAi::start().await.unwrap();
    let staging_url = staging_fake.base_url();
    let h = Harness::start_with(move |c| {
        let mut production = c.upstream.clone();
        production.api_key = Some(ApiKey::new("sk-production-key-1").unwrap());
        production.organization = Some("org-production".into());
        let mut staging = UpstreamConfig::new(&staging_url).unwrap();
        staging.api_key = Some(ApiKey::new("sk-staging-key-2").unwrap());
        staging.organization = Some("org-staging".into());
        staging.project = Some("proj_staging".into());
        c.profiles.default = "production".into();
        c.profiles.named.insert(
            "production".into(),
            Profile {
                upstream: production,
                callers: None,
            },
        );
        c.profiles.named.insert(
            "staging".into(),
            Profile {
                upstream: staging,
                callers: None,
            },
        );
        tweak(&mut c.profiles);
    })
    .await;
    (h, staging_fake)
}

#[tokio::test]
async fn two_profiles_route_to_two_upstreams_with_their_own_keys_and_headers() {
    let (h, staging) = two_profiles(|_| {}).await;
    let stream = h
        .responses()
        .create_response(with_metadata(text_request("hi"), &[]))
        .await
        .unwrap();
    assert!(drain(stream.into_inner()).await.1.is_none());
    let stream = h
        .responses()
        .create_response(with_metadata(
            text_request("hi"),
            &[("x-openai-profile", "staging")],
        ))
        .await
        .unwrap();
    assert!(drain(stream.into_inner()).await.1.is_none());

    let production = &h.fake.requests()[0];
    assert_eq!(
        h.fake.requests().len(),
        1,
        "only the default call went to production"
    );
    assert_eq!(
        production.header("authorization"),
        Some("Bearer sk-production-key-1")
    );
    assert_eq!(
        production.header("openai-organization"),
        Some("org-production")
    );
    assert_eq!(production.header("openai-project"), None);
    let staged = &staging.requests()[0];
    assert_eq!(staging.requests().len(), 1);
    assert_eq!(
        staged.header("authorization"),
        Some("Bearer sk-staging-key-2")
    );
    assert_eq!(staged.header("openai-organization"), Some("org-staging"));
    assert_eq!(staged.header("openai-project"), Some("proj_staging"));

    let status = h
        .responses()
        .create_response(with_metadata(
            text_request("hi"),
            &[("x-openai-profile", "editor")],
        ))
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "UNKNOWN_PROFILE");
    assert!(
        status.message().contains("production, staging"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_profile_can_be_limited_to_certain_callers() {
    let staging_fake = FakeOpenAi::start().await.unwrap();
    let url = staging_fake.base_url();
    let h = Harness::start_with(move |c| {
        c.auth.tokens = callers();
        let mut staging = UpstreamConfig::new(&url).unwrap();
        staging.api_key = Some(ApiKey::new("sk-staging-key-2").unwrap());
        c.profiles.default = "production".into();
        c.profiles.named.insert(
            "production".into(),
            Profile {
                upstream: c.upstream.clone(),
                callers: None,
            },
        );
        c.profiles.named.insert(
            "staging".into(),
            Profile {
                upstream: staging,
                callers: Some(vec!["svc".into()]),
            },
        );
    })
    .await;
    let other = format!("Bearer {OTHER_TOKEN}");
    let status = h
        .responses()
        .create_response(with_metadata(
            text_request("hi"),
            &[("authorization", &other), ("x-openai-profile", "staging")],
        ))
        .await
        .expect_err("not for this caller");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(reason(&status), "PROFILE_NOT_ALLOWED");
    assert!(staging_fake.requests().is_empty());
    let svc = format!("Bearer {SVC_TOKEN}");
    let ok = h
        .responses()
        .create_response(with_metadata(
            text_request("hi"),
            &[("authorization", &svc), ("x-openai-profile", "staging")],
        ))
        .await
        .expect("allowed caller");
    assert!(drain(ok.into_inner()).await.1.is_none());
    assert_eq!(staging_fake.requests().len(), 1);
}

#[tokio::test]
async fn caller_keys_are_refused_by_default_and_used_when_allowed() {
    let caller_key = "sk-callers-own-key-42";
    let h = Harness::start().await;
    let status = h
        .responses()
        .create_response(with_metadata(
            text_request("hi"),
            &[("x-openai-api-key", caller_key)],
        ))
        .await
        .expect_err("off by default");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(reason(&status), "CALLER_KEYS_DISABLED");
    assert!(h.fake.requests().is_empty());

    let h = Harness::start_with(|c| {
        c.profiles.allow_caller_keys = true;
        c.upstream.organization = Some("org-gateway".into());
    })
    .await;
    let stream = h
        .responses()
        .create_response(with_metadata(
            text_request("hi"),
            &[("x-openai-api-key", caller_key)],
        ))
        .await
        .unwrap();
    assert!(drain(stream.into_inner()).await.1.is_none());
    let sent = &h.fake.requests()[0];
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {caller_key}").as_str())
    );
    assert_eq!(
        sent.header("openai-organization"),
        None,
        "the gateway's organization is not lent to a caller's key"
    );
}

#[tokio::test]
async fn profile_keys_can_come_from_files() {
    let dir = std::env::temp_dir().join(format!("gw-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("openai-key");
    std::fs::write(&key_file, "sk-from-a-mounted-secret\n").unwrap();
    let fake = FakeOpenAi::start().await.unwrap();
    let json = format!(
        r#"{{"default":"production","profiles":{{"production":{{"api_key_file":{:?},"base_url":{:?}}}}}}}"#,
        key_file.display().to_string(),
        fake.base_url()
    );
    let profiles_file = dir.join("profiles.json");
    std::fs::write(&profiles_file, json).unwrap();
    // The binary's own loading step: the profiles file, then the key file it names.
    let settings = <Cli as clap::Parser>::try_parse_from([
        "openai-grpc-gateway",
        "--profiles-file",
        profiles_file.to_str().unwrap(),
    ])
    .unwrap()
    .load()
    .unwrap();
    let profiles = settings.config.profiles;
    let h = Harness::start_with(move |c| c.profiles = profiles).await;
    let stream = h
        .responses()
        .create_response(text_request("hi"))
        .await
        .unwrap();
    assert!(drain(stream.into_inner()).await.1.is_none());
    assert_eq!(
        fake.requests()[0].header("authorization"),
        Some("Bearer sk-from-a-mounted-secret")
    );
    std::fs::remove_dir_all(dir).unwrap();
}

// ---- response metadata ---------------------------------------------------------------------------

#[tokio::test]
async fn upstream_request_id_and_rate_limits_come_back_as_metadata() {
    let h = Harness::start().await;
    for stream in [None, Some(false)] {
        let mut req = text_request("hi");
        req.stream = stream;
        let response = h.responses().create_response(req).await.unwrap();
        let md = response.metadata().clone();
        assert!(
            md.get("x-request-id")
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("req_")
        );
        for name in [
            "openai-processing-ms",
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-requests",
            "x-ratelimit-reset-tokens",
        ] {
            assert!(md.get(name).is_some(), "{name} missing ({stream:?})");
        }
        assert!(drain(response.into_inner()).await.1.is_none());
    }
}

// ---- TLS -----------------------------------------------------------------------------------------

struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["client".to_owned()])
        .unwrap()
        .signed_by(&client_key, &issuer)
        .unwrap();
    Pki {
        ca: ca.pem(),
        server_cert: server.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client.pem(),
        client_key: client_key.serialize_pem(),
    }
}

async fn tls_client(
    h: &Harness,
    pki: &Pki,
    with_identity: bool,
) -> Result<ResponsesServiceClient<Channel>, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca))
        .domain_name("localhost");
    if with_identity {
        tls = tls.identity(Identity::from_pem(&pki.client_cert, &pki.client_key));
    }
    let channel = Channel::from_shared(format!("https://{}", h.addr))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(ResponsesServiceClient::new(channel))
}

#[tokio::test]
async fn tls_and_mutual_tls() {
    let pki = pki();
    for mtls in [false, true] {
        let (cert, key, ca) = (
            pki.server_cert.clone(),
            pki.server_key.clone(),
            pki.ca.clone(),
        );
        let h = Harness::start_with(move |c| {
            c.tls = Some(Tls {
                cert_pem: cert.into_bytes(),
                key_pem: key.into_bytes(),
                client_ca_pem: mtls.then(|| ca.into_bytes()),
            })
        })
        .await;
        // A plaintext client gets nowhere.
        let plain = h.responses().create_response(text_request("hi")).await;
        assert!(plain.is_err(), "plaintext must not be served over TLS");
        // A TLS client with an identity is served in both modes.
        let mut client = tls_client(&h, &pki, true).await.expect("handshake");
        let stream = client
            .create_response(text_request("hi"))
            .await
            .expect("served over TLS");
        assert!(drain(stream.into_inner()).await.1.is_none());
        // Without a client certificate: fine for TLS, refused for mTLS.
        let anonymous = match tls_client(&h, &pki, false).await {
            Ok(mut c) => c.create_response(text_request("hi")).await.map(|_| ()),
            Err(e) => Err(Status::unavailable(e.to_string())),
        };
        assert_eq!(anonymous.is_ok(), !mtls, "mtls={mtls}: {anonymous:?}");
    }
}
