//! `linear`: a fully connected layer over a flat input, with or without bias; with `channels`, the same layer at
//! each position of a `[C, H, W]` input over its channels (ConvNeXt's `Linear` between permutes: a 1×1 convolution
//! with linear's `[out, in]` weight).

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::conv::default_bound;
use super::values::{yes, WeightInit};
use super::{over_channels, DeclareCtx, Declared, Forward, LayerKind, Node, TensorDecl, TensorInit};
use crate::error::Result;
use crate::onnx::{Attr, OnnxGraph};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Linear {
    pub out_features: i64,
    #[serde(default = "yes")]
    pub bias: bool,
    #[serde(default)]
    pub init: WeightInit,
    /// Over the channels of a `[C, H, W]` input, at each position, instead of over a flat input.
    #[serde(default)]
    pub channels: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainable: Option<bool>,
}

impl Linear {
    pub fn new(out_features: i64) -> Self {
        Linear {
            out_features,
            bias: true,
            init: WeightInit::Default,
            channels: false,
            name: None,
            trainable: None,
        }
    }
}

impl LayerKind for Linear {
    const AUTO_NAME: Option<&'static str> = Some("fc");

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn trainable(&self) -> Option<bool> {
        self.trainable
    }

    fn declare(&self, input: &[i64], ctx: &mut DeclareCtx) -> Result<Declared> {
        let (features, output) = match (input, self.channels) {
            ([f], false) => (*f, vec![self.out_features]),
            ([c, h, w], true) => (*c, vec![self.out_features, *h, *w]),
            (other, false) => {
                return Err(ctx.error(format!(
                    "linear expects a flat input, got {other:?}; add {{\"type\": \"flatten\"}} before it"
                )))
            }
            (other, true) => {
                return Err(ctx.error(format!("linear with channels expects a [C, H, W] input, got {other:?}")))
            }
        };
        if self.out_features <= 0 {
            return Err(ctx.error("linear expects outFeatures > 0"));
        }
        if self.init == WeightInit::Dirac {
            return Err(
                ctx.error("linear init 'dirac' is for convolutions; expected 'default', 'kaimingNormal', 'normal', 'truncNormal', 'uniformOut' or 'zeros'")
            );
        }
        let bound = default_bound(features);
        let (weight, bias) = match self.init {
            WeightInit::Default | WeightInit::Dirac => (TensorInit::Uniform(bound), TensorInit::Uniform(bound)),
            WeightInit::KaimingNormal => (
                TensorInit::Normal((2.0 / self.out_features as f64).sqrt()),
                TensorInit::Zeros,
            ),
            WeightInit::Zeros => (TensorInit::Zeros, TensorInit::Zeros),
            WeightInit::Normal => (TensorInit::Normal(0.01), TensorInit::Zeros),
            WeightInit::TruncNormal => (TensorInit::Normal(0.02), TensorInit::Zeros),
            WeightInit::UniformOut => (TensorInit::Uniform(default_bound(self.out_features)), TensorInit::Zeros),
        };
        let mut params = vec![TensorDecl::float("weight", vec![self.out_features, features], weight)];
        if self.bias {
            params.push(TensorDecl::float("bias", vec![self.out_features], bias));
        }
        Ok(Declared {
            output,
            params,
            ..Declared::default()
        })
    }

    fn forward(&self, node: &Node, f: &Forward, x: Tensor) -> Result<Tensor> {
        let weight = f.low(f.param(node, 0))?;
        let bias = if self.bias {
            Some(f.low(f.param(node, 1))?)
        } else {
            None
        };
        if !self.channels {
            return Ok(f.low(&x)?.f_linear(&weight, bias.as_ref())?);
        }
        over_channels(&f.low(&x)?, |nhwc| Ok(nhwc.f_linear(&weight, bias.as_ref())?))
    }

    /// Gemm with the weight transposed, as PyTorch keeps it `[out, in]`; over channels, a MatMul on the input
    /// transposed to NHWC with the weight transposed, the bias added, transposed back.
    fn onnx(&self, node: &Node, g: &mut OnnxGraph, input: &str) -> Result<String> {
        let weight = g.param(node, 0)?;
        let bias = if self.bias { Some(g.param(node, 1)?) } else { None };
        if self.channels {
            return g.over_channels(node, input, |g, nhwc| {
                let transposed = g.op(node, "Transpose", &[&weight], &[("perm", Attr::Ints(vec![1, 0]))]);
                let y = g.op(node, "MatMul", &[nhwc, &transposed], &[]);
                Ok(match &bias {
                    Some(b) => g.op(node, "Add", &[&y, b], &[]),
                    None => y,
                })
            });
        }
        let mut inputs = vec![input, weight.as_str()];
        inputs.extend(bias.as_deref());
        Ok(g.op(node, "Gemm", &inputs, &[("transB", Attr::Int(1))]))
    }
}
