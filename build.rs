//! Compiles `proto/` with protox, a proto compiler in pure Rust, so that a
//! machine with only the Rust toolchain builds authgate: no system `protoc`.
//! Only the `server` feature (the demo service and its clients) needs the
//! generated code, so a gate-only build compiles no proto at all.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "server")]
    compile_proto()?;
    #[cfg(feature = "authz")]
    envoy_descriptor_set()?;
    Ok(())
}

/// Envoy's ext_authz service and everything it imports, as one descriptor
/// set, for `authz`'s reflection and metrics (envoy-types ships the Rust
/// types, not their descriptors).
#[cfg(feature = "authz")]
fn envoy_descriptor_set() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let mut compiler = protox::Compiler::new(["proto/envoy-authz"])?;
    compiler
        .include_imports(true)
        .open_file("envoy/service/auth/v3/external_auth.proto")?;
    std::fs::write(
        out_dir.join("envoy_authz_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    Ok(())
}

#[cfg(feature = "server")]
fn compile_proto() -> Result<(), Box<dyn std::error::Error>> {
    use std::{env, fs, path::PathBuf};

    const PROTO: &str = "proto/authgate/v1/private.proto";

    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=examples/proto");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_source_info(true).open_file(PROTO)?;
    // The descriptor set that reflection serves, so grpcurl needs no .proto file.
    fs::write(
        out_dir.join("authgate_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure().compile_fds(compiler.file_descriptor_set())?;

    // The streaming example's service, for examples/streaming.rs and its
    // test; the library itself never includes it.
    let mut example = protox::Compiler::new(["examples/proto"])?;
    example.open_file("ticker.proto")?;
    tonic_prost_build::configure().compile_fds(example.file_descriptor_set())?;

    // The library example's Greeter (examples/greeter), compiled exactly
    // as the library guide (src/lib.rs) tells a user to compile their own proto.
    let mut greeter = protox::Compiler::new(["examples/proto"])?;
    greeter
        .include_source_info(true)
        .open_file("greeter.proto")?;
    fs::write(
        out_dir.join("greeter_descriptor.bin"),
        greeter.encode_file_descriptor_set(),
    )?;
    tonic_prost_build::configure().compile_fds(greeter.file_descriptor_set())?;
    Ok(())
}
