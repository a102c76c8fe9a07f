//! `se`: squeeze-and-excitation channel gating, torchvision's `SqueezeExcitation`: global average pool, a 1×1
//! conv down to `squeezeChannels` (`fc1`), an activation, a 1×1 conv back (`fc2`), a gate, then the input scaled
//! channel by channel.

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::conv::default_bound;
use super::values::{Activation, WeightInit};
use super::{DeclareCtx, Declared, Forward, LayerKind, Node, TensorDecl, TensorInit};
use crate::error::Result;
use crate::onnx::OnnxGraph;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Se {
    pub squeeze_channels: i64,
    #[serde(default = "relu")]
    pub activation: Activation,
    #[serde(default = "sigmoid")]
    pub gate: Activation,
    /// How `fc1` and `fc2` start: PyTorch's default, or torchvision's `kaimingNormal` (fan-out, zero biases).
    #[serde(default)]
    pub init: WeightInit,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainable: Option<bool>,
}

fn relu() -> Activation {
    Activation::Relu
}
fn sigmoid() -> Activation {
    Activation::Sigmoid
}

impl LayerKind for Se {
    const AUTO_NAME: Option<&'static str> = Some("se");

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn trainable(&self) -> Option<bool> {
        self.trainable
    }

    fn declare(&self, input: &[i64], ctx: &mut DeclareCtx) -> Result<Declared> {
        let [c, _, _] = ctx.spatial(input)?;
        let s = self.squeeze_channels;
        if s <= 0 {
            return Err(ctx.error("se expects squeezeChannels > 0"));
        }
        // fc1 maps c → s, fc2 s → c: each a 1×1 conv, initialized as one.
        let inits = |fan_in: i64, fan_out: i64| match self.init {
            WeightInit::KaimingNormal => Ok((TensorInit::Normal((2.0 / fan_out as f64).sqrt()), TensorInit::Zeros)),
            WeightInit::Default => Ok((
                TensorInit::Uniform(default_bound(fan_in)),
                TensorInit::Uniform(default_bound(fan_in)),
            )),
            other => Err(ctx.error(format!("se init {other:?}: expected 'default' or 'kaimingNormal'"))),
        };
        let (w1, b1) = inits(c, s)?;
        let (w2, b2) = inits(s, c)?;
        Ok(Declared {
            output: input.to_vec(),
            params: vec![
                TensorDecl::float("fc1.weight", vec![s, c, 1, 1], w1),
                TensorDecl::float("fc1.bias", vec![s], b1),
                TensorDecl::float("fc2.weight", vec![c, s, 1, 1], w2),
                TensorDecl::float("fc2.bias", vec![c], b2),
            ],
            ..Declared::default()
        })
    }

    fn forward(&self, node: &Node, f: &Forward, x: Tensor) -> Result<Tensor> {
        let conv = |t: &Tensor, w: usize| -> Result<Tensor> {
            let (weight, bias) = (f.low(f.param(node, w))?, f.low(f.param(node, w + 1))?);
            Ok(f.low(t)?.f_conv2d(&weight, Some(&bias), [1, 1], [0, 0], [1, 1], 1)?)
        };
        let squeezed = x.f_mean_dim(&[-2i64, -1][..], true, None)?;
        let hidden = self.activation.apply(&conv(&squeezed, 0)?)?;
        let gate = self.gate.apply(&conv(&hidden, 2)?)?;
        Ok(x.f_mul(&gate)?)
    }

    fn onnx(&self, node: &Node, g: &mut OnnxGraph, input: &str) -> Result<String> {
        let squeezed = g.op(node, "GlobalAveragePool", &[input], &[]);
        let conv = |g: &mut OnnxGraph, x: &str, w: usize| -> Result<String> {
            let (weight, bias) = (g.param(node, w)?, g.param(node, w + 1)?);
            Ok(g.op(node, "Conv", &[x, &weight, &bias], &[]))
        };
        let down = conv(g, &squeezed, 0)?;
        let hidden = self.activation.onnx(node, g, &down);
        let up = conv(g, &hidden, 2)?;
        let gate = self.gate.onnx(node, g, &up);
        Ok(g.op(node, "Mul", &[input, &gate], &[]))
    }
}
