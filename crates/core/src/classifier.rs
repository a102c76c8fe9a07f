//! [`Classifier`]: a network with everything that trains, evaluates and saves it (its optimizer, weight averaging,
//! launched steps, the state a checkpoint resumes, its memory-format default, the files it writes), behind methods.
//! The binding wraps one per `NativeModel`; nothing outside assigns its fields.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tch::{Device, Tensor};

use crate::averaging::{Averager, AveragingConfig};
use crate::batch::{floats_to_batch, pixels_to_batch};
use crate::checkpoint::{self, tensor_from_bytes};
use crate::dataset::{Dataset, Normalization};
use crate::distributed::{GradSync, ProcessGroup};
use crate::error::{Error, Result};
use crate::evaluate::{self, EvalCounts, LabelScores, Tta};
use crate::explain::{grad_cam, GradCam};
use crate::glob::glob_match;
use crate::inspect::{self, Embeddings};
use crate::model::Network;
use crate::optimizer::ParamGroup;
use crate::options::{dtype, precision, AveragingOptions, LoadOptions, LossOptions, ModelOptions, StepOptions};
use crate::spec::{LayerRow, ModelSpec};
use crate::trainer::{PendingStep, StepOutput, Trainer};
use crate::{onnx, runtime, whitening};

/// One tensor of a state dict as raw little-endian bytes (read from a `.pth` file, say).
#[derive(Debug, Clone, Copy)]
pub struct TensorBytes<'a> {
    pub name: &'a str,
    /// `float32`, `float64`, `float16`, `bfloat16`, `int64`, `int32`, `uint8`, `int8` or `bool`.
    pub dtype: &'a str,
    pub shape: &'a [i64],
    pub data: &'a [u8],
}

/// An image classifier: a network, its optimizer and loss, and the state around them.
#[derive(Debug)]
pub struct Classifier {
    trainer: Trainer,
    /// The header of the checkpoint it was loaded from; empty for a new model.
    metadata: HashMap<String, String>,
    /// Averaged weights read from a checkpoint, waiting for [`Classifier::set_averaging`] to say how to continue them.
    pending_average: Option<Vec<Tensor>>,
    /// Steps launched by [`Classifier::launch_train_step`] whose reports have not been read yet, by id.
    launched: LaunchedSteps,
}

/// Launched steps waiting for their reports to be read, each under the id its launch returned.
#[derive(Debug, Default)]
struct LaunchedSteps {
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
pub fn default_channels_last(device: Device) -> bool {
    match std::env::var("CONVKIT_CHANNELS_LAST").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => device == Device::Cpu,
    }
}

impl Classifier {
    fn wrap(trainer: Trainer, metadata: HashMap<String, String>, average: Option<Vec<Tensor>>) -> Self {
        Classifier {
            trainer,
            metadata,
            pending_average: average,
            launched: LaunchedSteps::default(),
        }
    }

    /// A freshly initialized model built from `spec` (seeding libtorch first when `options` has a seed).
    pub fn create(spec: ModelSpec, options: ModelOptions) -> Result<Self> {
        let device = runtime::parse_device(&options.device)?;
        if let Some(seed) = options.seed {
            runtime::seed(seed as u64);
        }
        let mut net = Network::new(spec, device)?;
        net.set_channels_last(options.channels_last.unwrap_or_else(|| default_channels_last(device)))?;
        net.precision = precision(options.precision.as_deref())?;
        net.set_dtype(dtype(options.dtype.as_deref())?)?;
        let loss = options.loss()?;
        let trainer = Trainer::with_groups(
            net,
            options.optimizer.unwrap_or_default(),
            options.param_groups.unwrap_or_default(),
            loss,
        )?;
        Ok(Classifier::wrap(trainer, HashMap::new(), None))
    }

