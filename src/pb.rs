//! The generated protobuf types (`proto/openai_gateway/v1/*.proto` is the contract) and the
//! descriptor set compiled by `build.rs`, used by reflection and by [`crate::convert`].

use std::sync::LazyLock;

use prost_reflect::DescriptorPool;

#[allow(missing_docs, clippy::all, clippy::pedantic)]
mod generated {
    tonic::include_proto!("openai_gateway.v1");
}

pub use generated::*;

/// The encoded `FileDescriptorSet` of every file in `proto/` and their imports (with comments).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/openai_gateway_descriptor.bin"));

/// The descriptors as a pool, decoded once.
pub fn pool() -> &'static DescriptorPool {
    static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
        DescriptorPool::decode(FILE_DESCRIPTOR_SET).expect("build.rs wrote a valid descriptor set")
    });
    &POOL
}
