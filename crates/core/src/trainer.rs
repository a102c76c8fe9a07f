//! A network paired with its optimizer, loss and weight averaging: the training step over one batch.

use std::time::Instant;

use tch::{Kind, Tensor};

use crate::augment::Augment;
use crate::averaging::{Averager, AveragingConfig};
use crate::batch::{check_dataset, floats_to_batch};
use crate::dataset::{check_labels, Dataset};
use crate::distributed::GradSync;
use crate::draw::Draw;
use crate::error::{Error, Result};
use crate::grad_clip;
use crate::loss::{Loss, LossConfig};
use crate::model::Network;
use crate::optimizer::{Optimizer, OptimizerConfig, ParamGroup};
use crate::transfer::HostCopy;

/// What one training step reports, measured on the batch before the update.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutput {
    /// Mean cross-entropy over the batch (no label smoothing, no class weights: it compares with evaluation's).
    pub loss: f64,
    /// Images classified right (multi-label: every label right, scores over 0 exactly on the image's labels).
    pub correct: i64,
    /// Images whose label is among the five highest scores (multi-label: whose highest score is one of its labels).
    pub top5_correct: i64,
    pub count: i64,
    /// The learning rate of this step's update, before parameter groups' scales.
    pub lr: f64,
    /// The predicted class of each image, in batch order.
    pub predicted: Vec<i64>,
    /// Data-parallel: whether any rank asked to stop after this step (always false in a single process).
    pub stop_requested: bool,
    /// Data-parallel: seconds spent averaging the gradients over the ranks (0 in a single process).
    pub allreduce_seconds: f64,
    /// Wall time spent on the step in native code (its launch, and reading its report back), in seconds.
    pub seconds: f64,
}

/// A launched training step whose report is still on the device (see [`Trainer::launch_step`]).
#[derive(Debug)]
pub struct PendingStep {
    /// `[mean loss, top-1 hits, top-5 hits, predicted class of each image…]`, float64, on its way to the host
    /// (queued right after the step, so reading it does not wait for a step queued later).
    report: HostCopy,
    count: i64,
    lr: f64,
    stop_requested: bool,
    allreduce_seconds: f64,
    launch_seconds: f64,
}

impl PendingStep {
    /// Waits for the step's kernels and reads its report back.
    pub fn finish(self) -> Result<StepOutput> {
        let started = Instant::now();
        let host = self.report.wait()?;
        let len = host.numel();
        let mut values = vec![0f64; len];
        host.f_copy_data(&mut values, len)?;
        Ok(StepOutput {
            loss: values[0],
            correct: values[1] as i64,
            top5_correct: values[2] as i64,
            count: self.count,
            lr: self.lr,
            predicted: values[3..].iter().map(|&c| c as i64).collect(),
            stop_requested: self.stop_requested,
            allreduce_seconds: self.allreduce_seconds,
            seconds: self.launch_seconds + started.elapsed().as_secs_f64(),
        })
    }
}

/// A multi-label step's report, laid out as a single-label one's: the mean loss, the images whose every label is right
/// (a score above 0 for each label, below for the rest), the images whose highest score is one of their labels, then
/// each image's highest-scoring class.
fn multi_label_report(logits: &Tensor, y: &Tensor, nll: &Tensor) -> Result<Tensor> {
    let exact = logits.f_gt(0.0)?.f_eq_tensor(&y.f_gt(0.5)?)?.f_all_dim(1, false)?;
    let top = logits.f_argmax(1, false)?;
    let top_hit = y.f_gather(1, &top.f_unsqueeze(1)?, false)?;
    let sums = Tensor::f_stack(
        &[
            nll.f_mean(Kind::Double)?,
            exact.f_sum(Kind::Double)?,
            top_hit.f_sum(Kind::Double)?,
        ],
        0,
    )?;
    Ok(Tensor::f_cat(&[sums, top.f_to_kind(Kind::Double)?], 0)?)
}

