//! `residual`: `body(x) + shortcut(x)`, the shortcut being the identity or a projection (`downsample` in
//! torchvision's ResNets), with optional stochastic depth on the body while training (torchvision's
//! `StochasticDepth(p, "row")` in EfficientNet) and an optional activation of the sum (`relu(out + identity)`
//! ending torchvision's `BasicBlock` and `Bottleneck`). Body layers are named like a PyTorch block's children:
//! `conv1`, `bn1`, `conv2`, … unless they name themselves.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::values::Activation;
use super::{DeclareCtx, Declared, Forward, Layer, LayerKind, Naming, Node};
use crate::error::Result;
use crate::onnx::OnnxGraph;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Residual {
    pub layers: Vec<Layer>,
    /// A projection for the shortcut, run like a `sequential`; the identity when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shortcut: Option<Vec<Layer>>,
    #[serde(default = "downsample")]
    pub shortcut_name: String,
    /// Stochastic depth: while training, drop the body for a whole image with this probability.
    #[serde(default)]
    pub drop_path: f64,
    /// Applied to the sum (torchvision's ResNet blocks end with `relu(out + identity)`); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<Activation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainable: Option<bool>,
}

fn downsample() -> String {
    "downsample".into()
}

impl LayerKind for Residual {
    const AUTO_NAME: Option<&'static str> = Some("res");

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn trainable(&self) -> Option<bool> {
        self.trainable
    }

    fn declare(&self, input: &[i64], ctx: &mut DeclareCtx) -> Result<Declared> {
        if self.layers.is_empty() {
            return Err(ctx.error("residual expects at least one layer in `layers`"));
        }
        if !(0.0..1.0).contains(&self.drop_path) {
            return Err(ctx.error(format!("residual expects dropPath in [0, 1), got {}", self.drop_path)));
        }
        let body = ctx.nested("layers", None, Naming::ByKind, &self.layers, input)?;
        let output = body.last().map(|n| n.output_shape.clone()).unwrap_or_default();
        let mut branches = vec![body];
        let skip = match &self.shortcut {
            Some(layers) => {
                let shortcut = ctx.nested("shortcut", Some(&self.shortcut_name), Naming::ByIndex, layers, input)?;
                let shape = shortcut.last().map(|n| n.output_shape.clone()).unwrap_or_default();
                branches.push(shortcut);
                shape
            }
            None => input.to_vec(),
        };
        if skip != output {
            return Err(ctx.error(format!(
                "residual body gives {output:?} but the shortcut gives {skip:?}; add a shortcut projection that matches"
            )));
        }
        Ok(Declared {
            output,
            branches,
            ..Declared::default()
        })
    }

    fn forward(&self, node: &Node, f: &Forward, x: Tensor) -> Result<Tensor> {
        let skip = match node.branches.get(1) {
            Some(shortcut) => f.run(shortcut, x.shallow_clone())?,
            None => x.shallow_clone(),
        };
        let mut body = f.run(&node.branches[0], x)?;
        if self.drop_path > 0.0 && f.learning(node) {
            let keep = 1.0 - self.drop_path;
            let n = body.size()[0];
            let mask = Tensor::f_empty([n, 1, 1, 1], (Kind::Float, body.device()))?
                .f_bernoulli_float_(keep)?
                .f_div_scalar(keep)?;
            body = body.f_mul(&mask.f_to_kind(body.kind())?)?;
        }
        let sum = body.f_add(&skip)?;
        match self.activation {
            Some(activation) => activation.apply(&sum),
            None => Ok(sum),
        }
    }

    /// `body + shortcut`, then the activation when there is one; stochastic depth keeps every path at inference,
    /// so it leaves no trace.
    fn onnx(&self, node: &Node, g: &mut OnnxGraph, input: &str) -> Result<String> {
        let body = g.run(&node.branches[0], input)?;
        let skip = match node.branches.get(1) {
            Some(shortcut) => g.run(shortcut, input)?,
            None => input.to_owned(),
        };
        let sum = g.op(node, "Add", &[&body, &skip], &[]);
        Ok(match self.activation {
            Some(activation) => activation.onnx(node, g, &sum),
            None => sum,
        })
    }
}
