//! Pooling: `maxpool2d` and `avgpool2d` over windows, and `adaptiveavgpool2d` / `adaptivemaxpool2d` to a fixed
//! output size (1, the default, pools globally).

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::values::Size2;
use super::{DeclareCtx, Declared, Forward, LayerKind, Node};
use crate::error::Result;
use crate::onnx::{Attr, OnnxGraph};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Maxpool2d {
    pub kernel_size: Size2,
    /// Defaults to the kernel size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<Size2>,
    #[serde(default = "zero")]
    pub padding: Size2,
    #[serde(default)]
    pub ceil_mode: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Avgpool2d {
    pub kernel_size: Size2,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<Size2>,
    #[serde(default = "zero")]
    pub padding: Size2,
    #[serde(default)]
    pub ceil_mode: bool,
    /// Count padded zeros in the average, as PyTorch does by default.
    #[serde(default = "super::values::yes")]
    pub count_include_pad: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Adaptiveavgpool2d {
    #[serde(default = "one")]
    pub output_size: Size2,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Adaptivemaxpool2d {
    #[serde(default = "one")]
    pub output_size: Size2,
}

fn zero() -> Size2 {
    Size2::Square(0)
}
fn one() -> Size2 {
    Size2::Square(1)
}

impl Maxpool2d {
    pub fn new(kernel_size: i64) -> Self {
        Maxpool2d {
            kernel_size: kernel_size.into(),
            stride: None,
            padding: zero(),
            ceil_mode: false,
        }
    }
}

/// The output of a pooling window over `[c, h, w]`, as PyTorch computes it.
fn window(
    ctx: &DeclareCtx,
    what: &str,
    input: &[i64],
    kernel: Size2,
    stride: Option<Size2>,
    padding: Size2,
    ceil: bool,
) -> Result<Declared> {
    let [c, h, w] = ctx.spatial(input)?;
    let (k, s, p) = (kernel.pair(), stride.unwrap_or(kernel).pair(), padding.pair());
    if !kernel.all_positive() || s.iter().any(|&d| d <= 0) || p.iter().any(|&d| d < 0) {
        return Err(ctx.error(format!("{what} expects kernelSize and stride > 0 and padding >= 0")));
    }
    if p[0] * 2 > k[0] || p[1] * 2 > k[1] {
        return Err(ctx.error(format!("{what} padding {p:?} must be at most half the kernel {k:?}")));
    }
    let out = |size: i64, i: usize| {
        let span = size + 2 * p[i] - k[i];
        let mut o = if ceil {
            (span + s[i] - 1) / s[i] + 1
        } else {
            span / s[i] + 1
        };
        // PyTorch drops a last window that would start inside the right padding.
        if ceil && (o - 1) * s[i] >= size + p[i] {
            o -= 1;
        }
        o
    };
    if h + 2 * p[0] < k[0] || w + 2 * p[1] < k[1] {
        return Err(ctx.error(format!("{what} kernel {k:?} does not fit a {h}x{w} input")));
    }
    Ok(Declared::shape(vec![c, out(h, 0), out(w, 1)]))
}

impl LayerKind for Maxpool2d {
    fn declare(&self, input: &[i64], ctx: &mut DeclareCtx) -> Result<Declared> {
        window(
            ctx,
            "maxpool2d",
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
        )
    }

    fn forward(&self, _node: &Node, _f: &Forward, x: Tensor) -> Result<Tensor> {
        let k = self.kernel_size.pair();
        let s = self.stride.unwrap_or(self.kernel_size).pair();
        Ok(x.f_max_pool2d(k, s, self.padding.pair(), [1, 1], self.ceil_mode)?)
    }

    /// MaxPool with ceil mode written out as padding at the end (see [`ceil_overhang`]); a max never sees padding.
    fn onnx(&self, node: &Node, g: &mut OnnxGraph, input: &str) -> Result<String> {
        let (k, s, p) = (
            self.kernel_size.pair(),
            self.stride.unwrap_or(self.kernel_size).pair(),
            self.padding.pair(),
        );
        let e = ceil_overhang(node, k, s, p);
        let pads = [p[0], p[1], p[0] + e[0], p[1] + e[1]];
        check_pads(node, g, k, pads)?;
        Ok(g.op(node, "MaxPool", &[input], &window_attrs(k, s, pads)))
    }
}

impl LayerKind for Avgpool2d {
    fn declare(&self, input: &[i64], ctx: &mut DeclareCtx) -> Result<Declared> {
        window(
            ctx,
            "avgpool2d",
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
        )
    }

    fn forward(&self, _node: &Node, _f: &Forward, x: Tensor) -> Result<Tensor> {
        let k = self.kernel_size.pair();
        let s = self.stride.unwrap_or(self.kernel_size).pair();
        Ok(x.f_avg_pool2d(k, s, self.padding.pair(), self.ceil_mode, self.count_include_pad, None)?)
    }

    /// AveragePool. PyTorch's divisor counts the padding zeros (with `countIncludePad`) but never ceil mode's overhang
    /// past them, while ONNX counts all of its `pads` or none: so with both, the zeros are padded explicitly and the
    /// overhang is left out of the count.
    fn onnx(&self, node: &Node, g: &mut OnnxGraph, input: &str) -> Result<String> {
        let (k, s, p) = (
            self.kernel_size.pair(),
            self.stride.unwrap_or(self.kernel_size).pair(),
            self.padding.pair(),
        );
        let e = ceil_overhang(node, k, s, p);
        let (x, pads, count_pad) = if e == [0, 0] {
            (input.to_owned(), [p[0], p[1], p[0], p[1]], self.count_include_pad)
        } else if self.count_include_pad && p != [0, 0] {
            let amounts = g.constant_i64("/pads", &[8], &[0, 0, p[0], p[1], 0, 0, p[0], p[1]]);
            let padded = g.op(node, "Pad", &[input, &amounts], &[]);
            (padded, [0, 0, e[0], e[1]], false)
        } else {
            // Without padding zeros to count, PyTorch divides by the pixels inside the input, as ONNX does here.
            (input.to_owned(), [p[0], p[1], p[0] + e[0], p[1] + e[1]], false)
        };
        check_pads(node, g, k, pads)?;
        let mut attrs = window_attrs(k, s, pads);
        attrs.push(("count_include_pad", Attr::Int(count_pad as i64)));
        Ok(g.op(node, "AveragePool", &[&x], &attrs))
    }
}

fn adaptive(ctx: &DeclareCtx, what: &str, input: &[i64], size: Size2) -> Result<Declared> {
    let [c, _, _] = ctx.spatial(input)?;
    if !size.all_positive() {
        return Err(ctx.error(format!("{what} expects outputSize > 0")));
    }
    let [h, w] = size.pair();
    Ok(Declared::shape(vec![c, h, w]))
}

impl LayerKind for Adaptiveavgpool2d {
    fn declare(&self, input: &[i64], ctx: &mut DeclareCtx) -> Result<Declared> {
        adaptive(ctx, "adaptiveavgpool2d", input, self.output_size)
    }

    fn forward(&self, _node: &Node, _f: &Forward, x: Tensor) -> Result<Tensor> {
        let out = self.output_size.pair();
        if out == [1, 1] {
            // A global mean is what adaptive pooling to 1×1 computes, and libtorch runs it faster.
            return Ok(x.f_mean_dim(&[-2i64, -1][..], true, None)?);
        }
        Ok(x.f_adaptive_avg_pool2d(out)?)
    }

    fn onnx(&self, node: &Node, g: &mut OnnxGraph, input: &str) -> Result<String> {
        adaptive_onnx(node, g, input, self.output_size, "GlobalAveragePool", "AveragePool")
    }
}

impl LayerKind for Adaptivemaxpool2d {
    fn declare(&self, input: &[i64], ctx: &mut DeclareCtx) -> Result<Declared> {
        adaptive(ctx, "adaptivemaxpool2d", input, self.output_size)
    }

    fn forward(&self, _node: &Node, _f: &Forward, x: Tensor) -> Result<Tensor> {
        let out = self.output_size.pair();
        if out == [1, 1] {
            return Ok(x.f_amax(&[-2i64, -1][..], true)?);
        }
        Ok(x.f_adaptive_max_pool2d(out)?.0)
    }

    fn onnx(&self, node: &Node, g: &mut OnnxGraph, input: &str) -> Result<String> {
        adaptive_onnx(node, g, input, self.output_size, "GlobalMaxPool", "MaxPool")
    }
}

/// How far ceil mode's last window reaches past the padding at the end of each axis: padding that much more at the
/// end makes ONNX's floor-mode pooling give the windows PyTorch's ceil mode gives (including its rule that drops a
/// last window starting inside the padding), whatever rule the runtime follows for `ceil_mode`.
fn ceil_overhang(node: &Node, k: [i64; 2], s: [i64; 2], p: [i64; 2]) -> [i64; 2] {
    let size = [node.input_shape[1], node.input_shape[2]];
    let out = [node.output_shape[1], node.output_shape[2]];
    [0, 1].map(|i| ((out[i] - 1) * s[i] + k[i] - (size[i] + 2 * p[i])).max(0))
}

/// ONNX pools take padding smaller than the kernel on each side.
fn check_pads(node: &Node, g: &OnnxGraph, k: [i64; 2], pads: [i64; 4]) -> Result<()> {
    if pads[0].max(pads[2]) >= k[0] || pads[1].max(pads[3]) >= k[1] {
        return Err(g.unsupported(
            node,
            format!(
                "its padding with ceil mode's overhang, {pads:?} (top, left, bottom, right), reaches the kernel {k:?}; \
                 ONNX pools need padding smaller than the kernel"
            ),
        ));
    }
    Ok(())
}

fn window_attrs(k: [i64; 2], s: [i64; 2], pads: [i64; 4]) -> Vec<(&'static str, Attr)> {
    vec![
        ("kernel_shape", Attr::Ints(k.to_vec())),
        ("strides", Attr::Ints(s.to_vec())),
        ("pads", Attr::Ints(pads.to_vec())),
    ]
}

/// A global pool for outputSize 1, else a fixed window when the input divides evenly; uneven adaptive windows
/// have no ONNX operator.
fn adaptive_onnx(
    node: &Node,
    g: &mut OnnxGraph,
    input: &str,
    size: Size2,
    global: &str,
    window: &str,
) -> Result<String> {
    let out = size.pair();
    if out == [1, 1] {
        return Ok(g.op(node, global, &[input], &[]));
    }
    let (h, w) = (node.input_shape[1], node.input_shape[2]);
    if h % out[0] != 0 || w % out[1] != 0 {
        return Err(g.unsupported(
            node,
            format!(
                "outputSize {out:?} does not divide its {h}x{w} input evenly, and ONNX has no adaptive pooling with \
                 uneven windows; use an input size that it divides, or outputSize 1"
            ),
        ));
    }
    let k = [h / out[0], w / out[1]];
    Ok(g.op(node, window, &[input], &window_attrs(k, k, [0; 4])))
}
