//! `dropout`: zeroes activations with probability `p` while training, scaling the rest by 1/(1-p).

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::{DeclareCtx, Declared, Forward, LayerKind, Node};
use crate::error::Result;
use crate::onnx::OnnxGraph;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dropout {
    /// Probability of zeroing an activation while training, in [0, 1).
    pub p: f64,
}

impl LayerKind for Dropout {
    fn declare(&self, input: &[i64], ctx: &mut DeclareCtx) -> Result<Declared> {
        if !(0.0..1.0).contains(&self.p) {
            return Err(ctx.error(format!("dropout expects p in [0, 1), got {}", self.p)));
        }
        Ok(Declared::shape(input.to_vec()))
    }

    fn forward(&self, _node: &Node, f: &Forward, x: Tensor) -> Result<Tensor> {
        Ok(x.f_dropout(self.p, f.train)?)
    }

    /// Nothing: an exported model only infers, where dropout passes its input through.
    fn onnx(&self, _node: &Node, _g: &mut OnnxGraph, input: &str) -> Result<String> {
        Ok(input.to_owned())
    }
}