    /// Loads a checkpoint written by [`Classifier::save`]: spec and weights, and, with `forTraining`, the optimizer
    /// and averaging state when their `.optim.safetensors` file is beside it.
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Self> {
        let device = runtime::parse_device(&options.device)?;
        let (mut trainer, metadata, average) = if options.for_training.unwrap_or(false) {
            checkpoint::load_trainer(path, device)?
        } else {
            let (net, metadata) = checkpoint::load_network(path, device)?;
            (Trainer::new(net, Default::default())?, metadata, None)
        };
        trainer
            .net
            .set_channels_last(options.channels_last.unwrap_or_else(|| default_channels_last(device)))?;
        Ok(Classifier::wrap(trainer, metadata, average))
    }

    /// The network, to read.
    pub fn network(&self) -> &Network {
        &self.trainer.net
    }

    /// Launches a step on the dataset images at `indices` with the step's options: its learning rate, this rank's
    /// vote to stop after it (data-parallel runs only), its augmentation, and how it counts toward an update.
    fn launch(&mut self, data: &Dataset, indices: &[i64], options: &StepOptions) -> Result<PendingStep> {
        let t = &mut self.trainer;
        if let Some(lr) = options.lr {
            t.optimizer.set_lr(lr)?;
        }
        if let Some(sync) = &mut t.grad_sync {
            sync.vote_stop = options.stop.unwrap_or(false);
        }
        let augment = options.augment()?;
        t.micro_batch = options.micro_batch()?;
        t.launch_step_indices(data, indices, augment.as_ref().map(|(a, d)| (a, d)))
    }

    /// One training step on the dataset images at `indices`, with this step's learning rate and augmentation.
    pub fn train_step(&mut self, data: &Dataset, indices: &[i64], options: &StepOptions) -> Result<StepOutput> {
        self.launch(data, indices, options)?.finish()
    }

    /// [`Classifier::train_step`] without its report: queues the step (on a GPU it returns before the kernels run)
    /// and returns an id for [`Classifier::finish_train_step`]. Launching step b + 1 before finishing step b keeps
    /// a GPU busy in between.
    pub fn launch_train_step(&mut self, data: &Dataset, indices: &[i64], options: &StepOptions) -> Result<u32> {
        let step = self.launch(data, indices, options)?;
        Ok(self.launched.insert(step))
    }

    /// Waits for the step [`Classifier::launch_train_step`] gave `id` to and reads its report.
    pub fn finish_train_step(&mut self, id: u32) -> Result<StepOutput> {
        let step = self.launched.steps.remove(&id).ok_or_else(|| Error::InvalidOption {
            field: "finishTrainBatch".into(),
            expected: "the id of a step launched by launchTrainBatch and not yet finished".into(),
            got: id.to_string(),
        })?;
        step.finish()
    }

    /// One training step on uint8 images `[N, C, H, W]` of `shape` `[C, H, W]`, normalized with `norm` and
    /// augmented as `options` says; images may be larger than the input, for random crops.
    pub fn train_pixels(
        &mut self,
        pixels: &[u8],
        labels: &[i64],
        shape: [i64; 3],
        norm: Normalization,
        options: &StepOptions,
    ) -> Result<StepOutput> {
        let net = &self.trainer.net;
        let data = Dataset::new(pixels, labels, shape, net.classes(), norm, net.device)?;
        let all: Vec<i64> = (0..data.len()).collect();
        self.train_step(&data, &all, options)
    }

    /// One training step on normalized floats `[N, C, H, W]` and their labels.
    pub fn train_floats(&mut self, pixels: &[f32], labels: &[i64]) -> Result<StepOutput> {
        self.trainer.step_floats(pixels, labels)
    }

