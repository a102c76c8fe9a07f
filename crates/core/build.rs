// Bakes libtorch's folder into the rpath of this crate's test binaries, so `cargo test` needs no LD_LIBRARY_PATH.
// With the `napi` feature, `napi build` collects this crate's TypeScript declarations too; it forces a rebuild
// (so they are written again) through NAPI_FORCE_BUILD_CONVKIT_CORE, as napi-build does for the addon crate.
fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    println!("cargo:rerun-if-env-changed=NAPI_FORCE_BUILD_CONVKIT_CORE");
    println!("cargo:rerun-if-env-changed=NAPI_TYPE_DEF_TMP_FOLDER");
}
