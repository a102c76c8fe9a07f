//! Options as callers pass them (JavaScript, through the binding, which derives their napi conversions and
//! TypeScript types from these declarations), and their conversion into the core's types. Each `TryFrom` checks
//! what the types cannot (enumerated strings, ranges) and names the option at fault.

use crate::augment::{Augment, Flip, Mix, PadMode, RandomErasing, ResizedCrop};
use crate::auto_augment::{AutoAugment, Policy, PolicyName};
use crate::averaging::{AveragingConfig, AveragingMode, DecayWarmup};
use crate::distributed::{Backend, DistConfig};
use crate::draw::Draw;
use crate::error::Error;
use crate::evaluate::Tta;
use crate::loss::{LossConfig, Reduction};
use crate::optimizer::{OptimizerConfig, ParamGroup};
use crate::trainer::MicroBatch;
use crate::weights::Precision;

fn pick<T: serde::de::DeserializeOwned>(field: &str, value: &str, expected: &str) -> Result<T, Error> {
    serde_json::from_value(serde_json::Value::String(value.to_owned())).map_err(|_| Error::InvalidOption {
        field: field.to_owned(),
        expected: expected.to_owned(),
        got: format!("{value:?}"),
    })
}

/// How a model is built.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "napi", napi_derive::napi(object))]
pub struct ModelOptions {
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    #[cfg_attr(feature = "napi", napi(ts_type = "'auto' | 'cpu' | 'cuda' | `cuda:${number}`"))]
    pub device: String,
    pub optimizer: Option<OptimizerConfig>,
    /// Parameters with their own learning-rate scale or weight decay.
    pub param_groups: Option<Vec<ParamGroup>>,
    /// Seeds libtorch before the weights are drawn.
    pub seed: Option<i64>,
    /// Lay activations out channels_last. Defaults to true on the CPU, where oneDNN runs it about 20 % faster.
    pub channels_last: Option<bool>,
    /// `fp32` or `bf16`. Defaults to `fp32`.
    #[cfg_attr(feature = "napi", napi(ts_type = "'fp32' | 'bf16'"))]
    pub precision: Option<String>,
    /// Label smoothing ε of the training loss. Defaults to 0.
    pub label_smoothing: Option<f64>,
    /// `mean` or `sum` of the per-image losses. Defaults to `mean`.
    #[cfg_attr(feature = "napi", napi(ts_type = "'mean' | 'sum'"))]
    pub loss_reduction: Option<String>,
    /// `float32`, or `float64` to check numerics against a reference. Defaults to `float32`.
    #[cfg_attr(feature = "napi", napi(ts_type = "'float32' | 'float64'"))]
    pub dtype: Option<String>,
    /// The weight of each class in the training loss, one per class in label order (PyTorch's `weight`). Defaults
    /// to 1 for every class.
    pub class_weights: Option<Vec<f64>>,
}

pub fn precision(value: Option<&str>) -> Result<Precision, Error> {
    value.map(Precision::parse).transpose().map(Option::unwrap_or_default)
}

pub fn dtype(value: Option<&str>) -> Result<tch::Kind, Error> {
    match value.unwrap_or("float32") {
        "float32" => Ok(tch::Kind::Float),
        "float64" => Ok(tch::Kind::Double),
        other => Err(Error::InvalidOption {
            field: "dtype".into(),
            expected: "'float32' or 'float64'".into(),
            got: format!("{other:?}"),
        }),
    }
}

impl ModelOptions {
    pub fn loss(&self) -> Result<LossConfig, Error> {
        LossConfig::try_from(&LossOptions {
            label_smoothing: self.label_smoothing,
            reduction: self.loss_reduction.clone(),
            class_weights: self.class_weights.clone(),
        })
    }
}

/// The training loss: cross-entropy as `torch.nn.functional.cross_entropy(weight=…, label_smoothing=…,
/// reduction=…)` computes it.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "napi", napi_derive::napi(object))]
pub struct LossOptions {
    /// Label smoothing ε. Defaults to 0.
    pub label_smoothing: Option<f64>,
    /// `mean` or `sum` of the per-image losses. Defaults to `mean`.
    #[cfg_attr(feature = "napi", napi(ts_type = "'mean' | 'sum'"))]
    pub reduction: Option<String>,
    /// The weight of each class, one per class in label order. Defaults to 1 for every class.
    pub class_weights: Option<Vec<f64>>,
}

impl TryFrom<&LossOptions> for LossConfig {
    type Error = Error;