/// How one step's gradients count toward an update (gradient accumulation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MicroBatch {
    /// The step's loss is multiplied by this before backward: 1 / the micro-batches of an update, so that their
    /// summed gradients are the mean over all of their images.
    pub loss_scale: f64,
    /// Whether the update follows this step's backward; otherwise the gradients wait in the parameters.
    pub update: bool,
}

impl Default for MicroBatch {
    fn default() -> Self {
        MicroBatch {
            loss_scale: 1.0,
            update: true,
        }
    }
}

#[derive(Debug)]
pub struct Trainer {
    pub net: Network,
    pub optimizer: Optimizer,
    pub loss: Loss,
    pub averager: Option<Averager>,
    /// Set in a data-parallel run: averages the gradients over the ranks after backward, before the update.
    pub grad_sync: Option<GradSync>,
    /// The global gradient norm each update is clipped to (after the ranks' average); none by default.
    pub grad_clip_norm: Option<f64>,
    /// How the next launched step counts (see [`MicroBatch`]); back to a whole update after it.
    pub micro_batch: MicroBatch,
}

impl Trainer {
    pub fn new(net: Network, optimizer: OptimizerConfig) -> Result<Self> {
        Ok(Trainer {
            net,
            optimizer: Optimizer::new(optimizer, Vec::new())?,
            loss: Loss::default(),
            averager: None,
            grad_sync: None,
            grad_clip_norm: None,
            micro_batch: MicroBatch::default(),
        })
    }

    pub fn with_groups(
        net: Network,
        optimizer: OptimizerConfig,
        groups: Vec<ParamGroup>,
        loss: LossConfig,
    ) -> Result<Self> {
        let loss = Loss::new(loss, net.classes(), net.device)?;
        Ok(Trainer {
            net,
            optimizer: Optimizer::new(optimizer, groups)?,
            loss,
            averager: None,
            grad_sync: None,
            grad_clip_norm: None,
            micro_batch: MicroBatch::default(),
        })
    }

    /// Trains with `loss` from the next step on (class weights are checked against the network's classes).
    pub fn set_loss(&mut self, loss: LossConfig) -> Result<()> {
        self.loss = Loss::new(loss, self.net.classes(), self.net.device)?;
        Ok(())
    }

    /// Clips every later update's gradients to this global 2-norm (`None`: no clipping).
    pub fn set_grad_clip_norm(&mut self, max_norm: Option<f64>) -> Result<()> {
        self.grad_clip_norm = max_norm.map(grad_clip::check_max_norm).transpose()?;
        Ok(())
    }

    /// Starts (or, with `None`, stops) weight averaging from the current weights.
    pub fn set_averaging(&mut self, config: Option<AveragingConfig>) -> Result<()> {
        self.averager = match config {
            Some(c) => Some(Averager::new(c, &mut self.net)?),
            None => None,
        };
        Ok(())
    }

    /// Forward, loss, backward, an optimizer step and the averaging on a normalized float batch, with its report.
    pub fn step(&mut self, x: &Tensor, y: &Tensor) -> Result<StepOutput> {
        self.launch_step(x, y)?.finish()
    }

    /// The work of [`Trainer::step`] without reading its report back: on a GPU the kernels are queued and this
    /// returns before they run; [`PendingStep::finish`] waits for them. Launching the next step before finishing
    /// this one keeps the GPU busy while the host reads the report and prepares the next batch.
    pub fn launch_step(&mut self, x: &Tensor, y: &Tensor) -> Result<PendingStep> {
        self.launch_step_with(x, y, false)
    }

