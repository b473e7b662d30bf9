//! Generates Rust code for Baton's contracts with a vendored `protoc`, so a fresh machine needs no
//! system protobuf compiler.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "workflow.proto",
        "run.proto",
        "info.proto",
        "admin.proto",
        "auth.proto",
        "queue.proto",
    ]
    .map(|f| root.join("baton/v1").join(f));
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("baton_descriptor.bin"))
        .compile_with_config(config, &files, std::slice::from_ref(&root))?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
