//! A CNN built from a [`ModelSpec`]: named parameters with PyTorch's layout and initialization, and its forward pass.

use std::collections::HashMap;

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::spec::{Layer, ModelSpec, ResolvedLayer};

/// A network's weights and buffers on one device. Tensor names match PyTorch's `state_dict`
/// keys (`conv1.weight`, `fc2.bias`, `bn1.running_mean`), so checkpoints move between the two.
#[derive(Debug)]
pub struct Network {
    pub spec: ModelSpec,
    pub layers: Vec<ResolvedLayer>,
    pub device: Device,
    /// Trainable tensors, in layer order.
    pub params: Vec<(String, Tensor)>,
    /// Saved but not trained (batch norm statistics).
    pub buffers: Vec<(String, Tensor)>,
    /// Whether activations run in channels_last memory order, which oneDNN convolves faster on CPU.
    pub channels_last: bool,
    /// The type convolutions and linear layers compute in.
    pub precision: Precision,
}

/// What PyTorch's autocast does for this network's layers, written out: with `Bf16`, convolutions and
/// linear layers take bfloat16 copies of their input and weights (the fp32 weights stay the ones trained),
/// the layers between them run in whatever type they receive, and the logits come back as fp32, so the
/// loss and softmax run in full precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    Fp32,
    Bf16,
}

impl Precision {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "fp32" => Ok(Precision::Fp32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(Error::option("precision", "fp32 or bf16", other)),
        }
    }

    /// `t` in the type this precision computes convolutions and linear layers in.
    fn compute(self, t: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Precision::Fp32 => t.shallow_clone(),
            Precision::Bf16 => t.f_to_kind(Kind::BFloat16)?,
        })
    }
}

/// Lays a 4-d tensor out as NHWC in memory while keeping its NCHW shape: libtorch reads the strides
/// and picks its channels_last kernels.
pub fn to_channels_last(x: &Tensor) -> Result<Tensor> {
    Ok(x.f_permute([0, 2, 3, 1])?.f_contiguous()?.f_permute([0, 3, 1, 2])?)
}

impl Network {
    /// Builds the network with PyTorch's default initialization: weights and biases of conv and linear
    /// layers uniform in ±1/sqrt(fan_in); batch norm weight 1, bias 0.
    pub fn new(spec: ModelSpec, device: Device) -> Result<Self> {
        let layers = spec.resolve()?;
        let mut params = Vec::new();
        let mut buffers = Vec::new();
        for layer in &layers {
            let Some(prefix) = &layer.name else { continue };
            for (field, shape) in &layer.params {
                let mut t = Tensor::f_empty(shape.as_slice(), (Kind::Float, device))?;
                match layer.layer {
                    Layer::Batchnorm2d { .. } => {
                        let _ = if field == "weight" {
                            t.f_fill_(1.0)?
                        } else {
                            t.f_zero_()?
                        };
                    }
                    _ => {
                        let fan_in: i64 = layer.params[0].1[1..].iter().product();
                        let bound = 1.0 / (fan_in as f64).sqrt();
                        let _ = t.f_uniform_(-bound, bound)?;
                    }
                }
                params.push((format!("{prefix}.{field}"), t.f_set_requires_grad(true)?));
            }
            for (field, shape) in &layer.buffers {
                let t = match field.as_str() {
                    "running_var" => Tensor::f_ones(shape.as_slice(), (Kind::Float, device))?,
                    "num_batches_tracked" => Tensor::f_zeros(shape.as_slice(), (Kind::Int64, device))?,
                    _ => Tensor::f_zeros(shape.as_slice(), (Kind::Float, device))?,
                };
                buffers.push((format!("{prefix}.{field}"), t));
            }
        }
        Ok(Network {
            spec,
            layers,
            device,
            params,
            buffers,
            channels_last: false,
            precision: Precision::Fp32,
        })
    }

    pub fn classes(&self) -> i64 {
        self.layers.last().map(|l| l.output_shape[0]).unwrap_or(0)
    }

    pub fn param_count(&self) -> i64 {
        self.layers.iter().map(ResolvedLayer::param_count).sum()
    }

    fn param(&self, name: &str) -> &Tensor {
        // Names come from the resolved spec that built `params`, so a miss is a bug, not bad input.
        &self
            .params
            .iter()
            .find(|(n, _)| n == name)
            .expect("parameter built from the spec")
            .1
    }

    fn buffer(&self, name: &str) -> &Tensor {
        &self
            .buffers
            .iter()
            .find(|(n, _)| n == name)
            .expect("buffer built from the spec")
            .1
    }

