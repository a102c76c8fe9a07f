//! `NativeModel`: the core's [`Classifier`] behind napi. Each method converts its arguments, runs the classifier's
//! method on ConvKit's libtorch thread (a Promise for long work, a blocking call for cheap work) and converts back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use convkit_core::{
    AveragingOptions, Classifier, Embeddings, EvalCounts, GradCam, LabelScores, LayerRow, LoadOptions, LossOptions,
    ModelOptions, ModelSpec, Normalization, ParamGroup, StepOptions, StepOutput, TensorBytes,
};
use napi::bindgen_prelude::{AsyncTask, Float32Array, Int32Array, ToNapiValue, TypeName, Uint8Array};
use napi_derive::napi;

use crate::cancel::CancelToken;
use crate::dataset::{lock, NativeDataset};
use crate::worker::{self, TorchTask};

/// What one training step reports, measured before its update: the core's `StepOutput` with `predicted` as an
/// `Int32Array`. It stays here because the core (which has no napi types) cannot declare a typed-array field; the
/// other types JavaScript sees are declared once in the core.
#[napi(object, object_from_js = false)]
pub struct BindingStep {
    /// Mean cross-entropy over the batch (without label smoothing or class weights).
    pub loss: f64,
    /// Images classified right (multi-label: every label right, scores over 0 exactly on the image's labels).
    pub correct: i64,
    /// Images whose label is among the five highest scores (multi-label: whose highest score is one of its labels).
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

/// Grad-CAM heatmaps for a batch: the core's `GradCam` with typed arrays (a map per image is tens of thousands of
/// numbers), declared here for the same reason as `BindingStep`.
#[napi(object, object_from_js = false)]
pub struct BindingGradCam {
    /// `N × height × width` values in [0, 1], row-major.
    pub heatmaps: Float32Array,
    pub height: i64,
    pub width: i64,
    /// The class each map explains.
    pub targets: Int32Array,
    /// `N × classes` softmax probabilities.
    pub probabilities: Float32Array,
    /// The layer whose activations were weighted.
    pub layer: String,
}

impl From<GradCam> for BindingGradCam {
    fn from(g: GradCam) -> Self {
        BindingGradCam {
            heatmaps: Float32Array::new(g.heatmaps),
            height: g.height,
            width: g.width,
            targets: Int32Array::new(g.targets.iter().map(|&t| t as i32).collect()),
            probabilities: Float32Array::new(g.probabilities),
            layer: g.layer,
        }
    }
}

/// Image embeddings: the core's `Embeddings` with the values as a `Float32Array`.
#[napi(object, object_from_js = false)]
pub struct BindingEmbeddings {
    /// `count × dim` floats, row by row.
    pub values: Float32Array,
    pub dim: i64,
    /// The layer whose feature map was averaged.
    pub layer: String,
}

impl From<Embeddings> for BindingEmbeddings {
    fn from(e: Embeddings) -> Self {
        BindingEmbeddings {
            values: Float32Array::new(e.values),
            dim: e.dim,
            layer: e.layer,
        }
    }
}

/// A multi-label evaluation: the core's `LabelScores` with the probabilities as a `Float32Array`.
#[napi(object, object_from_js = false)]
pub struct BindingLabelScores {
    /// `count × classes` sigmoid probabilities, row by row.
    pub probabilities: Float32Array,
    /// Sum over images of the mean binary cross-entropy over classes.
    pub loss_sum: f64,
    pub count: i64,
}

impl From<LabelScores> for BindingLabelScores {
    fn from(s: LabelScores) -> Self {
        BindingLabelScores {
            probabilities: Float32Array::new(s.probabilities),
            loss_sum: s.loss_sum,
            count: s.count,
        }
    }
}

/// One tensor of a state dict, as raw little-endian bytes. (The core's `TensorBytes` borrows them; this one holds
/// the `Uint8Array` JavaScript passes.)
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
    pub(crate) inner: Arc<Mutex<Classifier>>,
    // Kept beside the model so reading them never waits for work holding the lock.
    spec_json: String,
    device: String,
    classes: i64,
    param_count: i64,
    metadata: HashMap<String, String>,
}

