//! `NativeModel`: a network with its optimizer, stepped, evaluated, saved and loaded off the JS thread.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use convkit_core::averaging::{Averager, AveragingConfig};
use convkit_core::checkpoint::{self, tensor_from_bytes};
use convkit_core::distributed::GradSync;
use convkit_core::evaluate::{logits, probabilities};
use convkit_core::glob::glob_match;
use convkit_core::trainer::{eval_input_size, floats_to_batch, pixels_to_batch};
use convkit_core::{runtime, EvalCounts, ModelSpec, Network, Normalization, PendingStep, StepOutput, Trainer};
use napi::bindgen_prelude::{AsyncTask, Float32Array, Int32Array, Uint8Array};
use napi_derive::napi;
use tch::Device;

use crate::cancel::CancelToken;
use crate::dataset::{lock, NativeDataset};
use crate::distributed::NativeProcessGroup;
use crate::options::{dtype, precision, tta, BindingAveraging, BindingModelOptions, BindingStepOptions};
use crate::summary::{rows, BindingLayerInfo};
use crate::worker::{self, TorchTask};

/// What one training step reports, measured before its update.
#[napi(object)]
pub struct BindingStep {
    /// Mean cross-entropy over the batch (without label smoothing).
    pub loss: f64,
    /// Images classified right.
    pub correct: i64,
    /// Images whose label is among the five highest scores.
    pub top5_correct: i64,
    /// Images in the batch.
    pub count: i64,
    /// The learning rate of this step's update, before parameter groups' scales.
    pub lr: f64,
    /// The predicted class of each image.
    pub predicted: Int32Array,
    /// Data-parallel: whether some rank asked every rank to stop after this step.
    pub stop_requested: bool,
    /// Data-parallel: seconds spent averaging gradients over the ranks (0 in one process).
    pub allreduce_seconds: f64,
    /// Wall time of the step in native code, in seconds.
    pub seconds: f64,
}

impl From<StepOutput> for BindingStep {
    fn from(s: StepOutput) -> Self {
        BindingStep {
            loss: s.loss,
            correct: s.correct,
            top5_correct: s.top5_correct,
            count: s.count,
            lr: s.lr,
            predicted: Int32Array::new(s.predicted.iter().map(|&p| p as i32).collect()),
            stop_requested: s.stop_requested,
            allreduce_seconds: s.allreduce_seconds,
            seconds: s.seconds,
        }
    }
}

/// Counts from an evaluation pass; accuracies are derived from them in TypeScript.
#[napi(object)]
pub struct BindingEval {
    pub count: i64,
    /// Sum of per-image cross-entropy.
    pub loss_sum: f64,
    pub top1_correct: i64,
    pub top5_correct: i64,
    /// Row-major `[true][predicted]` counts, `classes × classes`.
    pub confusion: Vec<i64>,
    pub classes: i64,
}

impl From<EvalCounts> for BindingEval {
    fn from(c: EvalCounts) -> Self {
        BindingEval {
            count: c.count,
            loss_sum: c.loss_sum,
            top1_correct: c.top1_correct,
            top5_correct: c.top5_correct,
            confusion: c.confusion,
            classes: c.classes,
        }
    }
}

/// How to load a checkpoint.
#[napi(object)]
pub struct BindingLoadOptions {
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    pub channels_last: Option<bool>,
    /// Also restore the optimizer (and averaging) state from the `.optim.safetensors` file beside it, to train on.
    /// Inference loads the weights alone.
    pub for_training: Option<bool>,
}

/// One tensor of a state dict, as raw little-endian bytes.
#[napi(object)]
pub struct BindingTensor {
    pub name: String,
    /// `float32`, `float64`, `float16`, `bfloat16`, `int64`, `int32`, `uint8`, `int8` or `bool`.
    pub dtype: String,
    pub shape: Vec<i64>,
    pub data: Uint8Array,
}

