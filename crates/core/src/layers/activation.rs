//! Elementwise nonlinearities without parameters: `relu`, `relu6`, `gelu`, `silu`, `hardswish`, `hardsigmoid`,
//! `sigmoid`. Each is its own layer type; [`activation!`] declares them alike.

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::values::Activation;
use super::{DeclareCtx, Declared, Forward, LayerKind, Node};
use crate::error::Result;
use crate::onnx::OnnxGraph;

macro_rules! activation {
    ($($(#[$doc:meta])* $name:ident => $which:expr;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {}

        impl LayerKind for $name {
            fn declare(&self, input: &[i64], _ctx: &mut DeclareCtx) -> Result<Declared> {
                Ok(Declared::shape(input.to_vec()))
            }

            fn forward(&self, _node: &Node, _f: &Forward, x: Tensor) -> Result<Tensor> {
                $which.apply(&x)
            }

            fn onnx(&self, node: &Node, g: &mut OnnxGraph, input: &str) -> Result<String> {
                Ok($which.onnx(node, g, input))
            }
        }
    )*};
}

activation! {
    /// `max(0, x)`.
    Relu => Activation::Relu;
    /// `min(max(0, x), 6)`.
    Relu6 => Activation::Relu6;
    /// The exact (erf) GELU; ONNX export writes it out in opset 17 terms.
    Gelu => Activation::Gelu;
    /// `x · sigmoid(x)`, also called swish.
    Silu => Activation::Silu;
    /// `x · relu6(x + 3) / 6`.
    Hardswish => Activation::Hardswish;
    /// `relu6(x + 3) / 6`.
    Hardsigmoid => Activation::Hardsigmoid;
    Sigmoid => Activation::Sigmoid;
}