impl NativeModel {
    fn wrap(model: Classifier) -> Self {
        NativeModel {
            spec_json: model.spec_json(),
            device: model.device_name(),
            classes: model.classes(),
            param_count: model.param_count(),
            metadata: model.metadata().clone(),
            inner: Arc::new(Mutex::new(model)),
        }
    }

    /// Runs `f` on the model off the JS thread.
    pub(crate) fn task<T: Send + 'static, J: ToNapiValue + TypeName>(
        &self,
        f: impl FnOnce(&mut Classifier) -> convkit_core::Result<T> + Send + 'static,
        convert: fn(napi::Env, T) -> napi::Result<J>,
    ) -> AsyncTask<TorchTask<T, J>> {
        let inner = Arc::clone(&self.inner);
        AsyncTask::new(TorchTask::new(move || f(&mut lock(&inner)), convert))
    }

    /// Runs `f` on the model on the libtorch thread and waits: for cheap calls.
    pub(crate) fn now<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Classifier) -> convkit_core::Result<T> + Send + 'static,
    ) -> napi::Result<T> {
        let inner = Arc::clone(&self.inner);
        worker::run(move || f(&mut lock(&inner)))
    }
}

/// What both evaluations take, converted off the JS values before the work leaves the JS thread.
struct Evaluation {
    data: Arc<Mutex<convkit_core::Dataset>>,
    indices: Option<Vec<i64>>,
    batch_size: usize,
    tta_name: Option<String>,
    averaged: bool,
    cancel: Arc<AtomicBool>,
}

/// The classifier's evaluation arguments: data, indices, batch size, test-time augmentation, averaged, cancel flag.
type EvalArgs<'a> = (
    &'a convkit_core::Dataset,
    Option<&'a [i64]>,
    usize,
    convkit_core::Tta,
    bool,
    &'a AtomicBool,
);

impl Evaluation {
    fn new(
        dataset: &NativeDataset,
        indices: Option<Int32Array>,
        batch_size: u32,
        tta_name: Option<String>,
        averaged: Option<bool>,
        cancel: Option<&CancelToken>,
    ) -> Self {
        Evaluation {
            data: Arc::clone(&dataset.inner),
            indices: indices.map(|i| indices_i64(&i)),
            batch_size: batch_size as usize,
            tta_name,
            averaged: averaged.unwrap_or(false),
            cancel: cancel.map(|c| Arc::clone(&c.flag)).unwrap_or_default(),
        }
    }

    /// Runs `f` on the libtorch thread with the data locked and the arguments in the classifier's form.
    fn with<T>(self, f: impl FnOnce(EvalArgs) -> convkit_core::Result<T>) -> convkit_core::Result<T> {
        let tta = tta(self.tta_name.as_deref())?;
        let data = lock(&self.data);
        f((
            &data,
            self.indices.as_deref(),
            self.batch_size,
            tta,
            self.averaged,
            &self.cancel,
        ))
    }
}

fn indices_i64(values: &Int32Array) -> Vec<i64> {
    values.iter().map(|&l| l as i64).collect()
}

fn step(_: napi::Env, s: StepOutput) -> napi::Result<BindingStep> {
    Ok(s.into())
}

fn unit(_: napi::Env, (): ()) -> napi::Result<()> {
    Ok(())
}

fn floats(_: napi::Env, p: Vec<f32>) -> napi::Result<Float32Array> {
    Ok(Float32Array::new(p))
}

fn tta(name: Option<&str>) -> convkit_core::Result<convkit_core::Tta> {
    convkit_core::options::tta(name)
}

#[napi]
impl NativeModel {
    /// Builds a freshly initialized model from a spec.
    #[napi(factory)]
    pub fn create(
        #[napi(ts_arg_type = "object")] spec: serde_json::Value,
        options: ModelOptions,
    ) -> napi::Result<NativeModel> {
        let model = worker::run(move || Classifier::create(ModelSpec::from_value(spec)?, options))?;
        Ok(NativeModel::wrap(model))
    }

