//! Compiles `proto/` with protox (pure Rust: no system protoc needed) and
//! generates prost messages and tonic clients and servers.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "dondoc/common/v1/common.proto",
        "dondoc/directives/v1/agencies.proto",
        "dondoc/directives/v1/directives.proto",
        "dondoc/directives/v1/events.proto",
        "dondoc/assignments/v1/tasks.proto",
        "dondoc/assignments/v1/statistics.proto",
        "dondoc/assignments/v1/indicators.proto",
        "dondoc/assignments/v1/events.proto",
        "dondoc/notifications/v1/notifications.proto",
        "dondoc/notifications/v1/subscriptions.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", proto_root.join(file).display());
    }
    let descriptors = protox::compile(files, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // The descriptor set feeds gRPC reflection in every server and the gateway.
    std::fs::write(
        out_dir.join("dondoc_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
