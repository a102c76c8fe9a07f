//! Small values that layer fields share: sizes given as one number or `[height, width]`, padding modes,
//! weight initializations and activation names.

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::Node;
use crate::error::Result;
use crate::onnx::{Attr, OnnxGraph};

/// A size written as one number for both dimensions or as `[height, width]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Size2 {
    Square(i64),
    Pair([i64; 2]),
}

impl Size2 {
    pub fn pair(self) -> [i64; 2] {
        match self {
            Size2::Square(n) => [n, n],
            Size2::Pair(p) => p,
        }
    }

    pub fn all_positive(self) -> bool {
        self.pair().iter().all(|&d| d > 0)
    }
}

impl From<i64> for Size2 {
    fn from(n: i64) -> Self {
        Size2::Square(n)
    }
}

/// How a convolution pads its input.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Padding {
    /// Zeros on each side: one number, or `[height, width]`.
    Size(Size2),
    Mode(PaddingMode),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaddingMode {
    /// PyTorch's `padding='same'`: the output keeps the input's size (stride 1 only); an odd total goes to the
    /// right and bottom.
    #[serde(rename = "same")]
    Same,
    /// TensorFlow's `SAME`: output `ceil(input / stride)`, the total padding split with the extra pixel on the
    /// right and bottom, computed from the actual input size (the EfficientNet-Lite weights need it).
    #[serde(rename = "tf-same")]
    TfSame,
}

impl Default for Padding {
    fn default() -> Self {
        Padding::Size(Size2::Square(0))
    }
}

/// `[top, bottom, left, right]` zero padding for a kernel over `input` (`[h, w]`).
pub fn pads(padding: Padding, input: [i64; 2], kernel: [i64; 2], stride: [i64; 2], dilation: [i64; 2]) -> [i64; 4] {
    let span = |i: usize| dilation[i] * (kernel[i] - 1);
    match padding {
        Padding::Size(s) => {
            let [h, w] = s.pair();
            [h, h, w, w]
        }
        Padding::Mode(PaddingMode::Same) => {
            let (th, tw) = (span(0), span(1));
            [th / 2, th - th / 2, tw / 2, tw - tw / 2]
        }
        Padding::Mode(PaddingMode::TfSame) => {
            let total = |i: usize| {
                let out = (input[i] + stride[i] - 1) / stride[i];
                ((out - 1) * stride[i] + span(i) + 1 - input[i]).max(0)
            };
            let (th, tw) = (total(0), total(1));
            [th / 2, th - th / 2, tw / 2, tw - tw / 2]
        }
    }
}

/// How a weight tensor starts out before training (or before pretrained weights replace it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WeightInit {
    /// PyTorch's own: uniform in ±1/sqrt(fan_in).
    #[default]
    Default,
    /// Kaiming normal over fan-out with ReLU's gain, as torchvision's ResNet and MobileNet initialize convolutions
    /// (fan-out counts every output channel, groups or not, as `kaiming_normal_(mode='fan_out')` does); biases 0.
    KaimingNormal,
    /// N(0, 0.01²) weights and zero biases: torchvision's MobileNet classifiers.
    Normal,
    /// U(±1/√out) weights and zero biases: torchvision's EfficientNet classifiers.
    UniformOut,
    /// `trunc_normal_(std=0.02)` weights (truncated at ±2, a hundred deviations out: a plain normal) and zero
    /// biases: torchvision's ConvNeXt.
    TruncNormal,
    /// PyTorch's default, then the first filters set to the identity (`dirac_`), so the layer starts by passing
    /// its input through: airbench's "partial identity" initialization.
    Dirac,
    /// All zeros.
    Zeros,
}

/// The nonlinearities a layer can name as a field (squeeze-and-excitation's activation and gate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Relu,
    Relu6,
    Gelu,
    Silu,
    Hardswish,
    Hardsigmoid,
    Sigmoid,
}

impl Activation {
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Activation::Relu => x.f_relu()?,
            Activation::Relu6 => x.f_relu6()?,
            Activation::Gelu => x.f_gelu("none")?,
            Activation::Silu => x.f_silu()?,
            Activation::Hardswish => x.f_hardswish()?,
            Activation::Hardsigmoid => x.f_hardsigmoid()?,
            Activation::Sigmoid => x.f_sigmoid()?,
        })
    }

    /// The activation's ONNX form on the value `x`, in `node`'s name scope.
    pub fn onnx(self, node: &Node, g: &mut OnnxGraph, x: &str) -> String {
        match self {
            Activation::Relu => g.op(node, "Relu", &[x], &[]),
            Activation::Relu6 => {
                let (low, high) = (g.scalar(0.0), g.scalar(6.0));
                g.op(node, "Clip", &[x, &low, &high], &[])
            }
            Activation::Gelu => {
                // 0.5 · x · (1 + erf(x / √2)), as PyTorch exports the exact GELU below opset 20.
                let root2 = g.scalar(std::f32::consts::SQRT_2);
                let scaled = g.op(node, "Div", &[x, &root2], &[]);
                let erf = g.op(node, "Erf", &[&scaled], &[]);
                let one = g.scalar(1.0);
                let shifted = g.op(node, "Add", &[&erf, &one], &[]);
                let product = g.op(node, "Mul", &[x, &shifted], &[]);
                let half = g.scalar(0.5);
                g.op(node, "Mul", &[&product, &half], &[])
            }
            Activation::Silu => {
                let gate = g.op(node, "Sigmoid", &[x], &[]);
                g.op(node, "Mul", &[x, &gate], &[])
            }
            Activation::Hardswish => g.op(node, "HardSwish", &[x], &[]),
            // ONNX's HardSigmoid is max(0, min(1, alpha·x + beta)); PyTorch's is relu6(x + 3) / 6.
            Activation::Hardsigmoid => g.op(
                node,
                "HardSigmoid",
                &[x],
                &[("alpha", Attr::Float(1.0 / 6.0)), ("beta", Attr::Float(0.5))],
            ),
            Activation::Sigmoid => g.op(node, "Sigmoid", &[x], &[]),
        }
    }
}

pub(crate) fn yes() -> bool {
    true
}
