//! The napi-rs binding of ConvKit. It converts types, runs libtorch work off the JS thread and maps
//! errors; everything else lives in `convkit-core`.

mod augment;
mod cancel;
mod dataset;
mod distributed;
mod errors;
mod inspect;
mod jpeg;
mod model;
mod worker;

use napi_derive::napi;

pub use augment::apply_augment_operation;
pub use cancel::CancelToken;
pub use dataset::NativeDataset;
pub use distributed::NativeProcessGroup;
pub use inspect::{cross_validated_probabilities, nearest_neighbours, pixel_match};
pub use jpeg::{decode_jpeg_buffers, decode_jpeg_files, DecodeJpegBuffers, DecodeJpegs, JpegBatch};
pub use model::NativeModel;

/// What libtorch this process runs on, and whether it can use CUDA.
#[napi(object)]
pub struct RuntimeInfo {
    pub torch_version: String,
    pub cuda_available: bool,
    pub cuda_device_count: i64,
    /// Where `libtorch_cuda.so` was loaded from, when it was.
    pub cuda_loaded_from: Option<String>,
    /// Why CUDA is not in use, when it is not.
    pub cuda_load_error: Option<String>,
    /// libtorch's intra-op threads.
    pub threads: i64,
}

/// Reports the libtorch runtime: version, CUDA, threads.
#[napi]
pub fn runtime_info() -> napi::Result<RuntimeInfo> {
    worker::run(|| {
        let cuda = convkit_core::runtime::init().clone();
        let available = convkit_core::runtime::cuda_available();
        Ok(RuntimeInfo {
            torch_version: env!("CONVKIT_TORCH_VERSION").to_owned(),
            cuda_available: available,
            cuda_device_count: if available { tch::Cuda::device_count() } else { 0 },
            cuda_loaded_from: cuda.loaded_from,
            cuda_load_error: cuda.load_error,
            threads: convkit_core::runtime::threads() as i64,
        })
    })
}

/// Runs an empty job on the libtorch thread and resolves: the fixed cost of one asynchronous native call.
#[napi(ts_return_type = "Promise<void>")]
pub fn ping() -> napi::bindgen_prelude::AsyncTask<worker::TorchTask<(), ()>> {
    napi::bindgen_prelude::AsyncTask::new(worker::TorchTask::new(|| Ok(()), |_, ()| Ok(())))
}

/// Seeds libtorch's random generators (weights, dropout).
#[napi]
pub fn set_seed(seed: i64) -> napi::Result<()> {
    worker::run(move || {
        convkit_core::runtime::seed(seed as u64);
        Ok(())
    })
}

/// Sets libtorch's intra-op thread count.
#[napi]
pub fn set_threads(threads: u32) -> napi::Result<()> {
    worker::run(move || {
        convkit_core::runtime::set_threads(threads as usize);
        Ok(())
    })
}

/// Checks a spec and infers each layer's shapes and parameter count, depth first.
#[napi]
pub fn resolve_spec(
    #[napi(ts_arg_type = "object")] spec: serde_json::Value,
) -> napi::Result<Vec<convkit_core::LayerRow>> {
    convkit_core::ModelSpec::from_value(spec)
        .and_then(|s| s.summary())
        .map_err(errors::to_napi)
}

/// The spec with every default written out, as a checkpoint stores it (JSON).
#[napi]
pub fn normalize_spec(#[napi(ts_arg_type = "object")] spec: serde_json::Value) -> napi::Result<String> {
    convkit_core::ModelSpec::from_value(spec)
        .map(|s| s.to_json())
        .map_err(errors::to_napi)
}

/// Hands the free blocks ConvKit's CPU allocator keeps for reuse back to the system; returns the bytes freed.
/// For after work whose block sizes the next work will not ask for again (a precision probe, an evaluation at
/// another size).
#[napi]
pub fn trim_cpu_cache() -> f64 {
    convkit_core::allocator::trim_cpu_cache() as f64
}

/// Every layer type a spec may use.
#[napi]
pub fn layer_types() -> Vec<String> {
    convkit_core::LAYER_TYPES.iter().map(|t| t.to_string()).collect()
}

/// The header keys ConvKit writes into checkpoints (`save`) and ONNX files (`exportOnnx`), by what they hold; keys
/// starting with `prefix` are ConvKit's own.
#[napi]
pub fn metadata_keys() -> convkit_core::MetadataKeys {
    convkit_core::MetadataKeys::default()
}
