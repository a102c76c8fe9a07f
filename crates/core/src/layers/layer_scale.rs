//! `layerscale`: multiplies each channel by a learned factor (Touvron et al. 2021's LayerScale, ConvNeXt's
//! `layer_scale`), held as one `[C, 1, 1]` tensor named by the layer itself (`features.1.0.layer_scale`), as
//! torchvision keeps it on the block.

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::{DeclareCtx, Declared, Forward, LayerKind, Node, TensorDecl, TensorInit};
use crate::error::Result;
use crate::onnx::OnnxGraph;

fn default_init() -> f64 {
    1e-6
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Layerscale {
    /// Every factor's starting value.
    #[serde(default = "default_init")]
    pub init: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainable: Option<bool>,
}

impl LayerKind for Layerscale {
    const AUTO_NAME: Option<&'static str> = Some("layer_scale");

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn trainable(&self) -> Option<bool> {
        self.trainable
    }

    fn declare(&self, input: &[i64], ctx: &mut DeclareCtx) -> Result<Declared> {
        let [c, _, _] = ctx.spatial(input)?;
        if !self.init.is_finite() {
            return Err(ctx.error(format!("layerscale expects a finite init, got {}", self.init)));
        }
        Ok(Declared {
            output: input.to_vec(),
            // An empty field: the tensor's key is the layer's own path.
            params: vec![TensorDecl::float("", vec![c, 1, 1], TensorInit::Constant(self.init))],
            ..Declared::default()
        })
    }

    fn forward(&self, node: &Node, f: &Forward, x: Tensor) -> Result<Tensor> {
        Ok(f.param(node, 0).f_mul(&x)?)
    }

    fn onnx(&self, node: &Node, g: &mut OnnxGraph, input: &str) -> Result<String> {
        let scale = g.param(node, 0)?;
        Ok(g.op(node, "Mul", &[&scale, input], &[]))
    }
}