/// A network and its optimizer. All work runs on ConvKit's libtorch thread; methods returning
/// Promises never block the JS thread.
#[napi]
pub struct NativeModel {
    pub(crate) inner: Arc<Mutex<Trainer>>,
    spec_json: String,
    device: String,
    classes: i64,
    param_count: i64,
    metadata: HashMap<String, String>,
    /// Averaged weights read from a checkpoint, waiting for `setAveraging` to say how to continue them.
    pending_average: Arc<Mutex<Option<Vec<tch::Tensor>>>>,
    /// Steps launched by `launchTrainBatch` whose reports `finishTrainBatch` has not read yet, by id.
    launched: Arc<Mutex<LaunchedSteps>>,
}

impl NativeModel {
    fn wrap(trainer: Trainer, metadata: HashMap<String, String>, average: Option<Vec<tch::Tensor>>) -> Self {
        NativeModel {
            spec_json: trainer.net.spec.to_json(),
            device: runtime::device_name(trainer.net.device),
            classes: trainer.net.classes(),
            param_count: trainer.net.param_count(),
            inner: Arc::new(Mutex::new(trainer)),
            metadata,
            pending_average: Arc::new(Mutex::new(average)),
            launched: Arc::new(Mutex::new(LaunchedSteps::default())),
        }
    }

    /// Runs `f` on the model off the JS thread.
    fn task<T: Send + 'static, J: napi::bindgen_prelude::ToNapiValue + napi::bindgen_prelude::TypeName>(
        &self,
        f: impl FnOnce(&mut Trainer) -> convkit_core::Result<T> + Send + 'static,
        convert: fn(napi::Env, T) -> napi::Result<J>,
    ) -> AsyncTask<TorchTask<T, J>> {
        let inner = Arc::clone(&self.inner);
        AsyncTask::new(TorchTask::new(move || f(&mut lock(&inner)), convert))
    }

    /// Runs `f` on the model on the libtorch thread and waits: for cheap calls.
    fn now<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Trainer) -> convkit_core::Result<T> + Send + 'static,
    ) -> napi::Result<T> {
        let inner = Arc::clone(&self.inner);
        worker::run(move || f(&mut lock(&inner)))
    }
}

/// Launched steps waiting for their reports to be read, each under the id its launch returned.
#[derive(Default)]
pub(crate) struct LaunchedSteps {
    next_id: u32,
    steps: HashMap<u32, PendingStep>,
}

impl LaunchedSteps {
    fn insert(&mut self, step: PendingStep) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.steps.insert(id, step);
        id
    }
}

/// channels_last where it was measured faster (the CPU: about 20 %, bench/RESULTS.md); contiguous on CUDA until it
/// is measured there. `CONVKIT_CHANNELS_LAST=1|0` overrides the default, for that measurement
/// (scripts/gpu-check.sh runs the airbench94 preset both ways).
fn default_channels_last(device: Device) -> bool {
    match std::env::var("CONVKIT_CHANNELS_LAST").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => device == Device::Cpu,
    }
}

/// Launches a step on the dataset images at `indices` with the step's options: its learning rate, this rank's
/// vote to stop after it (data-parallel runs only), its augmentation.
fn launch_indexed(
    t: &mut Trainer,
    data: &convkit_core::Dataset,
    indices: &[i64],
    options: &BindingStepOptions,
) -> convkit_core::Result<PendingStep> {
    if let Some(lr) = options.lr {
        t.optimizer.set_lr(lr)?;
    }
    if let Some(sync) = &mut t.grad_sync {
        sync.vote_stop = options.stop.unwrap_or(false);
    }
    let augment = options.augment()?;
    t.launch_step_indices(data, indices, augment.as_ref().map(|(a, d)| (a, d)))
}

fn indices_i64(values: &Int32Array) -> Vec<i64> {
    values.iter().map(|&l| l as i64).collect()
}