    /// Loads a checkpoint written by `save`: spec and weights, and, with `forTraining`, the optimizer and averaging
    /// state when their `.optim.safetensors` file is beside it.
    #[napi(ts_return_type = "Promise<NativeModel>")]
    pub fn load(path: String, options: LoadOptions) -> AsyncTask<TorchTask<Classifier, NativeModel>> {
        AsyncTask::new(TorchTask::new(
            move || Classifier::load(Path::new(&path), &options),
            |_, model| Ok(NativeModel::wrap(model)),
        ))
    }

    /// One training step on the dataset images at `indices`, with this step's learning rate and augmentation.
    #[napi(ts_return_type = "Promise<BindingStep>")]
    pub fn train_batch(
        &self,
        dataset: &NativeDataset,
        indices: Int32Array,
        options: StepOptions,
    ) -> AsyncTask<TorchTask<StepOutput, BindingStep>> {
        let data = Arc::clone(&dataset.inner);
        let indices = indices_i64(&indices);
        self.task(move |m| m.train_step(&lock(&data), &indices, &options), step)
    }

    /// `trainBatch` without its report: queues the step (on a GPU it returns before the kernels run) and resolves
    /// to an id for `finishTrainBatch`. Launching step b + 1 before finishing step b keeps a GPU busy in between.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn launch_train_batch(
        &self,
        dataset: &NativeDataset,
        indices: Int32Array,
        options: StepOptions,
    ) -> AsyncTask<TorchTask<u32, u32>> {
        let data = Arc::clone(&dataset.inner);
        let indices = indices_i64(&indices);
        self.task(
            move |m| m.launch_train_step(&lock(&data), &indices, &options),
            |_, id| Ok(id),
        )
    }

    /// Waits for the step `launchTrainBatch` gave `id` to and reads its report.
    #[napi(ts_return_type = "Promise<BindingStep>")]
    pub fn finish_train_batch(&self, id: u32) -> AsyncTask<TorchTask<StepOutput, BindingStep>> {
        self.task(move |m| m.finish_train_step(id), step)
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
        options: StepOptions,
    ) -> napi::Result<AsyncTask<TorchTask<StepOutput, BindingStep>>> {
        let shape = crate::dataset::shape3(&shape, "shape")?;
        let labels = indices_i64(&labels);
        Ok(self.task(
            move |m| m.train_pixels(&pixels, &labels, shape, Normalization { mean, std }, &options),
            step,
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
        self.task(move |m| m.train_floats(&pixels, &labels), step)
    }

    /// Evaluates on the dataset (at `indices`, or all of it) in batches, without training; with `averaged`, on
    /// the averaged weights when averaging is on; `tta` names test-time augmentation.
    #[napi(ts_return_type = "Promise<EvalCounts>")]
    pub fn evaluate(
        &self,
        dataset: &NativeDataset,
        indices: Option<Int32Array>,
        batch_size: u32,
        tta_name: Option<String>,
        averaged: Option<bool>,
        cancel: Option<&CancelToken>,
    ) -> AsyncTask<TorchTask<EvalCounts, EvalCounts>> {
        let run = Evaluation::new(dataset, indices, batch_size, tta_name, averaged, cancel);
        self.task(
            move |m| run.with(|e| m.evaluate(e.0, e.1, e.2, e.3, e.4, e.5)),
            |_, c| Ok(c),
        )
    }

    /// `evaluate` for multi-label data: every image's sigmoid probabilities and the summed loss.
    #[napi(ts_return_type = "Promise<BindingLabelScores>")]
    pub fn evaluate_multi_label(
        &self,
        dataset: &NativeDataset,
        indices: Option<Int32Array>,
        batch_size: u32,
        tta_name: Option<String>,
        averaged: Option<bool>,
        cancel: Option<&CancelToken>,
    ) -> AsyncTask<TorchTask<LabelScores, BindingLabelScores>> {
        let run = Evaluation::new(dataset, indices, batch_size, tta_name, averaged, cancel);
        self.task(
            move |m| run.with(|e| m.evaluate_multi_label(e.0, e.1, e.2, e.3, e.4, e.5)),
            |_, s| Ok(s.into()),
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
            move |m| {
                m.predict_floats(
                    &pixels,
                    count as usize,
                    tta(tta_name.as_deref())?,
                    raw_logits.unwrap_or(false),
                )
            },
            floats,
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
            move |m| {
                let norm = Normalization { mean, std };
                m.predict_pixels(&pixels, count as usize, &norm, tta(tta_name.as_deref())?)
            },
            floats,
        )
    }

    /// Grad-CAM heatmaps for `count` uint8 images `[N, C, H, W]` at the evaluation size, normalized with `mean` and
    /// `std`: for `targets` (one class per image) or each image's predicted class, at `layer` or the last feature map.
    #[napi(ts_return_type = "Promise<BindingGradCam>")]
    pub fn explain_pixels(
        &self,
        pixels: Uint8Array,
        count: u32,
        mean: Vec<f64>,
        std: Vec<f64>,
        targets: Option<Int32Array>,
        layer: Option<String>,
    ) -> AsyncTask<TorchTask<GradCam, BindingGradCam>> {
        let targets = targets.as_ref().map(indices_i64);
        self.task(
            move |m| {
                let norm = Normalization { mean, std };
                m.explain_pixels(&pixels, count as usize, &norm, targets.as_deref(), layer.as_deref())
            },
            |_, g| Ok(g.into()),
        )
    }

    /// Embeddings of the images at `indices`: the spatial mean of `layer`'s feature map (by default the last one).
    #[napi(ts_return_type = "Promise<BindingEmbeddings>")]
    pub fn embed(
        &self,
        dataset: &NativeDataset,
        indices: Int32Array,
        batch_size: u32,
        layer: Option<String>,
        cancel: Option<&CancelToken>,
    ) -> AsyncTask<TorchTask<Embeddings, BindingEmbeddings>> {
        let data = Arc::clone(&dataset.inner);
        let indices = indices_i64(&indices);
        let cancel = cancel.map(|c| Arc::clone(&c.flag)).unwrap_or_default();
        self.task(
            move |m| m.embed(&lock(&data), &indices, batch_size as usize, layer.as_deref(), &cancel),
            |_, e| Ok(e.into()),
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
            move |m| {
                m.save(
                    &PathBuf::from(path),
                    metadata,
                    with_optimizer,
                    averaged.unwrap_or(false),
                )
            },
            unit,
        )
    }

    /// Writes the model as an ONNX file (opset 17, dynamic batch size, `input` → `logits`), atomically; `metadata`
    /// becomes its `metadata_props`. A layer with no ONNX form is an error naming it.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn export_onnx(&self, path: String, metadata: HashMap<String, String>) -> AsyncTask<TorchTask<(), ()>> {
        self.task(move |m| m.export_onnx(&PathBuf::from(path), metadata), unit)
    }

    /// Loads weights alone from a safetensors file (such as a PyTorch state dict) into this model, strictly.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn load_weights(&self, path: String) -> AsyncTask<TorchTask<(), ()>> {
        self.task(move |m| m.load_weights(&PathBuf::from(path)), unit)
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
            move |m| {
                let bytes = tensors.iter().map(|b| TensorBytes {
                    name: &b.name,
                    dtype: &b.dtype,
                    shape: &b.shape,
                    data: &b.data,
                });
                m.load_state_dict(bytes, &source, &keep.unwrap_or_default())
            },
            unit,
        )
    }

    /// Freezes (`trainable` false) or unfreezes the parameters whose names match any of `patterns` (globs: `*`
    /// any run of characters, `?` one). Layers the spec froze stay frozen. Returns how many parameters changed.
    #[napi]
    pub fn set_trainable(&self, patterns: Vec<String>, trainable: bool) -> napi::Result<u32> {
        self.now(move |m| Ok(m.set_trainable(&patterns, trainable)? as u32))
    }

    /// Trains with this loss (label smoothing, reduction, class weights) from the next step on.
    #[napi]
    pub fn set_loss(&self, options: LossOptions) -> napi::Result<()> {
        self.now(move |m| m.set_loss(&options))
    }

    /// Clips each later update's gradients to this global 2-norm, as `torch.nn.utils.clip_grad_norm_` does (`null`:
    /// off).
    #[napi]
    pub fn set_grad_clip_norm(&self, max_norm: Option<f64>) -> napi::Result<()> {
        self.now(move |m| m.set_grad_clip_norm(max_norm))
    }

    /// Prediction scores each class with its own sigmoid (multi-label) or, with `false`, one softmax over all.
    #[napi]
    pub fn set_multi_label(&self, on: bool) -> napi::Result<()> {
        self.now(move |m| {
            m.set_multi_label(on);
            Ok(())
        })
    }

    /// Batch norm layers normalize with their running statistics (and keep them) even while they train.
    #[napi]
    pub fn set_frozen_batch_norm_statistics(&self, frozen: bool) -> napi::Result<()> {
        self.now(move |m| {
            m.set_frozen_batch_norm_statistics(frozen);
            Ok(())
        })
    }

    /// The `[height, width]` evaluation and prediction feed the network, or `null` for the spec's input.
    #[napi]
    pub fn set_eval_input_size(&self, size: Option<Vec<u32>>) -> napi::Result<()> {
        self.now(move |m| m.set_eval_input_size(size.as_deref()))
    }

    /// Starts weight averaging from the current weights (continuing averaged weights read from the checkpoint, if
    /// any), or stops it with `null`.
    #[napi]
    pub fn set_averaging(&self, config: Option<AveragingOptions>) -> napi::Result<()> {
        self.now(move |m| m.set_averaging(config.as_ref()))
    }

    /// Copies the averaged weights into the model for good and stops averaging (the end of a run).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn finish_averaging(&self) -> AsyncTask<TorchTask<(), ()>> {
        self.task(|m| m.finish_averaging(), unit)
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
            move |m| m.init_whitening(&lock(&data), &indices, &layer, eps),
            |_, v| Ok(v),
        )
    }

    /// Each layer, depth first, with its shapes, parameters and whether it trains now.
    #[napi]
    pub fn layers(&self) -> napi::Result<Vec<LayerRow>> {
        self.now(|m| Ok(m.layers()))
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
        self.now(|m| Ok(m.trainable_param_count()))
    }

    /// The header of the checkpoint this model was loaded from; empty for a new model.
    #[napi(getter)]
    pub fn metadata(&self) -> HashMap<String, String> {
        self.metadata.clone()
    }

    /// Steps the optimizer has taken.
    #[napi]
    pub fn optimizer_step(&self) -> napi::Result<i64> {
        self.now(|m| Ok(m.optimizer_step()))
    }

    /// The optimizer's learning rate (before parameter-group scales).
    #[napi]
    pub fn lr(&self) -> napi::Result<f64> {
        self.now(|m| Ok(m.lr()))
    }

    /// `fp32`, or `bf16`: convolutions and linear layers compute in bfloat16 from fp32 weights, as under
    /// PyTorch's autocast.
    #[napi]
    pub fn set_precision(&self, name: String) -> napi::Result<()> {
        self.now(move |m| m.set_precision(&name))
    }

    /// Replaces the optimizer's parameter groups for the following steps.
    #[napi]
    pub fn set_param_groups(&self, groups: Vec<ParamGroup>) -> napi::Result<()> {
        self.now(move |m| m.set_param_groups(groups))
    }

    /// Changes the learning rate for the following steps.
    #[napi]
    pub fn set_lr(&self, lr: f64) -> napi::Result<()> {
        self.now(move |m| m.set_lr(lr))
    }
}
