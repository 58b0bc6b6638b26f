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

/// The codec of every generated service and client: prost, with smaller encode and decode
/// buffers than tonic's default of 8 KiB. Every open stream holds its encode buffer for as long
/// as it is open, and a stream's messages (deltas, chunks) are mostly far smaller than that;
/// larger messages grow the buffer as needed (BENCHMARKS.md, "Memory per stream").
#[derive(Debug, Clone)]
pub struct Codec<T, U>(std::marker::PhantomData<(T, U)>);

/// Initial capacity of a call's encode and decode buffers.
pub const CODEC_BUFFER_BYTES: usize = 1024;

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = tonic_prost::ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(buffers())
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::new(buffers())
    }
}

fn buffers() -> tonic::codec::BufferSettings {
    // The yield threshold stays tonic's default (32 KiB).
    tonic::codec::BufferSettings::new(CODEC_BUFFER_BYTES, 32 * 1024)
}