    /// [`Trainer::launch_step`] with targets `y` as [`Loss::compute`] takes them: class indices, or `[N, classes]`
    /// rows, multi-hot when `multi_label`, else soft (mixed) targets.
    pub fn launch_step_with(&mut self, x: &Tensor, y: &Tensor, multi_label: bool) -> Result<PendingStep> {
        if !self.net.params.iter().any(|p| p.trainable) {
            return Err(Error::option(
                "trainable parameters",
                "at least one (every layer is frozen)",
                "none",
            ));
        }
        let started = Instant::now();
        let micro = std::mem::take(&mut self.micro_batch);
        let logits = self.net.forward_t(x, true)?;
        let (loss, nll) = self.loss.compute(&logits, y, multi_label)?;
        let loss = if micro.loss_scale == 1.0 {
            loss
        } else {
            loss.f_mul_scalar(micro.loss_scale)?
        };
        if let Err(e) = loss.f_backward() {
            // With synchronized batch norm the backward pass holds collectives: a lost peer fails it.
            return Err(match &self.net.sync_batchnorm {
                Some(group) => group.backward_error(e.to_string()),
                None => e.into(),
            });
        }
        // Accumulating, the gradients stay in the parameters (backward adds to them) until the step that updates,
        // which alone averages them over the ranks, clips them and applies them.
        let mut synced = Default::default();
        if micro.update {
            if let Some(sync) = &mut self.grad_sync {
                synced = sync.average(&self.net.params)?;
            }
            if let Some(max_norm) = self.grad_clip_norm {
                grad_clip::clip_grad_norm(&self.net.params, max_norm)?;
            }
            self.optimizer.step(&mut self.net.params)?;
            if let Some(avg) = &mut self.averager {
                avg.after_step(&mut self.net, self.optimizer.step)?;
            }
        }
        // The report as one tensor on the device (mean loss, top-1 and top-5 hits, then each image's predicted
        // class), so that reading it back is a single copy.
        let report = tch::no_grad(|| -> Result<Tensor> {
            if multi_label {
                return multi_label_report(&logits, y, &nll);
            }
            // Mixed targets count as their larger share's class.
            let y = if y.dim() == 2 {
                y.f_argmax(1, false)?
            } else {
                y.shallow_clone()
            };
            let k = logits.size()[1].min(5);
            let (_, top) = logits.f_topk(k, 1, true, true)?;
            let hits = top.f_eq_tensor(&y.f_unsqueeze(1)?)?;
            let sums = Tensor::f_stack(
                &[
                    nll.f_mean(Kind::Double)?,
                    hits.f_select(1, 0)?.f_sum(Kind::Double)?,
                    hits.f_sum(Kind::Double)?,
                ],
                0,
            )?;
            Ok(Tensor::f_cat(&[sums, top.f_select(1, 0)?.f_to_kind(Kind::Double)?], 0)?)
        })?;
        Ok(PendingStep {
            report: HostCopy::start(&report)?,
            count: y.size()[0],
            lr: self.optimizer.lr,
            stop_requested: synced.stop_requested,
            allreduce_seconds: synced.seconds,
            launch_seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// A step on the dataset images at `indices`, augmented when `augment` is given.
    pub fn step_indices(
        &mut self,
        data: &Dataset,
        indices: &[i64],
        augment: Option<(&Augment, &Draw)>,
    ) -> Result<StepOutput> {
        self.launch_step_indices(data, indices, augment)?.finish()
    }

    /// [`Trainer::step_indices`] without reading the report back (see [`Trainer::launch_step`]).
    pub fn launch_step_indices(
        &mut self,
        data: &Dataset,
        indices: &[i64],
        augment: Option<(&Augment, &Draw)>,
    ) -> Result<PendingStep> {
        check_dataset(&self.net, data)?;
        if indices.is_empty() {
            return Err(Error::BadShape {
                what: "batch indices".into(),
                expected: "at least one index".into(),
                got: "none".into(),
            });
        }
        let (x, y) = data.batch(indices, self.net.input_size(), augment)?;
        self.launch_step_with(&x, &y, data.multi_label())
    }

    /// A step on already normalized floats `[N, C, H, W]` sent from the caller.
    pub fn step_floats(&mut self, pixels: &[f32], labels: &[i64]) -> Result<StepOutput> {
        let x = floats_to_batch(&self.net, self.net.input_size(), pixels, labels.len(), "batch images")?;
        check_labels(labels, self.net.classes(), "batch labels")?;
        let y = Tensor::f_from_slice(labels)?.f_to_device(self.net.device)?;
        self.step(&x, &y)
    }
}
