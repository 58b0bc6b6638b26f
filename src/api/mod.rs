//! The gRPC handlers, one file per service. Each is thin: validate -> convert -> call -> stream
//! back. Status codes come only from [`crate::error`].

pub mod responses;
mod validate;