    fn try_from(b: &LossOptions) -> Result<Self, Error> {
        let config = LossConfig {
            label_smoothing: b.label_smoothing.unwrap_or(0.0),
            reduction: b
                .reduction
                .as_deref()
                .map(Reduction::parse)
                .transpose()?
                .unwrap_or_default(),
            class_weights: b.class_weights.clone(),
        };
        config.validate()?;
        Ok(config)
    }
}

/// A random-resized crop: area fraction and aspect-ratio ranges, resized to the input.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "napi", napi_derive::napi(object))]
pub struct ResizedCropOptions {
    /// `[low, high]` fraction of the image's area.
    #[cfg_attr(feature = "napi", napi(ts_type = "[number, number]"))]
    pub scale: Vec<f64>,
    /// `[low, high]` aspect ratio (width / height).
    #[cfg_attr(feature = "napi", napi(ts_type = "[number, number]"))]
    pub ratio: Vec<f64>,
}

/// Augmentation of one training batch, on the device.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "napi", napi_derive::napi(object))]
pub struct AugmentOptions {
    /// Random crop back to the input size from this much padding on each side. Defaults to 0.
    pub crop_padding: Option<i64>,
    /// How crop padding is filled. Defaults to `zeros`.
    #[cfg_attr(feature = "napi", napi(ts_type = "'zeros' | 'reflect'"))]
    pub pad_mode: Option<String>,
    /// Defaults to `none`. `alternating` gives each image one random flip, inverted every other epoch.
    #[cfg_attr(feature = "napi", napi(ts_type = "'none' | 'random' | 'alternating'"))]
    pub flip: Option<String>,
    /// Side of a square zeroed at a random place in each image. Defaults to 0.
    pub cutout: Option<i64>,
    /// A random-resized crop of each image, resized to the input.
    pub resized_crop: Option<ResizedCropOptions>,
    /// TrivialAugmentWide or RandAugment, torchvision's operations on each image after crops and flips.
    pub auto_augment: Option<AutoAugmentOptions>,
    /// Random erasing of a box in each image, after normalization.
    pub random_erasing: Option<RandomErasingOptions>,
    /// Mixup and CutMix of the batch with itself reversed; the step then trains on soft targets.
    pub mix: Option<MixOptions>,
}

/// timm's `Mixup` in batch mode: one λ per batch from Beta(α, α).
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "napi", napi_derive::napi(object))]
pub struct MixOptions {
    /// Mixup's α (0: off). Defaults to 0.
    pub mixup_alpha: Option<f64>,
    /// CutMix's α (0: off). Defaults to 0.
    pub cutmix_alpha: Option<f64>,
    /// The chance that a batch is mixed at all. Defaults to 1.
    pub probability: Option<f64>,
    /// With both on, the chance that a mixed batch uses CutMix. Defaults to 0.5.
    pub switch_probability: Option<f64>,
}

/// torchvision's automatic augmentation policies, each image drawing its own operations from the batch seed.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "napi", napi_derive::napi(object))]
pub struct AutoAugmentOptions {
    /// `trivial-augment-wide`: one operation per image at a random magnitude; `rand-augment`: `numOps` in a row
    /// at magnitude bin `magnitude`.
    #[cfg_attr(feature = "napi", napi(ts_type = "'trivial-augment-wide' | 'rand-augment'"))]
    pub policy: String,
    /// RandAugment's operations per image. Defaults to 2.
    pub num_ops: Option<i64>,
    /// RandAugment's magnitude bin, below `magnitudeBins`. Defaults to 9.
    pub magnitude: Option<i64>,
    /// How many magnitudes each operation's range is cut into. Defaults to 31.
    pub magnitude_bins: Option<i64>,
}

impl TryFrom<&AutoAugmentOptions> for AutoAugment {
    type Error = Error;

    fn try_from(o: &AutoAugmentOptions) -> Result<Self, Error> {
        let name = pick::<PolicyName>(
            "augment.autoAugment.policy",
            &o.policy,
            "'trivial-augment-wide' or 'rand-augment'",
        )?;
        let bins = o.magnitude_bins.unwrap_or(31);
        let policy = match name {
            PolicyName::TrivialAugmentWide => Policy::TrivialAugmentWide { bins },
            PolicyName::RandAugment => Policy::RandAugment {
                ops: o.num_ops.unwrap_or(2),
                magnitude: o.magnitude.unwrap_or(9),
                bins,
            },
        };
        policy.validate()?;
        Ok(AutoAugment { policy })
    }
}

