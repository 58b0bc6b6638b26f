//! Compiles `proto/` with protox (a pure-Rust protobuf compiler, so no system `protoc` is needed),
//! writes the descriptor set to `$OUT_DIR/openai_gateway_descriptor.bin` (used by reflection and by
//! the JSON <-> proto converter) and generates the prost messages and tonic services.

use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from("proto");
    let api_dir = proto_dir.join("openai_gateway/v1");
    println!("cargo:rerun-if-changed={}", proto_dir.display());

    let mut files: Vec<PathBuf> = fs::read_dir(&api_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    files.sort();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }

    let mut compiler = protox::Compiler::new([&proto_dir])?;
    compiler.include_source_info(true).include_imports(true);
    for f in &files {
        compiler.open_file(f.strip_prefix(&proto_dir)?)?;
    }
    // The encoded set comes straight from protox: re-encoding `prost_types` descriptors would
    // drop the custom field options (json_type, json_key, gateway_only) the converter reads.
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("openai_gateway_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    let fds = compiler.file_descriptor_set();

    tonic_prost_build::configure()
        // `bytes` fields as `bytes::Bytes`: audio chunks read from the upstream go into messages
        // without a copy.
        .bytes(".")
        // Smaller per-call buffers than tonic's default (src/pb.rs).
        .codec_path("crate::pb::Codec")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