type Loaded = (Trainer, HashMap<String, String>, Option<Vec<tch::Tensor>>);

/// Runs `f` with the averaged weights swapped in when `averaged` asks for them and there are any.
fn with_average<T>(
    t: &mut Trainer,
    averaged: bool,
    f: impl FnOnce(&Trainer) -> convkit_core::Result<T>,
) -> convkit_core::Result<T> {
    let swap = averaged && t.averager.is_some();
    if swap {
        t.averager.as_mut().expect("checked").swap(&mut t.net)?;
    }
    let out = f(t);
    if swap {
        t.averager.as_mut().expect("checked").swap(&mut t.net)?;
    }
    out
}

#[napi]
impl NativeModel {
    /// Builds a freshly initialized model from a spec.
    #[napi(factory)]
    pub fn create(
        #[napi(ts_arg_type = "object")] spec: serde_json::Value,
        options: BindingModelOptions,
    ) -> napi::Result<NativeModel> {
        let trainer = worker::run(move || {
            let spec = ModelSpec::from_value(spec)?;
            let device = runtime::parse_device(&options.device)?;
            if let Some(seed) = options.seed {
                runtime::seed(seed as u64);
            }
            let mut net = Network::new(spec, device)?;
            net.set_channels_last(options.channels_last.unwrap_or_else(|| default_channels_last(device)))?;
            net.precision = precision(options.precision.as_deref())?;
            net.set_dtype(dtype(options.dtype.as_deref())?)?;
            let loss = options.loss()?;
            Trainer::with_groups(
                net,
                options.optimizer.unwrap_or_default(),
                options.param_groups.unwrap_or_default(),
                loss,
            )
        })?;
        Ok(NativeModel::wrap(trainer, HashMap::new(), None))
    }

    /// Loads a checkpoint written by `save`: spec and weights, and, with `forTraining`, the optimizer and averaging
    /// state when their `.optim.safetensors` file is beside it.
    #[napi(ts_return_type = "Promise<NativeModel>")]
    pub fn load(path: String, options: BindingLoadOptions) -> AsyncTask<TorchTask<Loaded, NativeModel>> {
        AsyncTask::new(TorchTask::new(
            move || {
                let path = PathBuf::from(path);
                let device = runtime::parse_device(&options.device)?;
                let (mut trainer, metadata, average) = if options.for_training.unwrap_or(false) {
                    checkpoint::load_trainer(&path, device)?
                } else {
                    let (net, metadata) = checkpoint::load_network(&path, device)?;
                    (Trainer::new(net, Default::default())?, metadata, None)
                };
                trainer
                    .net
                    .set_channels_last(options.channels_last.unwrap_or_else(|| default_channels_last(device)))?;
                Ok((trainer, metadata, average))
            },
            |_, (trainer, metadata, average)| Ok(NativeModel::wrap(trainer, metadata, average)),
        ))
    }

    /// One training step on the dataset images at `indices`, with this step's learning rate and augmentation.
    #[napi(ts_return_type = "Promise<BindingStep>")]
    pub fn train_batch(
        &self,
        dataset: &NativeDataset,
        indices: Int32Array,
        options: BindingStepOptions,
    ) -> AsyncTask<TorchTask<StepOutput, BindingStep>> {
        let data = Arc::clone(&dataset.inner);
        let indices = indices_i64(&indices);
        self.task(
            move |t| launch_indexed(t, &lock(&data), &indices, &options)?.finish(),
            |_, s| Ok(s.into()),
        )
    }