    /// Runs `f` with the averaged weights swapped in when `averaged` asks for them and there are any.
    fn with_average<T>(&mut self, averaged: bool, f: impl FnOnce(&Trainer) -> Result<T>) -> Result<T> {
        let t = &mut self.trainer;
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

    /// Evaluates on the dataset (at `indices`, or all of it) in batches of `batch_size`, without training; with
    /// `averaged`, on the averaged weights when averaging is on. Stops between batches once `cancel` is set.
    pub fn evaluate(
        &mut self,
        data: &Dataset,
        indices: Option<&[i64]>,
        batch_size: usize,
        tta: Tta,
        averaged: bool,
        cancel: &AtomicBool,
    ) -> Result<EvalCounts> {
        self.with_average(averaged, |t| {
            evaluate::evaluate(&t.net, data, indices, batch_size, tta, cancel)
        })
    }

    /// [`Classifier::evaluate`] for multi-label data: every image's probabilities and the loss.
    pub fn evaluate_multi_label(
        &mut self,
        data: &Dataset,
        indices: Option<&[i64]>,
        batch_size: usize,
        tta: Tta,
        averaged: bool,
        cancel: &AtomicBool,
    ) -> Result<LabelScores> {
        self.with_average(averaged, |t| {
            evaluate::evaluate_multi_label(&t.net, data, indices, batch_size, tta, cancel)
        })
    }

    /// Scores each class on its own (a sigmoid per class) in prediction, or, with `false`, one softmax over them.
    pub fn set_multi_label(&mut self, on: bool) {
        self.trainer.net.multi_label = on;
    }

    /// Class probabilities (or, with `raw_logits`, logits) for `count` normalized images `[N, C, H, W]`, row by row.
    pub fn predict_floats(&self, pixels: &[f32], count: usize, tta: Tta, raw_logits: bool) -> Result<Vec<f32>> {
        let net = &self.trainer.net;
        let x = floats_to_batch(net, net.eval_size(), pixels, count, "predict images")?;
        if raw_logits {
            evaluate::logits(net, &x, tta)
        } else {
            evaluate::probabilities(net, &x, tta)
        }
    }

    /// Class probabilities for `count` uint8 images `[N, C, H, W]`, normalized with `norm`.
    pub fn predict_pixels(&self, pixels: &[u8], count: usize, norm: &Normalization, tta: Tta) -> Result<Vec<f32>> {
        let net = &self.trainer.net;
        let x = pixels_to_batch(net, net.eval_size(), pixels, count, norm, "predict images")?;
        evaluate::probabilities(net, &x, tta)
    }

    /// Grad-CAM heatmaps for `count` uint8 images `[N, C, H, W]`, normalized with `norm`.
    pub fn explain_pixels(
        &self,
        pixels: &[u8],
        count: usize,
        norm: &Normalization,
        targets: Option<&[i64]>,
        layer: Option<&str>,
    ) -> Result<GradCam> {
        let net = &self.trainer.net;
        let x = pixels_to_batch(net, net.eval_size(), pixels, count, norm, "explain images")?;
        grad_cam(net, &x, targets, layer)
    }

    /// Embeddings of the images of `data` at `indices`: the spatial mean of `layer`'s feature map (by default the
    /// last one), in evaluation mode (see [`inspect::embeddings`]).
    pub fn embed(
        &self,
        data: &Dataset,
        indices: &[i64],
        batch_size: usize,
        layer: Option<&str>,
        cancel: &AtomicBool,
    ) -> Result<Embeddings> {
        inspect::embeddings(&self.trainer.net, data, indices, batch_size, layer, cancel)
    }

    /// Writes the weights (and, with `with_optimizer`, the optimizer and averaging state beside them) atomically;
    /// `metadata` lands in the safetensors header. With `averaged`, the averaged weights are written, when averaging.
    pub fn save(
        &mut self,
        path: &Path,
        metadata: HashMap<String, String>,
        with_optimizer: bool,
        averaged: bool,
    ) -> Result<()> {
        self.with_average(averaged, |t| {
            checkpoint::save_trainer(t, path, metadata, with_optimizer)
        })
    }

    /// Writes the model as an ONNX file (opset 17, dynamic batch size, `input` → `logits`), atomically; `metadata`
    /// becomes its `metadata_props`.
    pub fn export_onnx(&self, path: &Path, metadata: HashMap<String, String>) -> Result<()> {
        onnx::export(&self.trainer.net, path, &metadata.into_iter().collect())
    }

    /// Loads weights alone from a safetensors file (such as a PyTorch state dict), strictly.
    pub fn load_weights(&mut self, path: &Path) -> Result<()> {
        checkpoint::load_weights(&mut self.trainer.net, path).map(|_| ())
    }

    /// Loads a state dict given as raw tensors, strictly, as `load_state_dict(strict=True)`; `source` names where it
    /// came from in errors. The model's tensors matching a glob of `keep` keep their own values.
    pub fn load_state_dict<'a>(
        &mut self,
        tensors: impl IntoIterator<Item = TensorBytes<'a>>,
        source: &str,
        keep: &[String],
    ) -> Result<()> {
        let device = self.trainer.net.device;
        let mut map = HashMap::new();
        for b in tensors {
            let tensor = tensor_from_bytes(b.dtype, b.shape, b.data, device).map_err(|e| match e {
                Error::BadShape { what, expected, got } => Error::BadShape {
                    what: format!("{source}: tensor {:?} ({what})", b.name),
                    expected,
                    got,
                },
                other => other,
            })?;
            map.insert(b.name.to_owned(), tensor);
        }
        self.trainer.net.load_tensors_keeping(map, Path::new(source), keep)
    }

