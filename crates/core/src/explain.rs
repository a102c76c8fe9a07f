//! Grad-CAM (Selvaraju et al. 2017): where in an image the network found the evidence for a class. The map is the
//! target layer's channels weighted by the spatial mean of the class score's gradient, as pytorch-grad-cam 1.5.7's
//! `GradCAM` computes it (`__test__/grad-cam.spec.ts` checks the two agree): ReLU, each map scaled to [0, 1],
//! resized bilinearly to the input, scaled again.

use tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::host::{host_floats, host_indices};
use crate::layers::{Capture, Node};
use crate::model::Network;

/// Heatmaps for a batch of images, with what the network predicted for them.
#[derive(Debug, Clone, PartialEq)]
pub struct GradCam {
    /// `N × height × width` values in [0, 1], row-major, at the network's input size.
    pub heatmaps: Vec<f32>,
    pub height: i64,
    pub width: i64,
    /// The class each map explains: the one asked for, or the highest-scoring one.
    pub targets: Vec<i64>,
    /// `N × classes` probabilities of the same forward pass (softmax, or a sigmoid per class when multi-label).
    pub probabilities: Vec<f32>,
    /// The layer whose activations were weighted (its path, or its place in the spec when it has no name).
    pub layer: String,
}

/// How a node is named to users: its tensor prefix, or its place in the spec for layers without tensors.
pub(crate) fn node_name(node: &Node) -> &str {
    if node.path.is_empty() {
        &node.spec_path
    } else {
        &node.path
    }
}

/// Whether a node's output is a feature map `[C, H, W]`, and how many positions it has.
fn map_positions(node: &Node) -> Option<i64> {
    match node.output_shape.as_slice() {
        [_, h, w] => Some(h * w),
        _ => None,
    }
}

/// The default target layer: the last top-level layer whose output is a feature map with more than one position
/// (the last convolutional stage, `layer4` of a ResNet, `features` of torchvision's MobileNets), as pytorch-grad-cam's
/// examples choose; when every map is 1×1, the last map.
pub fn default_layer(net: &Network) -> Result<&Node> {
    let maps: Vec<&Node> = net.nodes.iter().filter(|n| map_positions(n).is_some()).collect();
    maps.iter()
        .rev()
        .find(|n| map_positions(n).is_some_and(|p| p > 1))
        .or(maps.last())
        .copied()
        .ok_or_else(|| {
            Error::option(
                "layer",
                "a network with a convolutional feature map to explain",
                "none in this network",
            )
        })
}

/// The node named `name` anywhere in the network (path like `layer4.1`, or spec place like `layers[3]`).
fn find_layer<'a>(nodes: &'a [Node], name: &str) -> Option<&'a Node> {
    nodes.iter().find_map(|node| {
        if node.path == name || node.spec_path == name {
            Some(node)
        } else {
            node.branches.iter().find_map(|b| find_layer(b, name))
        }
    })
}

/// The target layer: `name`, which must output a feature map, or [`default_layer`].
pub fn target_layer<'a>(net: &'a Network, name: Option<&str>) -> Result<&'a Node> {
    let Some(name) = name else {
        return default_layer(net);
    };
    let maps = || {
        let names: Vec<&str> = net
            .nodes
            .iter()
            .filter(|n| map_positions(n).is_some())
            .map(node_name)
            .collect();
        format!("a layer with a feature-map output, such as {}", names.join(", "))
    };
    match find_layer(&net.nodes, name) {
        Some(node) if map_positions(node).is_some() => Ok(node),
        Some(node) => Err(Error::option(
            "layer",
            maps(),
            format!(
                "{name}, whose output [{}] is not a feature map",
                node.output_shape
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        None => Err(Error::option("layer", maps(), name)),
    }
}

/// Each image's map shifted to a minimum of 0 and divided by (1e-7 + its maximum): pytorch-grad-cam's
/// `scale_cam_image`, on `[N, H, W]`.
fn scale_each(cam: &Tensor) -> Result<Tensor> {
    let shifted = cam.f_sub(&cam.f_amin([1, 2], true)?)?;
    Ok(shifted.f_div(&shifted.f_amax([1, 2], true)?.f_add_scalar(1e-7)?)?)
}

/// Grad-CAM maps of `layer` (see [`target_layer`]) for a normalized batch `x` at the network's evaluation size, in
/// evaluation mode, for `targets` (one class per image) or each image's highest-scoring class.
pub fn grad_cam(net: &Network, x: &Tensor, targets: Option<&[i64]>, layer: Option<&str>) -> Result<GradCam> {
    let node = target_layer(net, layer)?;
    let name = node_name(node).to_owned();
    let capture = Capture::new(&name);
    let [n, _, height, width] = <[i64; 4]>::try_from(x.size()).map_err(|_| Error::torch("grad_cam: a batch is 4-d"))?;
    let classes = net.classes();
    if let Some(t) = targets {
        if t.len() as i64 != n {
            return Err(Error::option(
                "targets",
                format!("one class per image ({n})"),
                format!("{} classes", t.len()),
            ));
        }
        if let Some((position, &label)) = t.iter().enumerate().find(|(_, &c)| c < 0 || c >= classes) {
            return Err(Error::LabelOutOfRange {
                what: "explain targets".into(),
                label,
                position,
                classes,
            });
        }
    }
    tch::with_grad(|| {
        // The input asks for its gradient so the graph exists even when no parameter trains (a frozen network).
        let input = x.f_detach()?.f_set_requires_grad(true)?;
        let logits = net.forward_capturing(&input, false, Some(&capture))?;
        let activations = capture.take()?;
        if activations.dim() != 4 {
            return Err(Error::option("layer", "a layer with a feature-map output", &name));
        }
        let target = match targets {
            Some(t) => Tensor::f_from_slice(t)?.f_to_device(logits.device())?,
            None => logits.f_argmax(1, false)?,
        };
        let score = logits
            .f_gather(1, &target.f_view([-1, 1])?, false)?
            .f_sum(logits.kind())?;
        let grads = Tensor::f_run_backward(&[&score], &[&activations], false, false)?;
        let kind = if logits.kind() == Kind::Double {
            Kind::Double
        } else {
            Kind::Float
        };
        let grad = grads
            .into_iter()
            .next()
            .ok_or_else(|| Error::torch("grad_cam: no gradient"))?
            .f_to_kind(kind)?;
        let weights = grad.f_mean_dim(&[2i64, 3][..], true, kind)?;
        let cam = activations
            .f_detach()?
            .f_to_kind(kind)?
            .f_mul(&weights)?
            .f_sum_dim_intlist(&[1i64][..], false, kind)?;
        let scaled = scale_each(&cam.f_relu()?)?;
        let resized = scaled
            .f_unsqueeze(1)?
            .f_upsample_bilinear2d([height, width], false, None, None)?
            .f_squeeze_dim(1)?;
        let heatmaps = scale_each(&resized.f_relu()?)?;
        let scores = logits.f_detach()?.f_to_kind(Kind::Float)?;
        let probabilities = if net.multi_label {
            scores.f_sigmoid()?
        } else {
            scores.f_softmax(1, Kind::Float)?
        };
        Ok(GradCam {
            heatmaps: host_floats(&heatmaps)?,
            height,
            width,
            targets: host_indices(&target)?,
            probabilities: host_floats(&probabilities)?,
            layer: name.clone(),
        })
    })
}
