//! Weight averaging: an exponential moving average of the weights (EMA), or Lookahead, which every k steps
//! pulls a slow copy toward the fast weights and resets the fast weights to it. Both follow batch norm's
//! running statistics too, as airbench's and timm's do.

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::error::{Error, Result};
use crate::model::Network;
use crate::optimizer::fused;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AveragingMode {
    /// `avg ← decay·avg + (1-decay)·w` every `every` steps; the averaged weights are used for evaluation.
    Ema,
    /// `slow ← decay·slow + (1-decay)·w; w ← slow` every `every` steps.
    Lookahead,
}

/// How `decay` changes as training goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecayWarmup {
    /// The same decay throughout.
    #[default]
    None,
    /// `decay × (step / totalSteps)³`: weak averaging early, full strength at the end (airbench's Lookahead).
    Cubic,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AveragingConfig {
    pub mode: AveragingMode,
    pub decay: f64,
    pub every: i64,
    pub warmup: DecayWarmup,
    /// Needed by the cubic warmup.
    pub total_steps: i64,
}

impl AveragingConfig {
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.decay) {
            return Err(Error::option("averaging.decay", "a number in [0, 1]", self.decay));
        }
        if self.every < 1 {
            return Err(Error::option("averaging.every", "an integer >= 1", self.every));
        }
        if self.warmup == DecayWarmup::Cubic && self.total_steps < 1 {
            return Err(Error::option(
                "averaging.totalSteps",
                "an integer >= 1 with the cubic warmup",
                self.total_steps,
            ));
        }
        Ok(())
    }

    fn decay_at(&self, step: i64) -> f64 {
        match self.warmup {
            DecayWarmup::None => self.decay,
            DecayWarmup::Cubic => self.decay * (step.min(self.total_steps) as f64 / self.total_steps as f64).powi(3),
        }
    }
}

/// The averaged copy of a network's floating tensors (parameters, then floating buffers).
#[derive(Debug)]
pub struct Averager {
    pub config: AveragingConfig,
    pub average: Vec<Tensor>,
}

fn float_tensors(net: &mut Network) -> Vec<&mut Tensor> {
    net.params
        .iter_mut()
        .map(|p| &mut p.tensor)
        .chain(
            net.buffers
                .iter_mut()
                .map(|b| &mut b.tensor)
                .filter(|t| t.is_floating_point()),
        )
        .collect()
}

impl Averager {
    pub fn new(config: AveragingConfig, net: &mut Network) -> Result<Self> {
        config.validate()?;
        let average = tch::no_grad(|| -> Result<Vec<Tensor>> {
            float_tensors(net)
                .into_iter()
                .map(|t| Ok(t.f_detach()?.f_zeros_like()?.f_add(t)?))
                .collect()
        })?;
        Ok(Averager { config, average })
    }

    /// Called after optimizer step `step` (1-based).
    pub fn after_step(&mut self, net: &mut Network, step: i64) -> Result<()> {
        if step % self.config.every != 0 {
            return Ok(());
        }
        let decay = self.config.decay_at(step);
        let lookahead = self.config.mode == AveragingMode::Lookahead;
        let _guard = tch::no_grad_guard();
        fused::lerp(&self.average, &float_tensors(net), 1.0 - decay, lookahead)
    }

    /// Exchanges the network's weights with the averaged ones (call again to swap back).
    pub fn swap(&mut self, net: &mut Network) -> Result<()> {
        let _guard = tch::no_grad_guard();
        for (avg, t) in self.average.iter_mut().zip(float_tensors(net)) {
            let held = t.f_detach()?.f_zeros_like()?.f_add(t)?;
            t.f_copy_(avg)?;
            avg.f_copy_(&held)?;
        }
        Ok(())
    }

    /// Copies the averaged weights into the network for good (the end of training).
    pub fn copy_in(&self, net: &mut Network) -> Result<()> {
        let _guard = tch::no_grad_guard();
        for (avg, t) in self.average.iter().zip(float_tensors(net)) {
            t.f_copy_(avg)?;
        }
        Ok(())
    }
}
