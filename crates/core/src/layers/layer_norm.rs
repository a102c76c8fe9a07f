//! `layernorm2d`: layer normalization over the channels at each position of a `[C, H, W]` input, with a learned
//! scale and shift per channel, as torchvision's `LayerNorm2d` (and ConvNeXt's `LayerNorm` between permutes).

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::{over_channels, DeclareCtx, Declared, Forward, LayerKind, Node, TensorDecl, TensorInit};
use crate::error::Result;
use crate::onnx::{Attr, OnnxGraph};

fn default_eps() -> f64 {
    1e-5
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Layernorm2d {
    #[serde(default = "default_eps")]
    pub eps: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainable: Option<bool>,
}

impl LayerKind for Layernorm2d {
    const AUTO_NAME: Option<&'static str> = Some("norm");

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn trainable(&self) -> Option<bool> {
        self.trainable
    }

    fn declare(&self, input: &[i64], ctx: &mut DeclareCtx) -> Result<Declared> {
        let [c, _, _] = ctx.spatial(input)?;
        if self.eps.is_nan() || self.eps <= 0.0 {
            return Err(ctx.error("layernorm2d expects eps > 0"));
        }
        Ok(Declared {
            output: input.to_vec(),
            params: vec![
                TensorDecl::float("weight", vec![c], TensorInit::Ones),
                TensorDecl::float("bias", vec![c], TensorInit::Zeros),
            ],
            ..Declared::default()
        })
    }

    fn forward(&self, node: &Node, f: &Forward, x: Tensor) -> Result<Tensor> {
        // In the parameters' type (float32 under bf16, as autocast runs layer_norm).
        let (weight, bias) = (f.param(node, 0), f.param(node, 1));
        let c = node.input_shape[0];
        over_channels(&x.f_to_kind(weight.kind())?, |nhwc| {
            Ok(nhwc.f_layer_norm([c], Some(weight), Some(bias), self.eps, true)?)
        })
    }

    /// LayerNormalization over the last axis of the input transposed to NHWC, then transposed back.
    fn onnx(&self, node: &Node, g: &mut OnnxGraph, input: &str) -> Result<String> {
        let (scale, shift) = (g.param(node, 0)?, g.param(node, 1)?);
        let attrs = [("axis", Attr::Int(-1)), ("epsilon", Attr::Float(self.eps as f32))];
        g.over_channels(node, input, |g, nhwc| {
            Ok(g.op(node, "LayerNormalization", &[nhwc, &scale, &shift], &attrs))
        })
    }
}
