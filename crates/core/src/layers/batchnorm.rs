//! `batchnorm2d`: batch normalization over channels, with running statistics saved as buffers. A frozen layer
//! (not trainable, by the spec or by fine-tuning) normalizes with its running statistics and leaves them as
//! they are, as a frozen PyTorch BatchNorm in eval mode does.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::values::yes;
use super::{DeclareCtx, Declared, Forward, LayerKind, Node, TensorDecl, TensorInit};
use crate::error::Result;
use crate::onnx::{Attr, OnnxGraph};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Batchnorm2d {
    #[serde(default = "eps")]
    pub eps: f64,
    #[serde(default = "momentum")]
    pub momentum: f64,
    /// Learnable scale and shift (`weight`, `bias`).
    #[serde(default = "yes")]
    pub affine: bool,
    /// Keep the scale at its value (1 unless loaded) while the shift trains, as airbench does.
    #[serde(default)]
    pub frozen_scale: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainable: Option<bool>,
}

fn eps() -> f64 {
    1e-5
}
fn momentum() -> f64 {
    0.1
}

impl Default for Batchnorm2d {
    fn default() -> Self {
        Batchnorm2d {
            eps: eps(),
            momentum: momentum(),
            affine: true,
            frozen_scale: false,
            name: None,
            trainable: None,
        }
    }
}

impl LayerKind for Batchnorm2d {
    const AUTO_NAME: Option<&'static str> = Some("bn");

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn trainable(&self) -> Option<bool> {
        self.trainable
    }

    fn declare(&self, input: &[i64], ctx: &mut DeclareCtx) -> Result<Declared> {
        let [c, _, _] = ctx.spatial(input)?;
        if self.eps.is_nan() || self.eps <= 0.0 || !(0.0..=1.0).contains(&self.momentum) {
            return Err(ctx.error("batchnorm2d expects eps > 0 and momentum in [0, 1]"));
        }
        let params = if self.affine {
            let mut scale = TensorDecl::float("weight", vec![c], TensorInit::Ones);
            scale.frozen = self.frozen_scale;
            vec![scale, TensorDecl::float("bias", vec![c], TensorInit::Zeros)]
        } else {
            vec![]
        };
        let buffers = vec![
            TensorDecl::float("running_mean", vec![c], TensorInit::Zeros),
            TensorDecl::float("running_var", vec![c], TensorInit::Ones),
            TensorDecl {
                field: "num_batches_tracked".into(),
                shape: vec![],
                init: TensorInit::Zeros,
                kind: Kind::Int64,
                frozen: false,
            },
        ];
        Ok(Declared {
            output: input.to_vec(),
            params,
            buffers,
            ..Declared::default()
        })
    }

    fn forward(&self, node: &Node, f: &Forward, x: Tensor) -> Result<Tensor> {
        // Without affine parameters, a batch norm follows the pass (it has nothing to freeze).
        let batch_stats = !f.frozen_batchnorm_statistics
            && if self.affine {
                f.learning(node)
            } else {
                f.train && node.trainable
            };
        if batch_stats {
            let mut tracked = f.buffer(node, 2).shallow_clone();
            let _ = tch::no_grad(|| tracked.f_add_scalar_(1))?;
        }
        let (weight, bias) = if self.affine {
            (Some(f.param(node, 0)), Some(f.param(node, 1)))
        } else {
            (None, None)
        };
        if let (true, Some(group)) = (batch_stats, f.sync_batchnorm) {
            return group.sync_batch_norm(
                &x,
                weight,
                bias,
                f.buffer(node, 0),
                f.buffer(node, 1),
                self.momentum,
                self.eps,
            );
        }
        // Under bf16 the input may be bfloat16; libtorch normalizes it with the fp32 statistics and parameters.
        Ok(Tensor::f_batch_norm(
            &x,
            weight,
            bias,
            Some(f.buffer(node, 0)),
            Some(f.buffer(node, 1)),
            batch_stats,
            self.momentum,
            self.eps,
            true,
        )?)
    }

    /// BatchNormalization in inference mode, on the running statistics; without affine parameters, a scale of
    /// ones and a shift of zeros stand in for them.
    fn onnx(&self, node: &Node, g: &mut OnnxGraph, input: &str) -> Result<String> {
        let (scale, shift) = if self.affine {
            (g.param(node, 0)?, g.param(node, 1)?)
        } else {
            let c = node.input_shape[0];
            (
                g.constant(&format!("{}.weight", node.path), &[c], &vec![1.0; c as usize]),
                g.constant(&format!("{}.bias", node.path), &[c], &vec![0.0; c as usize]),
            )
        };
        let (mean, var) = (g.buffer(node, 0)?, g.buffer(node, 1)?);
        Ok(g.op(
            node,
            "BatchNormalization",
            &[input, &scale, &shift, &mean, &var],
            &[("epsilon", Attr::Float(self.eps as f32))],
        ))
    }
}