    /// Freezes (`trainable` false) or unfreezes the parameters whose names match any of `patterns` (globs). Layers
    /// the spec froze stay frozen. Returns how many parameters changed.
    pub fn set_trainable(&mut self, patterns: &[String], trainable: bool) -> Result<usize> {
        self.trainer
            .net
            .set_trainable(|name| patterns.iter().any(|p| glob_match(p, name)), trainable)
    }

    /// Trains with this loss from the next step on. A checkpoint does not keep the loss, so a run that loads one to
    /// train on sets it again.
    pub fn set_loss(&mut self, options: &LossOptions) -> Result<()> {
        self.trainer.set_loss(options.try_into()?)
    }

    /// Clips each later update's gradients to this global 2-norm (`None`: off). Like the loss, not in checkpoints.
    pub fn set_grad_clip_norm(&mut self, max_norm: Option<f64>) -> Result<()> {
        self.trainer.set_grad_clip_norm(max_norm)
    }

    /// Batch norm layers normalize with their running statistics (and keep them) even while they train.
    pub fn set_frozen_batch_norm_statistics(&mut self, frozen: bool) {
        self.trainer.net.frozen_batchnorm_statistics = frozen;
    }

    /// The `[height, width]` evaluation and prediction feed the network, or `None` for the spec's input.
    pub fn set_eval_input_size(&mut self, size: Option<&[u32]>) -> Result<()> {
        let size = match size {
            None => None,
            Some(&[h, w]) => Some([h as i64, w as i64]),
            Some(other) => {
                return Err(Error::InvalidOption {
                    field: "evalInputSize".into(),
                    expected: "[height, width]".into(),
                    got: format!("{other:?}"),
                })
            }
        };
        self.trainer.net.set_eval_input_size(size)
    }

    /// Starts weight averaging from the current weights (continuing averaged weights read from the checkpoint, if
    /// any), or stops it with `None`.
    pub fn set_averaging(&mut self, options: Option<&AveragingOptions>) -> Result<()> {
        let config = options.map(AveragingConfig::try_from).transpose()?;
        self.trainer.set_averaging(config)?;
        // A checkpoint's averaged weights are offered once, to the first averaging started after loading it.
        let saved = self.pending_average.take();
        if let (Some(avg), Some(saved)) = (self.trainer.averager.as_mut(), saved) {
            if saved.len() == avg.average.len() {
                avg.average = saved;
            }
        }
        Ok(())
    }

