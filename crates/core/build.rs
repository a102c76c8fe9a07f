// Compiles the C++ beside the crate: the c10d bridge (cpp/c10d_bridge.cpp, and cpp/sync_batch_norm.cpp on top of
// it), the caching CPU allocator (cpp/cpu_cache.cpp), the fused optimizer kernels' C API
// (cpp/fused_optimizer.cpp), non-blocking host-to-GPU copies (cpp/host_transfer.cpp) and the operator counter
// (cpp/op_count.cpp), against the libtorch tch links, with torch's own headers and
// our declaration-only gloo stand-ins (cpp/gloo_decl), and bakes libtorch's folder into the rpath of this crate's
// test binaries, so `cargo test` needs no LD_LIBRARY_PATH.
// With the `napi` feature, `napi build` collects this crate's TypeScript declarations too; it forces a rebuild
// (so they are written again) through NAPI_FORCE_BUILD_CONVKIT_CORE, as napi-build does for the addon crate.
// It also generates the ONNX message types from proto/onnx.proto: protox parses the file in pure Rust and hands
// prost-build its descriptors, so no `protoc` is needed.
use std::path::PathBuf;

fn main() {
    let lib = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB")
            .expect("torch-sys exports DEP_TCH_LIBTORCH_LIB (the folder of libtorch's libraries)"),
    );
    let include = lib.parent().expect("libtorch's root folder").join("include");
    // gloo_decl comes first and no real gloo folder is ever added: see the header of c10d_bridge.cpp.
    cc::Build::new()
        .cpp(true)
        .file("cpp/c10d_bridge.cpp")
        .file("cpp/sync_batch_norm.cpp")
        .file("cpp/cpu_cache.cpp")
        .file("cpp/fused_optimizer.cpp")
        .file("cpp/host_transfer.cpp")
        .file("cpp/op_count.cpp")
        .include("cpp/gloo_decl")
        .flag("-isystem")
        .flag(include.to_str().expect("a UTF-8 libtorch path"))
        .flag("-isystem")
        .flag(
            include
                .join("torch/csrc/api/include")
                .to_str()
                .expect("a UTF-8 libtorch path"),
        )
        .flag("-std=c++17")
        // libtorch 2.11's C++ ABI (every std::string in its exports is std::__cxx11::basic_string).
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .define("USE_C10D_GLOO", None)
        .compile("ck_c10d_bridge");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    println!("cargo:rerun-if-changed=cpp");
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
