//! The browser side of the gRPC port: the built-in web page and CORS.
//!
//! gRPC-Web itself is tonic-web, wrapped around each service in [`crate::server`]. This module
//! adds what a browser needs besides: the page (built from `web/` by `scripts/build-web.sh`
//! and embedded in the binary, so running the gateway needs no npm), plain `GET` routes beside
//! the gRPC paths, and the CORS layer for pages served from other origins.
//!
//! gRPC and gRPC-Web are always `POST`; the page is only ever `GET`/`HEAD`. So a `GET` the page
//! does not answer (`/favicon.ico`, or `/` with `--no-web`) is an HTTP 404, while any other
//! unknown path keeps tonic's answer for it, gRPC `UNIMPLEMENTED`.

use std::time::Duration;

use axum::{
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::Cors;

/// The page's HTML, as built into `web/dist/` by `scripts/build-web.sh`.
const INDEX_HTML: &str = include_str!("../web/dist/index.html");
/// The page's script: the generated protobuf and Connect gRPC-Web client, bundled by esbuild.
const APP_JS: &str = include_str!("../web/dist/app.js");

/// Where the page fetches its script from (the HTML names this path).
pub const APP_JS_PATH: &str = "/app.js";

/// What the page may load: its own script and styles, images and audio it assembles as blobs,
/// `dall-e` image URLs, and gRPC-Web calls to this or another gateway (the page's "Gateway"
/// setting).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' blob: data: https:; media-src 'self' blob:; connect-src 'self' http: https:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Request headers a gRPC-Web page sends: what Connect's gRPC-Web transport and grpc-web
/// clients send, plus the gateway's own metadata (caller token, profile).
const ALLOWED_HEADERS: [&str; 7] = [
    "content-type",
    "authorization",
    "x-openai-profile",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "connect-protocol-version",
];

/// Response headers a page on another origin may read: the gRPC status (sent as headers in a
/// Trailers-Only answer), and the upstream request id and rate-limit metadata the gateway
/// returns on every call (README, "Response metadata").
const EXPOSED_HEADERS: [&str; 11] = [
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "x-request-id",
    "openai-processing-ms",
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
];

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// Adds the page's routes (when `page` is set) and the `GET` fallback to the gRPC routes.
pub(crate) fn with_page(grpc: axum::Router, page: bool) -> axum::Router {
    let router = if page {
        grpc.route("/", get(index))
            .route("/index.html", get(index))
            .route(APP_JS_PATH, get(app_js))
    } else {
        grpc
    };
    router.fallback(fallback)
}

/// The CORS layer for `cors`, or `None` when CORS is off.
pub(crate) fn cors_layer(cors: &Cors) -> Option<CorsLayer> {
    let origins = match cors {
        Cors::Off => return None,
        Cors::AnyOrigin => AllowOrigin::any(),
        Cors::Origins(list) => AllowOrigin::list(
            list.iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        ),
    };
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::POST])
            .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
            .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
            .max_age(PREFLIGHT_MAX_AGE),
    )
}

async fn index() -> Response {
    page(INDEX_HTML, "text/html; charset=utf-8")
}

async fn app_js() -> Response {
    page(APP_JS, "text/javascript; charset=utf-8")
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The page changes with the binary: always revalidate.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// Unknown paths. tonic's own fallback answers every method with gRPC `UNIMPLEMENTED`; this
/// keeps that for gRPC clients (always `POST`) and gives browsers fetching a page (`GET`,
/// `HEAD`) a plain 404 instead of an HTTP 200 carrying a gRPC status.
async fn fallback(method: Method) -> Response {
    if method == Method::GET || method == Method::HEAD {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    tonic::Status::unimplemented("")
        .into_http::<axum::body::Body>()
        .into_response()
}
