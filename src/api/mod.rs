//! The gRPC handlers, one file per service. Each is thin: validate -> convert -> call -> stream
//! back. Status codes come only from [`crate::error`].

pub mod call;
pub mod images;
pub mod profiles;
pub mod responses;
pub mod speech;
mod validate;
mod validate_media;