/// torchvision's `RandomErasing` (value 0, after normalization).
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "napi", napi_derive::napi(object))]
pub struct RandomErasingOptions {
    /// The chance that an image gets a box erased.
    pub probability: f64,
    /// `[low, high]` share of the image's area. Defaults to `[0.02, 0.33]`.
    pub scale: Option<Vec<f64>>,
    /// `[low, high]` aspect (height over width), drawn log-uniformly. Defaults to `[0.3, 3.3]`.
    pub ratio: Option<Vec<f64>>,
}

fn pair(field: &str, v: &[f64]) -> Result<[f64; 2], Error> {
    <[f64; 2]>::try_from(v).map_err(|_| Error::InvalidOption {
        field: field.to_owned(),
        expected: "[low, high]".into(),
        got: format!("{v:?}"),
    })
}

impl TryFrom<&AugmentOptions> for Augment {
    type Error = Error;

    fn try_from(b: &AugmentOptions) -> Result<Self, Error> {
        let aug = Augment {
            crop_padding: b.crop_padding.unwrap_or(0),
            pad_mode: b
                .pad_mode
                .as_deref()
                .map(|m| pick::<PadMode>("augment.padMode", m, "'zeros' or 'reflect'"))
                .transpose()?
                .unwrap_or_default(),
            flip: b
                .flip
                .as_deref()
                .map(|f| pick::<Flip>("augment.flip", f, "'none', 'random' or 'alternating'"))
                .transpose()?
                .unwrap_or_default(),
            cutout: b.cutout.unwrap_or(0),
            resized_crop: b
                .resized_crop
                .as_ref()
                .map(|rc| -> Result<ResizedCrop, Error> {
                    Ok(ResizedCrop {
                        scale: pair("augment.resizedCrop.scale", &rc.scale)?,
                        ratio: pair("augment.resizedCrop.ratio", &rc.ratio)?,
                    })
                })
                .transpose()?,
            auto_augment: b.auto_augment.as_ref().map(AutoAugment::try_from).transpose()?,
            mix: b.mix.as_ref().map(|m| Mix {
                mixup_alpha: m.mixup_alpha.unwrap_or(0.0),
                cutmix_alpha: m.cutmix_alpha.unwrap_or(0.0),
                probability: m.probability.unwrap_or(1.0),
                switch_probability: m.switch_probability.unwrap_or(0.5),
            }),
            random_erasing: b
                .random_erasing
                .as_ref()
                .map(|re| -> Result<RandomErasing, Error> {
                    Ok(RandomErasing {
                        probability: re.probability,
                        scale: pair(
                            "augment.randomErasing.scale",
                            re.scale.as_deref().unwrap_or(&[0.02, 0.33]),
                        )?,
                        ratio: pair(
                            "augment.randomErasing.ratio",
                            re.ratio.as_deref().unwrap_or(&[0.3, 3.3]),
                        )?,
                    })
                })
                .transpose()?,
        };
        aug.validate()?;
        Ok(aug)
    }
}

/// One training step's options.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "napi", napi_derive::napi(object))]
pub struct StepOptions {
    /// The learning rate for this step (schedules set it per batch); the last one set when absent.
    pub lr: Option<f64>,
    /// This batch's augmentation; none when absent.
    pub augment: Option<AugmentOptions>,
    /// Seeds this batch's random crops, flips and cutouts.
    pub batch_seed: Option<u32>,
    /// Seeds each image's alternating flip for the whole run.
    pub run_seed: Option<u32>,
    /// 1-based epoch, for alternating flips.
    pub epoch: Option<i64>,
    /// Data-parallel: this rank asks every rank to stop after this step (an interrupt). Defaults to false.
    pub stop: Option<bool>,
    /// Gradient accumulation: this step is one of this many micro-batches whose gradients add up to one update, so
    /// its loss is divided by it. Defaults to 1.
    pub micro_batches: Option<u32>,
    /// `false` keeps this step's gradients for a later step's update (accumulation): no update, no gradient
    /// all-reduce, no clipping. Defaults to true.
    pub update: Option<bool>,
}

impl StepOptions {
    /// How this step's gradients count toward an update.
    pub fn micro_batch(&self) -> Result<MicroBatch, Error> {
        let of = self.micro_batches.unwrap_or(1);
        if of == 0 {
            return Err(Error::option("microBatches", "an integer >= 1", 0));
        }
        Ok(MicroBatch {
            loss_scale: 1.0 / f64::from(of),
            update: self.update.unwrap_or(true),
        })
    }

