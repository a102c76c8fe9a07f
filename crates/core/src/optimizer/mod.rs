//! Optimizers: libtorch's fused kernels (torch.optim's `fused=True`, `fused.rs`) over state tensors kept here, so
//! that the state is ours to save and a resumed run continues exactly. Each optimizer is one variant of
//! [`OptimizerConfig`] (its hyper-parameters, their defaults and checks) plus its update in a file of its own
//! (`adam.rs`, `sgd.rs`). Parameter groups give some parameters their own learning-rate scale and decay.

mod adam;
pub(crate) mod fused;
mod sgd;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::glob::glob_match;
use crate::weights::Param;

/// Which optimizer, with its hyper-parameters. Absent fields take PyTorch's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
#[cfg_attr(
    feature = "napi",
    napi_derive::napi(discriminant = "type", discriminant_case = "lowercase")
)]
pub enum OptimizerConfig {
    /// Adam, with an L2 penalty (`weightDecay`) added to the gradient as `torch.optim.Adam` does.
    #[serde(rename_all = "camelCase")]
    Adam {
        /// Defaults to 1e-3.
        lr: Option<f64>,
        /// Defaults to 0.9.
        beta1: Option<f64>,
        /// Defaults to 0.999.
        beta2: Option<f64>,
        /// Defaults to 1e-8.
        eps: Option<f64>,
        /// Defaults to 0.
        weight_decay: Option<f64>,
    },
    /// AdamW: Adam with decoupled weight decay, as `torch.optim.AdamW`.
    #[serde(rename_all = "camelCase")]
    Adamw {
        /// Defaults to 1e-3.
        lr: Option<f64>,
        /// Defaults to 0.9.
        beta1: Option<f64>,
        /// Defaults to 0.999.
        beta2: Option<f64>,
        /// Defaults to 1e-8.
        eps: Option<f64>,
        /// Decoupled: each step multiplies weights by `1 - lr × weightDecay`. Defaults to 0.01.
        weight_decay: Option<f64>,
    },
    /// Stochastic gradient descent with optional momentum, as `torch.optim.SGD`.
    #[serde(rename_all = "camelCase")]
    Sgd {
        /// Defaults to 1e-2.
        lr: Option<f64>,
        /// Defaults to 0.
        momentum: Option<f64>,
        /// Defaults to 0.
        dampening: Option<f64>,
        /// Nesterov momentum (needs momentum > 0 and dampening 0). Defaults to false.
        nesterov: Option<bool>,
        /// Defaults to 0.
        weight_decay: Option<f64>,
        /// Decay the weights directly (`w -= lr × weightDecay × w`) instead of adding an L2 term to the gradient,
        /// which momentum would then carry. Defaults to false, PyTorch's SGD.
        decoupled_weight_decay: Option<bool>,
    },
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig::Adam {
            lr: None,
            beta1: None,
            beta2: None,
            eps: None,
            weight_decay: None,
        }
    }
}

/// Every hyper-parameter with its default applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Hyper {
    Adam(adam::AdamHyper),
    Sgd(sgd::SgdHyper),
}

impl OptimizerConfig {
    pub fn from_json(json: &str) -> Result<Self> {
        let config: Self = serde_json::from_str(json)
            .map_err(|e| Error::option("optimizer", "adam, adamw or sgd with numeric hyper-parameters", e))?;
        config.hyper()?;
        Ok(config)
    }

    pub fn kind(&self) -> &'static str {
        match self {
            OptimizerConfig::Adam { .. } => "adam",
            OptimizerConfig::Adamw { .. } => "adamw",
            OptimizerConfig::Sgd { .. } => "sgd",
        }
    }

    /// The hyper-parameters with defaults applied, each checked; an error names the field.
    pub fn hyper(&self) -> Result<Hyper> {
        let h = match *self {
            OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => Hyper::Adam(adam::AdamHyper::new(lr, beta1, beta2, eps, weight_decay, false)?),
            OptimizerConfig::Adamw {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => Hyper::Adam(adam::AdamHyper::new(lr, beta1, beta2, eps, weight_decay, true)?),
            OptimizerConfig::Sgd {
                lr,
                momentum,
                dampening,
                nesterov,
                weight_decay,
                decoupled_weight_decay,
            } => Hyper::Sgd(sgd::SgdHyper::new(
                lr,
                momentum,
                dampening,
                nesterov,
                weight_decay,
                decoupled_weight_decay,
            )?),
        };
        Ok(h)
    }

    /// The same config with every default written out, as saved beside a checkpoint.
    pub fn with_defaults(&self) -> Result<Self> {
        Ok(match self.hyper()? {
            Hyper::Adam(h) => h.config(),
            Hyper::Sgd(h) => h.config(),
        })
    }

    pub fn lr(&self) -> Result<f64> {
        Ok(match self.hyper()? {
            Hyper::Adam(h) => h.lr,
            Hyper::Sgd(h) => h.lr,
        })
    }
}

