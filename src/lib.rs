//! openai-grpc-gateway: OpenAI's Responses, Images and Speech APIs behind typed, streaming gRPC.
//!
//! Layout (dependency direction: `main -> server -> api -> {openai, convert, error}`, `openai -> sse`):
//!
//! | module      | one job |
//! |-------------|---------|
//! | [`pb`]      | the generated protobuf types and the descriptor set (`proto/` is the contract) |
//! | [`config`]  | every setting, documented once: flags with environment fallbacks |
//! | [`auth`]    | who may call: caller bearer tokens, checked in constant time |
//! | [`server`]  | wiring: services, health, reflection, shutdown |
//! | [`api`]     | thin gRPC handlers, one file per service: validate -> convert -> call -> stream back; `api::call` is one call's lifecycle (admission, deadline, heartbeats, the stream pump), `api::profiles` picks the upstream |
//! | [`openai`]  | the OpenAI HTTP client (reqwest); knows JSON, never imports tonic |
//! | [`sse`]     | a pure WHATWG server-sent-events decoder: bytes in, events out; no IO, no JSON |
//! | [`convert`] | JSON <-> proto, driven by the descriptors; the only code that knows both vocabularies |
//! | [`error`]   | the single place that chooses a gRPC status code |
//! | [`telemetry`] | the per-RPC span, Prometheus metrics, W3C trace context |
//! | [`fake`]    | a fake OpenAI server on loopback: the `--demo` upstream and the test double |

pub mod api;
pub mod auth;
pub mod config;
pub mod convert;
pub mod error;
pub mod fake;
pub mod openai;
pub mod pb;
pub mod server;
pub mod sse;
pub mod telemetry;

pub use server::run;