    pub fn augment(&self) -> Result<Option<(Augment, Draw)>, Error> {
        match &self.augment {
            None => Ok(None),
            Some(b) => {
                let aug = Augment::try_from(b)?;
                let draw = Draw {
                    batch_seed: self.batch_seed.unwrap_or(0) as u64,
                    run_seed: self.run_seed.unwrap_or(0) as u64,
                    epoch: self.epoch.unwrap_or(1),
                };
                Ok((!aug.is_none()).then_some((aug, draw)))
            }
        }
    }
}

/// Weight averaging: EMA or Lookahead.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "napi", napi_derive::napi(object))]
pub struct AveragingOptions {
    /// `ema` or `lookahead`.
    #[cfg_attr(feature = "napi", napi(ts_type = "'ema' | 'lookahead'"))]
    pub mode: String,
    /// The weight of the old average in each update.
    pub decay: f64,
    /// Average every this many steps. Defaults to 1.
    pub every: Option<i64>,
    /// `cubic` scales the decay by (step / totalSteps)³. Defaults to `none`.
    #[cfg_attr(feature = "napi", napi(ts_type = "'none' | 'cubic'"))]
    pub warmup: Option<String>,
    /// The run's total steps, for the cubic warmup.
    pub total_steps: Option<i64>,
}

impl TryFrom<&AveragingOptions> for AveragingConfig {
    type Error = Error;

    fn try_from(b: &AveragingOptions) -> Result<Self, Error> {
        let config = AveragingConfig {
            mode: pick::<AveragingMode>("averaging.mode", &b.mode, "'ema' or 'lookahead'")?,
            decay: b.decay,
            every: b.every.unwrap_or(1),
            warmup: b
                .warmup
                .as_deref()
                .map(|w| pick::<DecayWarmup>("averaging.warmup", w, "'none' or 'cubic'"))
                .transpose()?
                .unwrap_or_default(),
            total_steps: b.total_steps.unwrap_or(0),
        };
        config.validate()?;
        Ok(config)
    }
}

/// Where and how this process joins a data-parallel group (torchrun's `MASTER_ADDR`, `MASTER_PORT`, `RANK`,
/// `WORLD_SIZE`).
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "napi", napi_derive::napi(object))]
pub struct DistributedOptions {
    pub master_addr: String,
    pub master_port: u32,
    pub rank: i32,
    pub world_size: i32,
    /// `gloo` (the default) or `nccl`.
    pub backend: Option<String>,
    /// Seconds a collective may wait for a peer before failing. Defaults to 20.
    pub timeout: Option<f64>,
    /// Seconds the ranks may take to meet at the start. Defaults to 300.
    pub store_timeout: Option<f64>,
    /// The address Gloo binds to; torch's default (`GLOO_SOCKET_IFNAME`, else this host's name) when absent.
    pub gloo_hostname: Option<String>,
}

fn seconds(field: &str, value: Option<f64>, default: f64) -> Result<std::time::Duration, Error> {
    let v = value.unwrap_or(default);
    if !(v.is_finite() && v > 0.0) {
        return Err(Error::InvalidOption {
            field: field.to_owned(),
            expected: "a number of seconds > 0".into(),
            got: v.to_string(),
        });
    }
    Ok(std::time::Duration::from_secs_f64(v))
}

impl TryFrom<&DistributedOptions> for DistConfig {
    type Error = Error;

    fn try_from(b: &DistributedOptions) -> Result<Self, Error> {
        let master_port = u16::try_from(b.master_port)
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| Error::InvalidOption {
                field: "distributed.masterPort".into(),
                expected: "a port in 1..65535".into(),
                got: b.master_port.to_string(),
            })?;
        Ok(DistConfig {
            master_addr: b.master_addr.clone(),
            master_port,
            rank: b.rank,
            world_size: b.world_size,
            backend: Backend::parse(b.backend.as_deref().unwrap_or("gloo"))?,
            timeout: seconds("distributed.timeout", b.timeout, 20.0)?,
            store_timeout: seconds("distributed.storeTimeout", b.store_timeout, 300.0)?,
            gloo_hostname: b.gloo_hostname.clone(),
        })
    }
}

pub fn tta(value: Option<&str>) -> Result<Tta, Error> {
    value.map(Tta::parse).transpose().map(Option::unwrap_or_default)
}

/// How to load a checkpoint.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "napi", napi_derive::napi(object))]
pub struct LoadOptions {
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    pub channels_last: Option<bool>,
    /// Also restore the optimizer (and averaging) state from the `.optim.safetensors` file beside it, to train on.
    /// Inference loads the weights alone.
    pub for_training: Option<bool>,
}
