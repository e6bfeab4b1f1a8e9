//! Compiles the wire messages with prost through protox, so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/scriptorium/v1/scriptorium.proto"];
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(files, ["proto"])?;
    let mut config = prost_build::Config::new();
    // The brief, sampling and usage are also stored in JSON book records.
    for ty in ["BookBrief", "Sampling", "Usage"] {
        config.type_attribute(
            format!(".scriptorium.v1.{ty}"),
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
        );
    }
    config.compile_fds(descriptors)?;
    Ok(())
}
