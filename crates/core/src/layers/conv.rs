//! `conv2d`: a 2-d convolution with stride, padding (numbers, `same` or TensorFlow's `tf-same`), dilation,
//! groups (depthwise when groups equal the channels) and an optional bias.

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::values::{pads, yes, Padding, PaddingMode, Size2, WeightInit};
use super::{DeclareCtx, Declared, Forward, LayerKind, Node, TensorDecl, TensorInit};
use crate::error::Result;
use crate::onnx::{Attr, OnnxGraph};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Conv2d {
    pub out_channels: i64,
    pub kernel_size: Size2,
    #[serde(default = "one")]
    pub stride: Size2,
    #[serde(default)]
    pub padding: Padding,
    #[serde(default = "one")]
    pub dilation: Size2,
    #[serde(default = "groups")]
    pub groups: i64,
    #[serde(default = "yes")]
    pub bias: bool,
    #[serde(default)]
    pub init: WeightInit,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainable: Option<bool>,
}

fn one() -> Size2 {
    Size2::Square(1)
}
fn groups() -> i64 {
    1
}

impl Conv2d {
    /// A plain convolution: stride 1, no padding, bias, PyTorch's initialization.
    pub fn new(out_channels: i64, kernel_size: i64) -> Self {
        Conv2d {
            out_channels,
            kernel_size: kernel_size.into(),
            stride: one(),
            padding: Padding::default(),
            dilation: one(),
            groups: 1,
            bias: true,
            init: WeightInit::Default,
            name: None,
            trainable: None,
        }
    }

    pub fn padding(mut self, padding: i64) -> Self {
        self.padding = Padding::Size(padding.into());
        self
    }
}

/// PyTorch's default bound for conv and linear weights and biases: 1/sqrt(fan_in).
pub(crate) fn default_bound(fan_in: i64) -> f64 {
    1.0 / (fan_in.max(1) as f64).sqrt()
}

impl LayerKind for Conv2d {
    const AUTO_NAME: Option<&'static str> = Some("conv");

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn trainable(&self) -> Option<bool> {
        self.trainable
    }

    fn declare(&self, input: &[i64], ctx: &mut DeclareCtx) -> Result<Declared> {
        let [c, h, w] = ctx.spatial(input)?;
        let (kernel, stride, dilation) = (self.kernel_size.pair(), self.stride.pair(), self.dilation.pair());
        if self.out_channels <= 0
            || !self.kernel_size.all_positive()
            || !self.stride.all_positive()
            || !self.dilation.all_positive()
        {
            return Err(ctx.error("conv2d expects outChannels, kernelSize, stride and dilation > 0"));
        }
        if let Padding::Size(p) = self.padding {
            if p.pair().iter().any(|&d| d < 0) {
                return Err(ctx.error("conv2d expects padding >= 0"));
            }
        }
        if self.padding == Padding::Mode(PaddingMode::Same) && stride != [1, 1] {
            return Err(
                ctx.error("conv2d padding 'same' needs stride 1 (as in PyTorch); use 'tf-same' for TensorFlow's rule")
            );
        }
        if self.groups <= 0 || c % self.groups != 0 || self.out_channels % self.groups != 0 {
            return Err(ctx.error(format!(
                "conv2d groups {} must divide its {c} input channels and {} outChannels",
                self.groups, self.out_channels
            )));
        }
        let [top, bottom, left, right] = pads(self.padding, [h, w], kernel, stride, dilation);
        let out = |size: i64, before: i64, after: i64, i: usize| {
            (size + before + after - dilation[i] * (kernel[i] - 1) - 1) / stride[i] + 1
        };
        let output = vec![self.out_channels, out(h, top, bottom, 0), out(w, left, right, 1)];
        if output[1] <= 0 || output[2] <= 0 {
            return Err(ctx.error(format!("conv2d kernel {kernel:?} does not fit a {h}x{w} input")));
        }
        let fan_in = (c / self.groups) * kernel[0] * kernel[1];
        let bound = default_bound(fan_in);
        let weight_init = match self.init {
            WeightInit::Default => TensorInit::Uniform(bound),
            WeightInit::Dirac => TensorInit::DiracOver(bound),
            WeightInit::Zeros => TensorInit::Zeros,
            // kaiming_normal_(mode='fan_out', nonlinearity='relu'): std = sqrt(2 / fan_out), fan_out = out · k².
            WeightInit::KaimingNormal => {
                TensorInit::Normal((2.0 / (self.out_channels * kernel[0] * kernel[1]) as f64).sqrt())
            }
            WeightInit::Normal => TensorInit::Normal(0.01),
            WeightInit::TruncNormal => TensorInit::Normal(0.02),
            WeightInit::UniformOut => TensorInit::Uniform(default_bound(self.out_channels)),
        };
        let mut params = vec![TensorDecl::float(
            "weight",
            vec![self.out_channels, c / self.groups, kernel[0], kernel[1]],
            weight_init,
        )];
        if self.bias {
            let bias_init = match self.init {
                WeightInit::Default | WeightInit::Dirac => TensorInit::Uniform(bound),
                WeightInit::KaimingNormal
                | WeightInit::Zeros
                | WeightInit::Normal
                | WeightInit::TruncNormal
                | WeightInit::UniformOut => TensorInit::Zeros,
            };
            params.push(TensorDecl::float("bias", vec![self.out_channels], bias_init));
        }
        Ok(Declared {
            output,
            params,
            ..Declared::default()
        })
    }

    fn forward(&self, node: &Node, f: &Forward, x: Tensor) -> Result<Tensor> {
        let size = x.size();
        let (kernel, stride, dilation) = (self.kernel_size.pair(), self.stride.pair(), self.dilation.pair());
        let [top, bottom, left, right] = pads(self.padding, [size[2], size[3]], kernel, stride, dilation);
        // Symmetric padding goes to the convolution itself; uneven padding is applied first, as timm does.
        let (x, padding) = if top == bottom && left == right {
            (x, [top, left])
        } else {
            (x.f_constant_pad_nd([left, right, top, bottom])?, [0, 0])
        };
        let weight = f.low(f.param(node, 0))?;
        let bias = if self.bias {
            Some(f.low(f.param(node, 1))?)
        } else {
            None
        };
        Ok(f.low(&x)?
            .f_conv2d(&weight, bias.as_ref(), stride, padding, dilation, self.groups)?)
    }

    /// One Conv: ONNX's `pads` give each side its own size, so `same` and `tf-same` need no Pad node. The input
    /// size is fixed when exported, so `tf-same`'s padding is too.
    fn onnx(&self, node: &Node, g: &mut OnnxGraph, input: &str) -> Result<String> {
        let (kernel, stride, dilation) = (self.kernel_size.pair(), self.stride.pair(), self.dilation.pair());
        let size = [node.input_shape[1], node.input_shape[2]];
        let [top, bottom, left, right] = pads(self.padding, size, kernel, stride, dilation);
        let weight = g.param(node, 0)?;
        let bias = if self.bias { Some(g.param(node, 1)?) } else { None };
        let mut inputs = vec![input, weight.as_str()];
        inputs.extend(bias.as_deref());
        Ok(g.op(
            node,
            "Conv",
            &inputs,
            &[
                ("kernel_shape", Attr::Ints(kernel.to_vec())),
                ("strides", Attr::Ints(stride.to_vec())),
                ("pads", Attr::Ints(vec![top, left, bottom, right])),
                ("dilations", Attr::Ints(dilation.to_vec())),
                ("group", Attr::Int(self.groups)),
            ],
        ))
    }
}
