//! Layers that only reshape or pass through: `flatten` (`[C, H, W]` to `[C·H·W]`, needed before a linear
//! layer) and `identity`.

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::{DeclareCtx, Declared, Forward, LayerKind, Node};
use crate::error::Result;
use crate::onnx::{Attr, OnnxGraph};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flatten {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {}

impl LayerKind for Flatten {
    fn declare(&self, input: &[i64], _ctx: &mut DeclareCtx) -> Result<Declared> {
        Ok(Declared::shape(vec![input.iter().product()]))
    }

    fn forward(&self, _node: &Node, _f: &Forward, x: Tensor) -> Result<Tensor> {
        Ok(x.f_flatten(1, -1)?)
    }

    fn onnx(&self, node: &Node, g: &mut OnnxGraph, input: &str) -> Result<String> {
        Ok(g.op(node, "Flatten", &[input], &[("axis", Attr::Int(1))]))
    }
}

impl LayerKind for Identity {
    fn declare(&self, input: &[i64], _ctx: &mut DeclareCtx) -> Result<Declared> {
        Ok(Declared::shape(input.to_vec()))
    }

    fn forward(&self, _node: &Node, _f: &Forward, x: Tensor) -> Result<Tensor> {
        Ok(x)
    }

    /// Nothing: the next layer reads the input itself.
    fn onnx(&self, _node: &Node, _g: &mut OnnxGraph, input: &str) -> Result<String> {
        Ok(input.to_owned())
    }
}
