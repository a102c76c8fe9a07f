//! `sequential`: layers run in order under one name, children named by position (`0`, `1`, …) unless they
//! name themselves, as in PyTorch's `nn.Sequential` (`features.3.0.weight`).

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::{DeclareCtx, Declared, Forward, Layer, LayerKind, Naming, Node};
use crate::error::Result;
use crate::onnx::OnnxGraph;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sequential {
    pub layers: Vec<Layer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainable: Option<bool>,
}

impl LayerKind for Sequential {
    const AUTO_NAME: Option<&'static str> = Some("seq");

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn trainable(&self) -> Option<bool> {
        self.trainable
    }

    fn declare(&self, input: &[i64], ctx: &mut DeclareCtx) -> Result<Declared> {
        if self.layers.is_empty() {
            return Err(ctx.error("sequential expects at least one layer in `layers`"));
        }
        let children = ctx.nested("layers", None, Naming::ByIndex, &self.layers, input)?;
        let output = children.last().map(|n| n.output_shape.clone()).unwrap_or_default();
        Ok(Declared {
            output,
            branches: vec![children],
            ..Declared::default()
        })
    }

    fn forward(&self, node: &Node, f: &Forward, x: Tensor) -> Result<Tensor> {
        f.run(&node.branches[0], x)
    }

    fn onnx(&self, node: &Node, g: &mut OnnxGraph, input: &str) -> Result<String> {
        g.run(&node.branches[0], input)
    }
}
