// Sets up the napi link flags and bakes libtorch's folder into the addon's rpath, so it loads without LD_LIBRARY_PATH.
fn main() {
    napi_build::setup();
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
