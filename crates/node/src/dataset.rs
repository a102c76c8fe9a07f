//! `NativeDataset`: uint8 images and labels resident on the model's device.

use std::sync::{Arc, Mutex};

use convkit_core::{runtime, Dataset, Normalization, StepOptions};
use napi::bindgen_prelude::{AsyncTask, Float32Array, Int32Array, Uint8Array};
use napi_derive::napi;

use crate::worker::TorchTask;

/// Options for [`NativeDataset::create`].
#[napi(object)]
pub struct BindingDatasetOptions {
    /// `[channels, height, width]` of one image.
    pub shape: Vec<i64>,
    /// How many classes labels range over.
    pub classes: i64,
    /// Per-channel mean of pixels scaled to [0, 1].
    pub mean: Vec<f64>,
    /// Per-channel standard deviation of pixels scaled to [0, 1].
    pub std: Vec<f64>,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Multi-label data: `N × classes` bytes, 1 where an image has that label.
    pub targets: Option<Uint8Array>,
}

/// A labelled image set kept on a device as uint8, normalized batch by batch where it lives.
#[napi]
pub struct NativeDataset {
    pub(crate) inner: Arc<Mutex<Dataset>>,
    // Kept beside the data so reading them never waits for work holding the lock.
    len: i64,
    device: String,
}

pub(crate) fn shape3(shape: &[i64], field: &str) -> napi::Result<[i64; 3]> {
    <[i64; 3]>::try_from(shape).map_err(|_| {
        crate::errors::to_napi(convkit_core::Error::InvalidOption {
            field: field.into(),
            expected: "[channels, height, width]".into(),
            got: format!("{shape:?}"),
        })
    })
}

#[napi]
impl NativeDataset {
    /// Copies `pixels` (N·C·H·W bytes, channel-first), `labels` (N class indices) and, for multi-label data,
    /// `options.targets` onto the device. The
    /// pixels are read where JavaScript holds them, once, off the JS thread: do not change them until the
    /// promise settles.
    #[napi(ts_return_type = "Promise<NativeDataset>")]
    pub fn create(
        pixels: Uint8Array,
        labels: Int32Array,
        options: BindingDatasetOptions,
    ) -> napi::Result<AsyncTask<TorchTask<Dataset, NativeDataset>>> {
        let shape = shape3(&options.shape, "shape")?;
        let norm = Normalization {
            mean: options.mean,
            std: options.std,
        };
        let (classes, device, targets) = (options.classes, options.device, options.targets);
        Ok(AsyncTask::new(TorchTask::new(
            move || {
                let labels: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
                let mut data = Dataset::new(&pixels, &labels, shape, classes, norm, runtime::parse_device(&device)?)?;
                if let Some(t) = targets {
                    data.set_targets(&t)?;
                }
                Ok(data)
            },
            |_, d| {
                let (len, device) = (d.len(), runtime::device_name(d.device()));
                Ok(NativeDataset {
                    inner: Arc::new(Mutex::new(d)),
                    len,
                    device,
                })
            },
        )))
    }

    /// The images at `indices` as a training step or an evaluation gets them: normalized floats `[N, C, H, W]` at
    /// `size` (`[height, width]`), each image's centre, or, with `options.augment`, augmented with the step's draws
    /// (`batchSeed`, `runSeed`, `epoch`). For looking at what augmentation does.
    #[napi(ts_return_type = "Promise<Float32Array>")]
    pub fn batch(
        &self,
        indices: Int32Array,
        size: Vec<u32>,
        options: Option<StepOptions>,
    ) -> napi::Result<AsyncTask<TorchTask<Vec<f32>, Float32Array>>> {
        let out = <[u32; 2]>::try_from(size.as_slice()).map_err(|_| {
            crate::errors::to_napi(convkit_core::Error::InvalidOption {
                field: "size".into(),
                expected: "[height, width]".into(),
                got: format!("{size:?}"),
            })
        })?;
        let inner = Arc::clone(&self.inner);
        let indices: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
        Ok(AsyncTask::new(TorchTask::new(
            move || {
                let augment = options.unwrap_or_default().augment()?;
                let data = lock(&inner);
                let (x, _) = data.batch(
                    &indices,
                    [out[0] as i64, out[1] as i64],
                    augment.as_ref().map(|(a, d)| (a, d)),
                )?;
                convkit_core::host::host_floats(&x)
            },
            |_, v| Ok(Float32Array::new(v)),
        )))
    }

    /// Number of images.
    #[napi(getter)]
    pub fn length(&self) -> i64 {
        self.len
    }

    /// The device the data lives on.
    #[napi(getter)]
    pub fn device(&self) -> String {
        self.device.clone()
    }
}

/// Locks shared native state; a panic while it was held has already been reported, so the data is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
