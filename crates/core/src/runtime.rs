//! The process-wide libtorch runtime: optional CUDA, device choice, threads and seeding.
//!
//! The addon links only libtorch's CPU half, so one binary runs on machines with and without GPUs.
//! `libtorch_cuda.so` is opened at start when it and the NVIDIA libraries it needs can be loaded;
//! its static initializers then register CUDA with libtorch, exactly as when it is linked.

use std::ffi::{CStr, CString};
use std::sync::OnceLock;

use tch::Device;

use crate::error::{Error, Result};

/// How the CUDA half of libtorch fared when the runtime started.
#[derive(Debug, Clone)]
pub struct CudaStatus {
    /// Where `libtorch_cuda.so` was loaded from, if it was.
    pub loaded_from: Option<String>,
    /// Why it was not, if it was not.
    pub load_error: Option<String>,
}

static CUDA: OnceLock<CudaStatus> = OnceLock::new();

/// The folder of the `libtorch_cpu.so` this process runs on, read from the loader's own map.
fn libtorch_dir() -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find_map(|p| p.strip_suffix("/libtorch_cpu.so").map(str::to_owned))
}

fn dlopen_global(path: &str) -> std::result::Result<(), String> {
    let c_path = CString::new(path).map_err(|e| e.to_string())?;
    // SAFETY: dlopen takes a NUL-terminated path; on failure dlerror returns a message owned by libc.
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        let msg = unsafe { libc::dlerror() };
        return Err(if msg.is_null() {
            format!("could not load {path}")
        } else {
            unsafe { CStr::from_ptr(msg) }.to_string_lossy().into_owned()
        });
    }
    Ok(())
}

/// Loads the CUDA half of libtorch once, before any tensor is made, so that CUDA's hooks
/// are registered before libtorch first asks for them. `CONVKIT_DISABLE_CUDA=1` skips it.
/// Tunes the allocator and installs the caching CPU allocator first (see `allocator`).
pub fn init() -> &'static CudaStatus {
    CUDA.get_or_init(|| {
        crate::allocator::keep_freed_memory();
        crate::allocator::cache_large_blocks();
        if std::env::var("CONVKIT_DISABLE_CUDA").is_ok_and(|v| v == "1") {
            return CudaStatus {
                loaded_from: None,
                load_error: Some("disabled by CONVKIT_DISABLE_CUDA=1".into()),
            };
        }
        let Some(dir) = libtorch_dir() else {
            return CudaStatus {
                loaded_from: None,
                load_error: Some("libtorch_cpu.so is not mapped".into()),
            };
        };
        let path = format!("{dir}/libtorch_cuda.so");
        if !std::path::Path::new(&path).exists() {
            return CudaStatus {
                loaded_from: None,
                load_error: Some(format!("{path} does not exist")),
            };
        }
        match dlopen_global(&path) {
            Ok(()) => CudaStatus {
                loaded_from: Some(path),
                load_error: None,
            },
            Err(e) => CudaStatus {
                loaded_from: None,
                load_error: Some(e),
            },
        }
    })
}

/// Whether a CUDA device can be used now.
pub fn cuda_available() -> bool {
    init();
    tch::Cuda::is_available()
}

/// Turns `auto`, `cpu`, `cuda` or `cuda:N` into a device, failing when CUDA is asked for and missing.
pub fn parse_device(requested: &str) -> Result<Device> {
    init();
    let unavailable = |reason: String| Error::DeviceUnavailable {
        requested: requested.to_owned(),
        reason,
    };
    match requested {
        "auto" => Ok(if tch::Cuda::is_available() {
            Device::Cuda(0)
        } else {
            Device::Cpu
        }),
        "cpu" => Ok(Device::Cpu),
        cuda if cuda == "cuda" || cuda.starts_with("cuda:") => {
            let index: usize = match cuda.strip_prefix("cuda:") {
                None => 0,
                Some(n) => n
                    .parse()
                    .map_err(|_| Error::option("device", "auto, cpu, cuda or cuda:N", cuda))?,
            };
            if !tch::Cuda::is_available() {
                let why = init()
                    .load_error
                    .clone()
                    .unwrap_or_else(|| "no CUDA device was found".into());
                return Err(unavailable(why));
            }
            let count = tch::Cuda::device_count() as usize;
            if index >= count {
                return Err(unavailable(format!("only {count} CUDA device(s)")));
            }
            Ok(Device::Cuda(index))
        }
        other => Err(Error::option("device", "auto, cpu, cuda or cuda:N", other)),
    }
}

/// The canonical name of a device, as users write it.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(0) => "cuda".into(),
        Device::Cuda(n) => format!("cuda:{n}"),
        _ => "cpu".into(),
    }
}

/// Seeds libtorch's generators (CPU and CUDA) so initialization, dropout and sampling repeat.
pub fn seed(seed: u64) {
    init();
    tch::manual_seed(seed as i64);
    if tch::Cuda::is_available() {
        tch::Cuda::manual_seed_all(seed);
    }
}

/// Sets libtorch's intra-op threads; 0 keeps libtorch's choice (one per physical core).
pub fn set_threads(threads: usize) {
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
}

pub fn threads() -> usize {
    tch::get_num_threads() as usize
}
