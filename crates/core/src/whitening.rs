//! Patch-whitening initialization of a first convolution (airbench's): the filters become the eigenvectors of the
//! training images' patch second-moment matrix, scaled by 1/√(λ + ε), so the layer starts by decorrelating its
//! input patches.

use tch::{Kind, Tensor};

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::layers::{Layer, Node};
use crate::model::Network;

/// Sets the weights of the convolution at `path` (which must see the network's input) from the patches of the
/// images at `indices`, normalized as the dataset normalizes them. The patch second moment `PᵀP / n` (not
/// centred) is decomposed; filter i is `v_i / √(λ_i + eps)` by decreasing λ. With twice as many filters as patch
/// dimensions the second half is the negation of the first (so a following nonlinearity sees both signs). The bias,
/// if any, is zeroed. Returns the eigenvalues, largest first.
pub fn init_whitening(net: &mut Network, data: &Dataset, indices: &[i64], path: &str, eps: f64) -> Result<Vec<f64>> {
    let node =
        find(&net.nodes, path).ok_or_else(|| Error::option("whiten.layer", "the name of a conv2d layer", path))?;
    let Layer::Conv2d(conv) = &node.layer else {
        return Err(Error::option(
            "whiten.layer",
            "a conv2d layer",
            format!("{path} ({})", node.layer.kind()),
        ));
    };
    if node.input_shape != net.spec.input_shape.to_vec() {
        return Err(Error::option(
            "whiten.layer",
            "the first layer (it whitens the input images)",
            path,
        ));
    }
    let [kh, kw] = conv.kernel_size.pair();
    let c = node.input_shape[0];
    let dims = c * kh * kw;
    let out = conv.out_channels;
    if conv.groups != 1 || (out != dims && out != 2 * dims) || conv.dilation.pair() != [1, 1] {
        return Err(Error::option(
            "whiten.layer",
            format!(
                "a conv2d of groups 1 and {dims} or {} filters (channels × kernel area, or twice that)",
                2 * dims
            ),
            format!("{path} with {out} filters"),
        ));
    }
    if indices.is_empty() {
        return Err(Error::option("whiten.images", "at least one image", 0));
    }
    let weight_index = node.params[0];
    let bias_index = node.params.get(1).copied();
    let _guard = tch::no_grad_guard();
    let mut moment = Tensor::f_zeros([dims, dims], (Kind::Double, net.device))?;
    let mut count = 0i64;
    for chunk in indices.chunks(500) {
        let (x, _) = data.batch(chunk, net.input_size(), None)?;
        // Every kh×kw patch at stride 1, flattened in (channel, row, column) order as PyTorch's unfold does.
        let patches = x
            .f_unfold(2, kh, 1)?
            .f_unfold(3, kw, 1)?
            .f_permute([0, 2, 3, 1, 4, 5])?
            .f_reshape([-1, dims])?
            .f_to_kind(Kind::Double)?;
        count += patches.size()[0];
        moment = moment.f_add(&patches.f_transpose(0, 1)?.f_matmul(&patches)?)?;
    }
    let moment = moment.f_div_scalar(count as f64)?;
    let (values, vectors) = moment.f_linalg_eigh("U")?;
    // eigh sorts ascending; the largest eigenvalue leads.
    let values = values.f_flip([0])?;
    let vectors = vectors.f_flip([1])?;
    let scale = values.f_add_scalar(eps)?.f_sqrt()?.f_reciprocal()?;
    let filters = vectors
        .f_transpose(0, 1)?
        .f_mul(&scale.f_unsqueeze(1)?)?
        .f_reshape([dims, c, kh, kw])?;
    let filters = if out == 2 * dims {
        Tensor::f_cat(&[&filters, &filters.f_neg()?], 0)?
    } else {
        filters
    };
    let weight = &mut net.params[weight_index].tensor;
    weight.f_copy_(&filters.f_to_kind(weight.kind())?)?;
    if let Some(b) = bias_index {
        let _ = net.params[b].tensor.f_zero_()?;
    }
    let mut eigen = vec![0f64; dims as usize];
    values
        .f_to_device(tch::Device::Cpu)?
        .f_copy_data(&mut eigen, dims as usize)?;
    Ok(eigen)
}

fn find<'a>(nodes: &'a [Node], path: &str) -> Option<&'a Node> {
    nodes
        .iter()
        .flat_map(|n| std::iter::once(n).chain(n.descendants()))
        .find(|n| n.path == path)
}
