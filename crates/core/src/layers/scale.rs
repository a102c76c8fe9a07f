//! `scale`: multiplies by a constant (airbench's final `× 1/9`, ResNet-9's `× 0.125`).

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::{DeclareCtx, Declared, Forward, LayerKind, Node};
use crate::error::Result;
use crate::onnx::OnnxGraph;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    pub factor: f64,
}

impl LayerKind for Scale {
    fn declare(&self, input: &[i64], ctx: &mut DeclareCtx) -> Result<Declared> {
        if !self.factor.is_finite() {
            return Err(ctx.error(format!("scale expects a finite factor, got {}", self.factor)));
        }
        Ok(Declared::shape(input.to_vec()))
    }

    fn forward(&self, _node: &Node, _f: &Forward, x: Tensor) -> Result<Tensor> {
        Ok(x.f_mul_scalar(self.factor)?)
    }

    fn onnx(&self, node: &Node, g: &mut OnnxGraph, input: &str) -> Result<String> {
        let factor = g.scalar(self.factor as f32);
        Ok(g.op(node, "Mul", &[input, &factor], &[]))
    }
}
