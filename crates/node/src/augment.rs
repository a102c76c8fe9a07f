//! One automatic-augmentation operation on images held in JavaScript, run on the libtorch thread.

use convkit_core::auto_augment::{apply_operation_to_bytes, Operation};
use convkit_core::runtime;
use napi::bindgen_prelude::{AsyncTask, Uint8Array};
use napi_derive::napi;

use crate::dataset::shape3;
use crate::worker::TorchTask;

/// `operation` at `magnitude` on every image of `pixels` (`N·C·H·W` bytes, each image `shape`), as torchvision's
/// `_apply_op` computes it, on `device` (`auto`, `cpu`, `cuda`, `cuda:N`).
#[napi(ts_return_type = "Promise<Uint8Array>")]
pub fn apply_augment_operation(
    pixels: Uint8Array,
    shape: Vec<i64>,
    #[napi(
        ts_arg_type = "'identity' | 'shearX' | 'shearY' | 'translateX' | 'translateY' | 'rotate' | 'brightness' | 'color' | 'contrast' | 'sharpness' | 'posterize' | 'solarize' | 'autoContrast' | 'equalize'"
    )]
    operation: String,
    magnitude: f64,
    device: String,
) -> napi::Result<AsyncTask<TorchTask<Vec<u8>, Uint8Array>>> {
    let shape = shape3(&shape, "shape")?;
    Ok(AsyncTask::new(TorchTask::new(
        move || {
            let op = Operation::parse(&operation)?;
            apply_operation_to_bytes(&pixels, shape, op, magnitude, runtime::parse_device(&device)?)
        },
        |_, bytes| Ok(Uint8Array::new(bytes)),
    )))
}
