//! JSON <-> proto: the only code that knows both OpenAI's JSON vocabulary and the proto one.
//!
//! [`json`] is the generic, descriptor-driven converter; [`doc`] is the borrowed JSON tree it
//! reads on the hot path; [`responses`] applies it to the Responses API (request body out,
//! stream events and Response objects in). [`images`] and [`speech`] convert the media APIs,
//! sharing chunking, base64 and pass-through rules in [`media`].

pub mod doc;
pub mod images;
pub mod json;
pub mod media;
pub mod responses;
pub mod speech;

use std::sync::LazyLock;

pub use json::Schema;

/// The converter for this crate's contract, built from the descriptors once.
pub fn schema() -> &'static Schema {
    static SCHEMA: LazyLock<Schema> = LazyLock::new(|| Schema::new(crate::pb::pool()));
    &SCHEMA
}
