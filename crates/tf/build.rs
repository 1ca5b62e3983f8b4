//! Compiles `proto/tensorflow.proto` with protox (pure Rust, no `protoc` needed) and prost-build.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/tensorflow.proto");
    let descriptors = protox::compile(["tensorflow.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