pub(crate) fn check(field: &str, value: f64, ok: bool, expected: &str) -> Result<f64> {
    if value.is_finite() && ok {
        Ok(value)
    } else {
        Err(Error::option(&format!("optimizer.{field}"), expected, value))
    }
}

/// Parameters that train with their own learning-rate scale or weight decay, picked by name, layer type or
/// field. The first group a parameter matches applies; the rest use the optimizer's own values.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "napi", napi_derive::napi(object))]
pub struct ParamGroup {
    /// A glob over parameter names (`*` any run of characters, `?` one): `"fc.*"`, `"layer4.*"`.
    pub names: Option<String>,
    /// A layer type the parameter belongs to, such as `"batchnorm2d"`.
    pub layer: Option<String>,
    /// The parameter's field: `"weight"` or `"bias"`.
    pub field: Option<String>,
    /// Multiplies the learning rate (schedules included). Defaults to 1.
    pub lr_scale: Option<f64>,
    /// Replaces the optimizer's weight decay for these parameters.
    pub weight_decay: Option<f64>,
}

impl ParamGroup {
    fn matches(&self, p: &Param) -> bool {
        self.names.as_deref().is_none_or(|g| glob_match(g, &p.name))
            && self.layer.as_deref().is_none_or(|l| l == p.layer)
            && self.field.as_deref().is_none_or(|f| f == p.field)
    }

    fn validate(&self, index: usize) -> Result<()> {
        if self.names.is_none() && self.layer.is_none() && self.field.is_none() {
            return Err(Error::option(
                &format!("paramGroups[{index}]"),
                "at least one of names, layer or field",
                "none",
            ));
        }
        if let Some(l) = &self.layer {
            if !crate::layers::LAYER_TYPES.contains(&l.as_str()) {
                return Err(Error::option(
                    &format!("paramGroups[{index}].layer"),
                    format!("a layer type ({})", crate::layers::LAYER_TYPES.join(", ")),
                    l,
                ));
            }
        }
        if let Some(s) = self.lr_scale {
            check(&format!("paramGroups[{index}].lrScale"), s, s >= 0.0, "a number >= 0")?;
        }
        if let Some(w) = self.weight_decay {
            check(
                &format!("paramGroups[{index}].weightDecay"),
                w,
                w >= 0.0,
                "a number >= 0",
            )?;
        }
        Ok(())
    }
}

/// What the parameters updated by one fused call share.
#[derive(Debug, Clone, Copy, PartialEq)]
struct UpdateKey {
    lr_scale: f64,
    weight_decay: f64,
    fresh: bool,
    kind: Kind,
    device: Device,
}

/// An optimizer with its per-parameter state: Adam's two moments, or SGD's momentum buffer.
#[derive(Debug)]
pub struct Optimizer {
    pub config: OptimizerConfig,
    hyper: Hyper,
    pub groups: Vec<ParamGroup>,
    /// The learning rate of the next step, before group scales (schedules change it).
    pub lr: f64,
    /// Steps taken so far.
    pub step: i64,
    /// Per-parameter state tensors, keyed `<param>.exp_avg`, `<param>.exp_avg_sq` or `<param>.momentum_buffer`.
    pub state: HashMap<String, Tensor>,
    /// Each parameter's (lr scale, weight decay), worked out at its first update.
    per_param: HashMap<String, (f64, f64)>,
}

impl Optimizer {
    pub fn new(config: OptimizerConfig, groups: Vec<ParamGroup>) -> Result<Self> {
        let hyper = config.hyper()?;
        for (i, g) in groups.iter().enumerate() {
            g.validate(i)?;
        }
        let lr = config.lr()?;
        Ok(Optimizer {
            config: config.with_defaults()?,
            hyper,
            groups,
            lr,
            step: 0,
            state: HashMap::new(),
            per_param: HashMap::new(),
        })
    }