    /// Switches the memory order of the conv weights (and so of the activations) to channels_last or back.
    pub fn set_channels_last(&mut self, on: bool) -> Result<()> {
        if on == self.channels_last {
            return Ok(());
        }
        tch::no_grad(|| -> Result<()> {
            for (_, p) in self.params.iter_mut().filter(|(_, p)| p.dim() == 4) {
                let relaid = if on { to_channels_last(p)? } else { p.f_contiguous()? };
                *p = relaid.f_detach()?.f_set_requires_grad(true)?;
            }
            Ok(())
        })?;
        self.channels_last = on;
        Ok(())
    }

    /// Runs the network on a float batch `[N, C, H, W]`; `train` turns on dropout and batch statistics.
    pub fn forward_t(&self, input: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = if self.channels_last {
            to_channels_last(input)?
        } else {
            input.shallow_clone()
        };
        let low = |t: &Tensor| self.precision.compute(t);
        for layer in &self.layers {
            let name = layer.name.as_deref().unwrap_or_default();
            let p = |field: &str| self.param(&format!("{name}.{field}"));
            x = match &layer.layer {
                Layer::Conv2d { stride, padding, .. } => low(&x)?.f_conv2d(
                    &low(p("weight"))?,
                    Some(low(p("bias"))?),
                    [*stride, *stride],
                    [*padding, *padding],
                    [1, 1],
                    1,
                )?,
                Layer::Relu => x.f_relu()?,
                Layer::Maxpool2d { kernel_size, stride } => {
                    let s = stride.unwrap_or(*kernel_size);
                    x.f_max_pool2d([*kernel_size, *kernel_size], [s, s], [0, 0], [1, 1], false)?
                }
                Layer::Flatten => x.f_flatten(1, -1)?,
                Layer::Linear { .. } => low(&x)?.f_linear(&low(p("weight"))?, Some(low(p("bias"))?))?,
                Layer::Dropout { p: rate } => x.f_dropout(*rate, train)?,
                Layer::Batchnorm2d { eps, momentum, .. } => {
                    let b = |field: &str| self.buffer(&format!("{name}.{field}"));
                    if train {
                        let mut tracked = b("num_batches_tracked").shallow_clone();
                        let _ = tracked.f_add_scalar_(1)?;
                    }
                    Tensor::f_batch_norm(
                        &x,
                        Some(p("weight")),
                        Some(p("bias")),
                        Some(b("running_mean")),
                        Some(b("running_var")),
                        train,
                        *momentum,
                        *eps,
                        true,
                    )?
                }
            };
        }
        // A no-op in fp32; bf16 logits come back as fp32 for the loss and softmax.
        Ok(x.f_to_kind(Kind::Float)?)
    }

    /// Every saved tensor by name, parameters then buffers.
    pub fn named_tensors(&self) -> impl Iterator<Item = &(String, Tensor)> {
        self.params.iter().chain(self.buffers.iter())
    }

    /// Copies tensors into the network, checking that every name is present with the right shape.
    /// `source` names where they came from, for the error message.
    pub fn load_tensors(&mut self, mut tensors: HashMap<String, Tensor>, source: &std::path::Path) -> Result<()> {
        let mismatch = |reason: String| Error::CheckpointMismatch {
            path: source.to_owned(),
            reason,
        };
        let expected: Vec<String> = self.named_tensors().map(|(n, _)| n.clone()).collect();
        let unexpected: Vec<&String> = tensors.keys().filter(|k| !expected.contains(k)).collect();
        if !unexpected.is_empty() {
            return Err(mismatch(format!(
                "unexpected tensor(s) {unexpected:?}; the model has {expected:?}"
            )));
        }
        tch::no_grad(|| -> Result<()> {
            for (name, target) in self.params.iter_mut().chain(self.buffers.iter_mut()) {
                let src = tensors
                    .remove(name.as_str())
                    .ok_or_else(|| mismatch(format!("tensor {name:?} is missing")))?;
                if src.size() != target.size() {
                    return Err(mismatch(format!(
                        "tensor {name:?} has shape {:?}, the model expects {:?}",
                        src.size(),
                        target.size()
                    )));
                }
                if src.kind() != target.kind() {
                    return Err(mismatch(format!(
                        "tensor {name:?} has dtype {:?}, the model expects {:?}",
                        src.kind(),
                        target.kind()
                    )));
                }
                target.f_copy_(&src)?;
            }
            Ok(())
        })
    }
}
