// Bakes libtorch's folder into the rpath of this crate's test binaries, so `cargo test` needs no LD_LIBRARY_PATH.
// With the `napi` feature, `napi build` collects this crate's TypeScript declarations too; it forces a rebuild
// (so they are written again) through NAPI_FORCE_BUILD_CONVKIT_CORE, as napi-build does for the addon crate.
// It also generates the ONNX message types from proto/onnx.proto: protox parses the file in pure Rust and hands
// prost-build its descriptors, so no `protoc` is needed.
fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    println!("cargo:rerun-if-env-changed=NAPI_FORCE_BUILD_CONVKIT_CORE");
    println!("cargo:rerun-if-env-changed=NAPI_TYPE_DEF_TMP_FOLDER");

    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let descriptors = match protox::compile(["onnx.proto"], ["proto"]) {
        Ok(d) => d,
        Err(e) => panic!("parsing proto/onnx.proto: {e}"),
    };
    // onnx.proto's comments are prose with indented blocks that rustdoc would run as doctests; leave them out.
    if let Err(e) = prost_build::Config::new()
        .disable_comments(["."])
        .compile_fds(descriptors)
    {
        panic!("generating the ONNX types: {e}");
    }
}