    /// Replaces the parameter groups from the next step on (the state of each parameter is kept).
    pub fn set_groups(&mut self, groups: Vec<ParamGroup>) -> Result<()> {
        for (i, g) in groups.iter().enumerate() {
            g.validate(i)?;
        }
        self.groups = groups;
        self.per_param.clear();
        Ok(())
    }

    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        self.lr = check("lr", lr, lr >= 0.0, "a finite number >= 0")?;
        Ok(())
    }

    fn weight_decay(&self) -> f64 {
        match self.hyper {
            Hyper::Adam(h) => h.weight_decay,
            Hyper::Sgd(h) => h.weight_decay,
        }
    }

    fn scales(&mut self, p: &Param) -> (f64, f64) {
        if let Some(s) = self.per_param.get(&p.name) {
            return *s;
        }
        let wd = self.weight_decay();
        let s = match self.groups.iter().find(|g| g.matches(p)) {
            Some(g) => (g.lr_scale.unwrap_or(1.0), g.weight_decay.unwrap_or(wd)),
            None => (1.0, wd),
        };
        self.per_param.insert(p.name.clone(), s);
        s
    }

    /// The state tensor `key` of parameter `like`, created as zeros at its first use (then `true`). The fused
    /// kernels walk parameter and state storage in step, so a state tensor laid out otherwise (the parameter's
    /// memory format changed after it was loaded) is laid out again like its parameter.
    fn state_for(&mut self, key: String, like: &Tensor) -> Result<(Tensor, bool)> {
        if let Some(t) = self.state.get(&key) {
            if t.stride() == like.stride() {
                return Ok((t.shallow_clone(), false));
            }
            let mut laid = like.f_zeros_like()?;
            laid.f_copy_(t)?;
            self.state.insert(key, laid.shallow_clone());
            return Ok((laid, false));
        }
        let t = like.f_zeros_like()?;
        self.state.insert(key, t.shallow_clone());
        Ok((t, true))
    }

    /// Applies one update from the gradients held by the trainable `params`, then zeroes those gradients. The
    /// parameters that share an update (learning-rate scale, weight decay, device and dtype, and for SGD whether
    /// their momentum buffers are new) go through the fused kernel together.
    pub fn step(&mut self, params: &mut [Param]) -> Result<()> {
        self.step += 1;
        let _guard = tch::no_grad_guard();
        let suffixes: &[&str] = match self.hyper {
            Hyper::Sgd(h) if h.momentum == 0.0 => &[],
            _ => self.state_suffixes(),
        };
        let mut batches: Vec<(UpdateKey, fused::TensorLists)> = Vec::new();
        let mut grads = Vec::new();
        for p in params.iter().filter(|p| p.trainable) {
            let grad = p.tensor.grad();
            if !grad.defined() {
                continue;
            }
            let (lr_scale, weight_decay) = self.scales(p);
            let mut state = Vec::with_capacity(suffixes.len());
            let mut fresh = false;
            for suffix in suffixes {
                let (t, new) = self.state_for(format!("{}.{suffix}", p.name), &p.tensor)?;
                fresh |= new;
                state.push(t);
            }
            let key = UpdateKey {
                lr_scale,
                weight_decay,
                // Adam's new moments are zeros like any others; SGD's new buffers take the gradient as they are.
                fresh: fresh && matches!(self.hyper, Hyper::Sgd(_)),
                kind: p.tensor.kind(),
                device: p.tensor.device(),
            };
            let lists = match batches.iter().position(|(k, _)| *k == key) {
                Some(i) => &mut batches[i].1,
                None => {
                    let lists = fused::TensorLists {
                        state: suffixes.iter().map(|_| Vec::new()).collect(),
                        ..Default::default()
                    };
                    batches.push((key, lists));
                    &mut batches.last_mut().expect("just pushed").1
                }
            };
            lists.params.push(p.tensor.shallow_clone());
            lists.grads.push(grad.shallow_clone());
            for (list, t) in lists.state.iter_mut().zip(state) {
                list.push(t);
            }
            grads.push(grad);
        }
        for (key, lists) in &batches {
            let lr = self.lr * key.lr_scale;
            match self.hyper {
                Hyper::Adam(h) => adam::update(&h, lr, key.weight_decay, self.step, lists)?,
                Hyper::Sgd(h) => sgd::update(&h, lr, key.weight_decay, lists, key.fresh)?,
            }
        }
        fused::zero(&grads)
    }

    /// The state tensor suffixes this optimizer keeps per parameter.
    pub fn state_suffixes(&self) -> &'static [&'static str] {
        match self.hyper {
            Hyper::Adam(_) => &["exp_avg", "exp_avg_sq"],
            Hyper::Sgd(_) => &["momentum_buffer"],
        }
    }
}
