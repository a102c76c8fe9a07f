//! Options as JavaScript passes them, and their conversion into the core's types. Each `TryFrom` checks what
//! napi's typing cannot (enumerated strings, ranges) and names the option at fault.

use convkit_core::augment::{Augment, Draw, Flip, PadMode, ResizedCrop};
use convkit_core::averaging::{AveragingConfig, AveragingMode, DecayWarmup};
use convkit_core::distributed::{Backend, DistConfig};
use convkit_core::loss::{LossConfig, Reduction};
use convkit_core::{Error, Precision, Tta};
use napi_derive::napi;

fn pick<T: serde::de::DeserializeOwned>(field: &str, value: &str, expected: &str) -> Result<T, Error> {
    serde_json::from_value(serde_json::Value::String(value.to_owned())).map_err(|_| Error::InvalidOption {
        field: field.to_owned(),
        expected: expected.to_owned(),
        got: format!("{value:?}"),
    })
}

/// How a model is built.
#[napi(object)]
pub struct BindingModelOptions {
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    pub optimizer: Option<convkit_core::OptimizerConfig>,
    /// Parameters with their own learning-rate scale or weight decay.
    pub param_groups: Option<Vec<convkit_core::ParamGroup>>,
    /// Seeds libtorch before the weights are drawn.
    pub seed: Option<i64>,
    /// Lay activations out channels_last. Defaults to true on the CPU, where oneDNN runs it about 20 % faster.
    pub channels_last: Option<bool>,
    /// `fp32` or `bf16`. Defaults to `fp32`.
    pub precision: Option<String>,
    /// Label smoothing ε of the training loss. Defaults to 0.
    pub label_smoothing: Option<f64>,
    /// `mean` or `sum` of the per-image losses. Defaults to `mean`.
    pub loss_reduction: Option<String>,
    /// `float32`, or `float64` to check numerics against a reference. Defaults to `float32`.
    pub dtype: Option<String>,
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

impl BindingModelOptions {
    pub fn loss(&self) -> Result<LossConfig, Error> {
        let config = LossConfig {
            label_smoothing: self.label_smoothing.unwrap_or(0.0),
            reduction: self
                .loss_reduction
                .as_deref()
                .map(Reduction::parse)
                .transpose()?
                .unwrap_or_default(),
        };
        config.validate()?;
        Ok(config)
    }
}

/// A random-resized crop: area fraction and aspect-ratio ranges.
#[napi(object)]
pub struct BindingResizedCrop {
    pub scale: Vec<f64>,
    pub ratio: Vec<f64>,
}

/// Augmentation of training batches.
#[napi(object)]
pub struct BindingAugment {
    pub crop_padding: Option<i64>,
    /// `zeros` or `reflect`.
    pub pad_mode: Option<String>,
    /// `none`, `random` or `alternating`.
    pub flip: Option<String>,
    pub cutout: Option<i64>,
    pub resized_crop: Option<BindingResizedCrop>,
}

fn pair(field: &str, v: &[f64]) -> Result<[f64; 2], Error> {
    <[f64; 2]>::try_from(v).map_err(|_| Error::InvalidOption {
        field: field.to_owned(),
        expected: "[low, high]".into(),
        got: format!("{v:?}"),
    })
}

impl TryFrom<&BindingAugment> for Augment {
    type Error = Error;

    fn try_from(b: &BindingAugment) -> Result<Self, Error> {
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
        };
        aug.validate()?;
        Ok(aug)
    }
}

/// One training step's options.
#[napi(object)]
pub struct BindingStepOptions {
    /// The learning rate for this step (schedules set it per batch); the last one set when absent.
    pub lr: Option<f64>,
    pub augment: Option<BindingAugment>,
    /// Seeds this batch's random crops, flips and cutouts.
    pub batch_seed: Option<u32>,
    /// Seeds each image's alternating flip for the whole run.
    pub run_seed: Option<u32>,
    /// 1-based epoch, for alternating flips.
    pub epoch: Option<i64>,
    /// Data-parallel: this rank asks every rank to stop after this step (an interrupt). Defaults to false.
    pub stop: Option<bool>,
}

impl BindingStepOptions {
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
#[napi(object)]
pub struct BindingAveraging {
    /// `ema` or `lookahead`.
    pub mode: String,
    pub decay: f64,
    /// Average every this many steps. Defaults to 1.
    pub every: Option<i64>,
    /// `none` or `cubic`. Defaults to `none`.
    pub warmup: Option<String>,
    /// The run's total steps, for the cubic warmup.
    pub total_steps: Option<i64>,
}

impl TryFrom<&BindingAveraging> for AveragingConfig {
    type Error = Error;

    fn try_from(b: &BindingAveraging) -> Result<Self, Error> {
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
#[napi(object)]
pub struct BindingDistributedOptions {
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

impl TryFrom<&BindingDistributedOptions> for DistConfig {
    type Error = Error;

    fn try_from(b: &BindingDistributedOptions) -> Result<Self, Error> {
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
