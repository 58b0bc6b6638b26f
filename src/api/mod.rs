//! The gRPC layer: one file per service holding each RPC's own parts (validation, the upstream
//! request, the conversion of what comes back), and [`call`], the one call path that runs every
//! RPC (validation, admission, profile, deadline, trace context, upstream call, the ready
//! message or the stream pump, and the bookkeeping). Status codes come only from
//! [`crate::error`].

pub mod admission;
pub mod call;
pub mod conversations;
pub mod images;
pub mod profiles;
pub mod pump;
pub mod responses;
pub mod speech;
mod validate;
mod validate_lifecycle;
mod validate_media;