    /// Copies the averaged weights into the model for good and stops averaging (the end of a run).
    pub fn finish_averaging(&mut self) -> Result<()> {
        if let Some(avg) = self.trainer.averager.take() {
            Averager::copy_in(&avg, &mut self.trainer.net)?;
        }
        Ok(())
    }

    /// Initializes the first convolution (`layer`) as a patch-whitening filter bank from the dataset images at
    /// `indices` (see [`crate::whitening`]); returns the eigenvalues, largest first.
    pub fn init_whitening(&mut self, data: &Dataset, indices: &[i64], layer: &str, eps: f64) -> Result<Vec<f64>> {
        whitening::init_whitening(&mut self.trainer.net, data, indices, layer, eps)
    }

    /// Each layer, depth first, with its shapes, parameters and whether it trains now.
    pub fn layers(&self) -> Vec<LayerRow> {
        self.trainer.net.summary()
    }

    /// The spec the model was built from, as JSON, every default written out.
    pub fn spec_json(&self) -> String {
        self.trainer.net.spec.to_json()
    }

    /// The device it lives on, by name (`cpu`, `cuda:0`).
    pub fn device_name(&self) -> String {
        runtime::device_name(self.trainer.net.device)
    }

    pub fn classes(&self) -> i64 {
        self.trainer.net.classes()
    }

    pub fn param_count(&self) -> i64 {
        self.trainer.net.param_count()
    }

    /// Parameters that train now.
    pub fn trainable_param_count(&self) -> i64 {
        self.trainer.net.trainable_param_count()
    }

    /// The header of the checkpoint this model was loaded from; empty for a new model.
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// Steps the optimizer has taken.
    pub fn optimizer_step(&self) -> i64 {
        self.trainer.optimizer.step
    }

    /// The optimizer's learning rate (before parameter-group scales).
    pub fn lr(&self) -> f64 {
        self.trainer.optimizer.lr
    }

    /// Changes the learning rate for the following steps.
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        self.trainer.optimizer.set_lr(lr)
    }

    /// `fp32`, or `bf16`: convolutions and linear layers compute in bfloat16 from fp32 weights.
    pub fn set_precision(&mut self, name: &str) -> Result<()> {
        self.trainer.net.precision = precision(Some(name))?;
        Ok(())
    }

    /// Replaces the optimizer's parameter groups for the following steps.
    pub fn set_param_groups(&mut self, groups: Vec<ParamGroup>) -> Result<()> {
        self.trainer.optimizer.set_groups(groups)
    }

    /// Data-parallel training: from now on each step averages the gradients over `group` between backward and the
    /// update, in buckets of at most `bucket_mb` MiB (default 25, DDP's), and with `sync_batch_norm` batch norms that
    /// learn take their statistics over every rank's batch; `None` detaches the model again.
    pub fn attach_process_group(
        &mut self,
        group: Option<Arc<ProcessGroup>>,
        bucket_mb: Option<f64>,
        sync_batch_norm: bool,
    ) -> Result<()> {
        let mb = bucket_mb.unwrap_or(25.0);
        if !(mb.is_finite() && mb > 0.0) {
            return Err(Error::InvalidOption {
                field: "distributed.bucketMb".into(),
                expected: "a number of MiB > 0".into(),
                got: mb.to_string(),
            });
        }
        let t = &mut self.trainer;
        t.net.sync_batchnorm = group.as_ref().filter(|_| sync_batch_norm).map(Arc::clone);
        t.grad_sync = group.map(|g| GradSync::new(g, (mb * 1024.0 * 1024.0) as usize));
        Ok(())
    }

    /// Copies `root`'s parameters and buffers (batch norm statistics) into this model on every rank of `group`.
    pub fn broadcast_from(&mut self, group: &ProcessGroup, root: i32) -> Result<()> {
        group.broadcast_network(&mut self.trainer.net, root)
    }
}
