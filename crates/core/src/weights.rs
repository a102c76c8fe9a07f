//! A network's named tensors and the precision its layers compute in: what the layers, the optimizer, the
//! collectives and the ONNX exporter read of a network, below all of them (the network itself, [`crate::Network`],
//! sits above the layers it is built from).

use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// A trainable tensor of the network.
#[derive(Debug)]
pub struct Param {
    /// PyTorch's `state_dict` key (`layer1.0.conv1.weight`).
    pub name: String,
    pub tensor: Tensor,
    /// Whether it trains now: false where the spec froze it, or while the caller freezes it (fine-tuning).
    pub trainable: bool,
    /// Frozen by the spec itself (a layer with `trainable: false`, a batch norm's `frozenScale`): never trains.
    pub fixed: bool,
    /// The type of the layer holding it (`conv2d`) and its own name there (`weight`), for parameter groups.
    pub layer: &'static str,
    pub field: String,
}

/// A saved tensor that is not trained (batch norm statistics).
#[derive(Debug)]
pub struct Buffer {
    pub name: String,
    pub tensor: Tensor,
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

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }

    /// `t` in the type this precision computes convolutions and linear layers in.
    pub fn compute(self, t: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Precision::Fp32 => t.shallow_clone(),
            Precision::Bf16 => t.f_to_kind(Kind::BFloat16)?,
        })
    }
}

/// What holds a network's parameters and buffers: [`crate::Network`]. The collectives and the ONNX exporter read
/// the tensors through it, so they need not depend on the network type, which is built from the layers above them.
pub trait NetworkTensors {
    fn params(&self) -> &[Param];
    fn buffers(&self) -> &[Buffer];
}
