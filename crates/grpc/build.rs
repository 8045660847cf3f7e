//! Compiles `proto/sluice/v1/forward.proto` (at the workspace root) with
//! prost and tonic. Uses `$PROTOC` when set, otherwise the protoc shipped in
//! the `protoc-bin-vendored` crate, so a fresh machine needs no system protoc.
#![allow(unsafe_code)]

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        // SAFETY: the build script is single-threaded here.
        unsafe { std::env::set_var("PROTOC", protoc) };
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    tonic_prost_build::configure()
        .bytes(".")
        .compile_protos(&[root.join("sluice/v1/forward.proto")], std::slice::from_ref(&root))?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
