//! openai-grpc-gateway: OpenAI's Responses, Images and Speech APIs behind typed, streaming gRPC.
//!
//! Layout, by job (dependencies point down the table: a module uses only modules below it, and
//! `tests/architecture.rs` fails if that stops being true):
//!
//! | module      | one job |
//! |-------------|---------|
//! | [`server`]  | wiring: services, health, reflection, gRPC-Web, layers, graceful drain |
//! | [`web`]     | the browser side of the gRPC port: the built-in page (embedded from `web/dist/`), CORS |
//! | [`demo`]    | (cargo feature `demo`) `--demo`: starts the fake and points every upstream of the configuration at it |
//! | [`api`]     | the gRPC layer: one file per service with each RPC's own parts (validate, build the upstream request, convert the answer); [`api::call`] is the one call path every RPC runs through (admission, profile, deadline, trace context, the ready message or the stream pump, bookkeeping) |
//! | [`quotas`]  | per-caller and per-profile quotas (`--limits-file`): requests and tokens per minute, streams at once |
//! | [`store`]   | state shared by replicas in Redis (`--redis-url`): quota counters, key cooldowns, ownership bindings |
//! | [`telemetry`] | the per-RPC span, Prometheus metrics, W3C trace context, OTLP export |
//! | [`config`]  | every setting, documented once: flags with environment fallbacks, the files they name |
//! | [`auth`]    | who may call: caller bearer tokens, checked in constant time |
//! | [`error`]   | the single place that chooses a gRPC status code |
//! | [`convert`] | JSON <-> proto: the only code that knows both vocabularies (descriptor-driven for Responses; Images and Speech) |
//! | [`owners`]  | whose stored object is it: the bindings of responses and conversations to their caller and profile |
//! | [`usage`]   | the typed token usage of one response |
//! | [`openai`]  | the OpenAI HTTP client (reqwest) and its settings; knows JSON and HTTP, never imports tonic |
//! | [`sse`]     | a pure WHATWG server-sent-events decoder: bytes in, events out; no IO, no JSON |
//! | [`pb`]      | the generated protobuf types, the descriptor set (`proto/` is the contract), the services' codec |
//! | [`fake`]    | (cargo feature `demo`, on by default) a fake OpenAI server on loopback: the `--demo` upstream and the test double |

pub mod api;
pub mod auth;
pub mod config;
pub mod convert;
#[cfg(feature = "demo")]
pub mod demo;
pub mod error;
#[cfg(feature = "demo")]
pub mod fake;
pub mod openai;
pub mod owners;
pub mod pb;
pub mod quotas;
pub mod server;
pub mod sse;
pub mod store;
pub mod telemetry;
pub mod usage;
pub mod web;

pub use server::run;
