// Sets up napi's link flags, bakes libtorch's folder into the addon's rpath (so it loads without
// LD_LIBRARY_PATH), and records which libtorch version it was built against.
//
// The rpath starts with `$ORIGIN/libtorch/lib`: an installed prebuilt addon finds libtorch through a
// `libtorch` link that the package's install script puts beside it. `npm run package` cuts the rpath
// after that first entry, so a shipped binary never points into the builder's home.
use std::path::Path;

fn torch_version(lib: &Path) -> Option<String> {
    // A provisioned or downloaded libtorch has `build-version`; a Python torch has `version.py`.
    let root = lib.parent()?;
    if let Ok(v) = std::fs::read_to_string(root.join("build-version")) {
        return Some(v.trim().to_owned());
    }
    let py = std::fs::read_to_string(root.join("version.py")).ok()?;
    let line = py.lines().find(|l| l.starts_with("__version__"))?;
    Some(line.split('\'').nth(1)?.to_owned())
}

fn main() {
    napi_build::setup();
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB").unwrap_or_default();
    if !lib.is_empty() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/libtorch/lib:{lib}");
    }
    let version = torch_version(Path::new(&lib)).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CONVKIT_TORCH_VERSION={version}");
}