    /// `trainBatch` without its report: queues the step (on a GPU it returns before the kernels run) and resolves
    /// to an id for `finishTrainBatch`. Launching step b + 1 before finishing step b keeps a GPU busy in between.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn launch_train_batch(
        &self,
        dataset: &NativeDataset,
        indices: Int32Array,
        options: BindingStepOptions,
    ) -> AsyncTask<TorchTask<u32, u32>> {
        let data = Arc::clone(&dataset.inner);
        let indices = indices_i64(&indices);
        let launched = Arc::clone(&self.launched);
        self.task(
            move |t| {
                let step = launch_indexed(t, &lock(&data), &indices, &options)?;
                Ok(lock(&launched).insert(step))
            },
            |_, id| Ok(id),
        )
    }

    /// Waits for the step `launchTrainBatch` gave `id` to and reads its report.
    #[napi(ts_return_type = "Promise<BindingStep>")]
    pub fn finish_train_batch(&self, id: u32) -> AsyncTask<TorchTask<StepOutput, BindingStep>> {
        let launched = Arc::clone(&self.launched);
        AsyncTask::new(TorchTask::new(
            move || {
                let step = lock(&launched)
                    .steps
                    .remove(&id)
                    .ok_or_else(|| convkit_core::Error::InvalidOption {
                        field: "finishTrainBatch".into(),
                        expected: "the id of a step launched by launchTrainBatch and not yet finished".into(),
                        got: id.to_string(),
                    })?;
                step.finish()
            },
            |_, s| Ok(s.into()),
        ))
    }

    /// One training step on uint8 images `[N, C, H, W]` sent from JavaScript (a streamed batch), normalized with
    /// `mean` and `std` and augmented as `options` says; images may be larger than the input, for random crops.
    #[napi(ts_return_type = "Promise<BindingStep>")]
    pub fn train_batch_pixels(
        &self,
        pixels: Uint8Array,
        labels: Int32Array,
        shape: Vec<i64>,
        mean: Vec<f64>,
        std: Vec<f64>,
        options: BindingStepOptions,
    ) -> napi::Result<AsyncTask<TorchTask<StepOutput, BindingStep>>> {
        let shape = crate::dataset::shape3(&shape, "shape")?;
        let labels = indices_i64(&labels);
        Ok(self.task(
            move |t| {
                let norm = Normalization { mean, std };
                let data = convkit_core::Dataset::new(&pixels, &labels, shape, t.net.classes(), norm, t.net.device)?;
                let all: Vec<i64> = (0..data.len()).collect();
                launch_indexed(t, &data, &all, &options)?.finish()
            },
            |_, s| Ok(s.into()),
        ))
    }

    /// One training step on normalized floats `[N, C, H, W]` and their labels.
    #[napi(ts_return_type = "Promise<BindingStep>")]
    pub fn train_batch_floats(
        &self,
        pixels: Float32Array,
        labels: Int32Array,
    ) -> AsyncTask<TorchTask<StepOutput, BindingStep>> {
        let labels = indices_i64(&labels);
        self.task(move |t| t.step_floats(&pixels, &labels), |_, s| Ok(s.into()))
    }

    /// Evaluates on the dataset (at `indices`, or all of it) in batches, without training; with `averaged`, on
    /// the averaged weights when averaging is on; `tta` names test-time augmentation.
    #[napi(ts_return_type = "Promise<BindingEval>")]
    pub fn evaluate(
        &self,
        dataset: &NativeDataset,
        indices: Option<Int32Array>,
        batch_size: u32,
        tta_name: Option<String>,
        averaged: Option<bool>,
        cancel: Option<&CancelToken>,
    ) -> AsyncTask<TorchTask<EvalCounts, BindingEval>> {
        let data = Arc::clone(&dataset.inner);
        let indices = indices.map(|i| indices_i64(&i));
        let flag: Arc<AtomicBool> = cancel.map(|c| Arc::clone(&c.flag)).unwrap_or_default();
        self.task(
            move |t| {
                let tta = tta(tta_name.as_deref())?;
                with_average(t, averaged.unwrap_or(false), |t| {
                    convkit_core::evaluate(
                        &t.net,
                        &lock(&data),
                        indices.as_deref(),
                        batch_size as usize,
                        tta,
                        &flag,
                    )
                })
            },
            |_, c| Ok(c.into()),
        )
    }

    /// Class probabilities (or, with `rawLogits`, logits) for `count` normalized images `[N, C, H, W]`, row by row.
    #[napi(ts_return_type = "Promise<Float32Array>")]
    pub fn predict_floats(
        &self,
        pixels: Float32Array,
        count: u32,
        tta_name: Option<String>,
        raw_logits: Option<bool>,
    ) -> AsyncTask<TorchTask<Vec<f32>, Float32Array>> {
        self.task(
            move |t| {
                let x = floats_to_batch(
                    &t.net,
                    eval_input_size(&t.net),
                    &pixels,
                    count as usize,
                    "predict images",
                )?;
                let tta = tta(tta_name.as_deref())?;
                if raw_logits.unwrap_or(false) {
                    logits(&t.net, &x, tta)
                } else {
                    probabilities(&t.net, &x, tta)
                }
            },
            |_, p| Ok(Float32Array::new(p)),
        )
    }

    /// Class probabilities for `count` uint8 images `[N, C, H, W]`, normalized natively with `mean` and `std`
    /// (per channel, on pixels scaled to [0, 1]), with optional test-time augmentation.
    #[napi(ts_return_type = "Promise<Float32Array>")]
    pub fn predict_pixels(
        &self,
        pixels: Uint8Array,
        count: u32,
        mean: Vec<f64>,
        std: Vec<f64>,
        tta_name: Option<String>,
    ) -> AsyncTask<TorchTask<Vec<f32>, Float32Array>> {
        self.task(
            move |t| {
                let norm = Normalization { mean, std };
                let x = pixels_to_batch(
                    &t.net,
                    eval_input_size(&t.net),
                    &pixels,
                    count as usize,
                    &norm,
                    "predict images",
                )?;
                probabilities(&t.net, &x, tta(tta_name.as_deref())?)
            },
            |_, p| Ok(Float32Array::new(p)),
        )
    }

    /// Writes the weights (and, with `withOptimizer`, the optimizer and averaging state beside them) atomically.
    /// `metadata` lands in the safetensors header. With `averaged`, the averaged weights are written, when averaging.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn save(
        &self,
        path: String,
        metadata: HashMap<String, String>,
        with_optimizer: bool,
        averaged: Option<bool>,
    ) -> AsyncTask<TorchTask<(), ()>> {
        self.task(
            move |t| {
                with_average(t, averaged.unwrap_or(false), |t| {
                    checkpoint::save_trainer(t, &PathBuf::from(path), metadata, with_optimizer)
                })
            },
            |_, ()| Ok(()),
        )
    }

    /// Writes the model as an ONNX file (opset 17, dynamic batch size, `input` → `logits`), atomically; `metadata`
    /// becomes its `metadata_props`. A layer with no ONNX form is an error naming it.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn export_onnx(&self, path: String, metadata: HashMap<String, String>) -> AsyncTask<TorchTask<(), ()>> {
        self.task(
            move |t| convkit_core::onnx::export(&t.net, &PathBuf::from(path), &metadata.into_iter().collect()),
            |_, ()| Ok(()),
        )
    }

    /// Loads weights alone from a safetensors file (such as a PyTorch state dict) into this model, strictly.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn load_weights(&self, path: String) -> AsyncTask<TorchTask<(), ()>> {
        self.task(
            move |t| checkpoint::load_weights(&mut t.net, &PathBuf::from(path)).map(|_| ()),
            |_, ()| Ok(()),
        )
    }

    /// Loads a state dict given as raw tensors (read from a `.pth` file, say) into this model, strictly, as
    /// `load_state_dict(strict=True)`; `source` names where it came from in errors. The model's tensors matching a
    /// glob of `keep` keep their own values (a new classifier), and the file's tensors of those names are ignored.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn load_state_dict(
        &self,
        tensors: Vec<BindingTensor>,
        source: String,
        keep: Option<Vec<String>>,
    ) -> AsyncTask<TorchTask<(), ()>> {
        self.task(
            move |t| {
                let device = t.net.device;
                let mut map = HashMap::with_capacity(tensors.len());
                for b in tensors {
                    let tensor = tensor_from_bytes(&b.dtype, &b.shape, &b.data, device).map_err(|e| match e {
                        convkit_core::Error::BadShape { what, expected, got } => convkit_core::Error::BadShape {
                            what: format!("{source}: tensor {:?} ({what})", b.name),
                            expected,
                            got,
                        },
                        other => other,
                    })?;
                    map.insert(b.name, tensor);
                }
                t.net
                    .load_tensors_keeping(map, std::path::Path::new(&source), &keep.unwrap_or_default())
            },
            |_, ()| Ok(()),
        )
    }

    /// Freezes (`trainable` false) or unfreezes the parameters whose names match any of `patterns` (globs: `*`
    /// any run of characters, `?` one). Layers the spec froze stay frozen. Returns how many parameters changed.
    #[napi]
    pub fn set_trainable(&self, patterns: Vec<String>, trainable: bool) -> napi::Result<u32> {
        self.now(move |t| {
            let n = t
                .net
                .set_trainable(|name| patterns.iter().any(|p| glob_match(p, name)), trainable)?;
            Ok(n as u32)
        })
    }

    /// Batch norm layers normalize with their running statistics (and keep them) even while they train.
    #[napi]
    pub fn set_frozen_batch_norm_statistics(&self, frozen: bool) -> napi::Result<()> {
        self.now(move |t| {
            t.net.frozen_batchnorm_statistics = frozen;
            Ok(())
        })
    }

    /// The `[height, width]` evaluation and prediction feed the network, or `null` for the spec's input.
    #[napi]
    pub fn set_eval_input_size(&self, size: Option<Vec<u32>>) -> napi::Result<()> {
        self.now(move |t| {
            let size = match size.as_deref() {
                None => None,
                Some(&[h, w]) => Some([h as i64, w as i64]),
                Some(other) => {
                    return Err(convkit_core::Error::InvalidOption {
                        field: "evalInputSize".into(),
                        expected: "[height, width]".into(),
                        got: format!("{other:?}"),
                    })
                }
            };
            t.net.set_eval_input_size(size)
        })
    }

    /// Starts weight averaging from the current weights (continuing averaged weights read from the checkpoint, if
    /// any), or stops it with `null`.
    #[napi]
    pub fn set_averaging(&self, config: Option<BindingAveraging>) -> napi::Result<()> {
        let pending = Arc::clone(&self.pending_average);
        self.now(move |t| {
            let config = config.as_ref().map(AveragingConfig::try_from).transpose()?;
            t.set_averaging(config)?;
            if let (Some(avg), Some(saved)) = (t.averager.as_mut(), lock(&pending).take()) {
                if saved.len() == avg.average.len() {
                    avg.average = saved;
                }
            }
            Ok(())
        })
    }

    /// Copies the averaged weights into the model for good and stops averaging (the end of a run).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn finish_averaging(&self) -> AsyncTask<TorchTask<(), ()>> {
        self.task(
            move |t| {
                if let Some(avg) = t.averager.take() {
                    Averager::copy_in(&avg, &mut t.net)?;
                }
                Ok(())
            },
            |_, ()| Ok(()),
        )
    }

    /// Initializes the first convolution (`layer`, its tensor prefix) as a patch-whitening filter bank from the
    /// dataset images at `indices` (see `convkit_core::whitening`); returns the eigenvalues, largest first.
    #[napi(ts_return_type = "Promise<Array<number>>")]
    pub fn init_whitening(
        &self,
        dataset: &NativeDataset,
        indices: Int32Array,
        layer: String,
        eps: f64,
    ) -> AsyncTask<TorchTask<Vec<f64>, Vec<f64>>> {
        let data = Arc::clone(&dataset.inner);
        let indices = indices_i64(&indices);
        self.task(
            move |t| convkit_core::whitening::init_whitening(&mut t.net, &lock(&data), &indices, &layer, eps),
            |_, v| Ok(v),
        )
    }

    /// Each layer, depth first, with its shapes, parameters and whether it trains now.
    #[napi]
    pub fn layers(&self) -> napi::Result<Vec<BindingLayerInfo>> {
        self.now(|t| Ok(rows(&t.net.summary())))
    }

    /// The spec the model was built from, as JSON, every default written out.
    #[napi(getter)]
    pub fn spec_json(&self) -> String {
        self.spec_json.clone()
    }

    #[napi(getter)]
    pub fn device(&self) -> String {
        self.device.clone()
    }

    #[napi(getter)]
    pub fn classes(&self) -> i64 {
        self.classes
    }

    #[napi(getter)]
    pub fn param_count(&self) -> i64 {
        self.param_count
    }

    /// Parameters that train now.
    #[napi]
    pub fn trainable_param_count(&self) -> napi::Result<i64> {
        self.now(|t| Ok(t.net.trainable_param_count()))
    }

    /// The header of the checkpoint this model was loaded from; empty for a new model.
    #[napi(getter)]
    pub fn metadata(&self) -> HashMap<String, String> {
        self.metadata.clone()
    }

    /// Steps the optimizer has taken.
    #[napi]
    pub fn optimizer_step(&self) -> napi::Result<i64> {
        self.now(|t| Ok(t.optimizer.step))
    }

    /// The optimizer's learning rate (before parameter-group scales).
    #[napi]
    pub fn lr(&self) -> napi::Result<f64> {
        self.now(|t| Ok(t.optimizer.lr))
    }

    /// `fp32`, or `bf16`: convolutions and linear layers compute in bfloat16 from fp32 weights, as under
    /// PyTorch's autocast.
    #[napi]
    pub fn set_precision(&self, name: String) -> napi::Result<()> {
        self.now(move |t| {
            t.net.precision = precision(Some(&name))?;
            Ok(())
        })
    }

    /// Replaces the optimizer's parameter groups for the following steps.
    #[napi]
    pub fn set_param_groups(&self, groups: Vec<convkit_core::ParamGroup>) -> napi::Result<()> {
        self.now(move |t| t.optimizer.set_groups(groups))
    }

    /// Data-parallel training: from now on each step averages the gradients over `group` between backward and
    /// the update, in buckets of at most `bucketMb` MiB (default 25, DDP's), and with `syncBatchNorm` batch norms
    /// that learn take their statistics over every rank's batch; `null` detaches the model again.
    #[napi]
    pub fn attach_process_group(
        &self,
        group: Option<&NativeProcessGroup>,
        bucket_mb: Option<f64>,
        sync_batch_norm: Option<bool>,
    ) -> napi::Result<()> {
        let group = group.map(|g| Arc::clone(&g.inner));
        let mb = bucket_mb.unwrap_or(25.0);
        if !(mb.is_finite() && mb > 0.0) {
            return Err(crate::errors::to_napi(convkit_core::Error::InvalidOption {
                field: "distributed.bucketMb".into(),
                expected: "a number of MiB > 0".into(),
                got: mb.to_string(),
            }));
        }
        self.now(move |t| {
            t.net.sync_batchnorm = group.as_ref().filter(|_| sync_batch_norm == Some(true)).map(Arc::clone);
            t.grad_sync = group.map(|g| GradSync::new(g, (mb * 1024.0 * 1024.0) as usize));
            Ok(())
        })
    }

    /// Changes the learning rate for the following steps.
    #[napi]
    pub fn set_lr(&self, lr: f64) -> napi::Result<()> {
        self.now(move |t| t.optimizer.set_lr(lr))
    }
}
