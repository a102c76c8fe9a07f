//! A network built from a [`ModelSpec`]: named parameters and buffers with PyTorch's layout and initialization,
//! which of them train, and the forward pass.

use std::collections::HashMap;
use std::sync::Arc;

use tch::{Device, Kind, Tensor};

use crate::distributed::ProcessGroup;
use crate::error::{Error, Result};
use crate::layers::{Capture, Forward, Node, TensorDecl, TensorInit};
use crate::spec::{summary_rows, LayerRow, ModelSpec};
pub use crate::weights::{Buffer, NetworkTensors, Param, Precision};

/// A network's weights and buffers on one device. Tensor names match PyTorch's `state_dict` keys
/// (`conv1.weight`, `features.3.block.1.fc1.bias`, `bn1.running_mean`), so checkpoints move between the two.
#[derive(Debug)]
pub struct Network {
    pub spec: ModelSpec,
    pub nodes: Vec<Node>,
    pub device: Device,
    pub params: Vec<Param>,
    pub buffers: Vec<Buffer>,
    /// Whether activations run in channels_last memory order, which oneDNN convolves faster on CPU.
    pub channels_last: bool,
    /// The type convolutions and linear layers compute in.
    pub precision: Precision,
    /// Batch norm normalizes with its running statistics (and leaves them as they are) even while its layer
    /// trains, as Keras's fine-tuning guide keeps it: small batches of new images would otherwise replace the
    /// pretrained statistics the rest of the network was trained against.
    pub frozen_batchnorm_statistics: bool,
    /// Data-parallel training with synchronized batch norm: batch norms that learn take their statistics over
    /// every rank's batch through this group (`torch.nn.SyncBatchNorm`); `None` keeps them per rank, as DDP does.
    pub sync_batchnorm: Option<Arc<ProcessGroup>>,
    /// `[height, width]` that evaluation and prediction feed the network, when not the spec's input (FixRes:
    /// random-resized crops show objects larger than a centre crop of the same size, so a network trained on them
    /// scores better on a larger view).
    pub eval_input_size: Option<[i64; 2]>,
    /// Each class is scored on its own (a sigmoid per class, several labels per image) instead of one softmax over
    /// exclusive classes: what prediction's probabilities are.
    pub multi_label: bool,
}

/// Lays a 4-d tensor out as NHWC in memory while keeping its NCHW shape: libtorch reads the strides
/// and picks its channels_last kernels.
pub fn to_channels_last(x: &Tensor) -> Result<Tensor> {
    Ok(x.f_permute([0, 2, 3, 1])?.f_contiguous()?.f_permute([0, 3, 1, 2])?)
}

/// A tensor's key: `<layer path>.<field>` (`conv1.weight`), or the path alone for a layer whose one tensor is itself
/// (layer scale's `features.1.0.layer_scale`).
fn tensor_key(path: &str, field: &str) -> String {
    if field.is_empty() {
        path.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

fn init_tensor(decl: &TensorDecl, device: Device) -> Result<Tensor> {
    let shape = decl.shape.as_slice();
    let t = match decl.init {
        TensorInit::Zeros => Tensor::f_zeros(shape, (decl.kind, device))?,
        TensorInit::Ones => Tensor::f_ones(shape, (decl.kind, device))?,
        TensorInit::Constant(value) => Tensor::f_full(shape, value, (decl.kind, device))?,
        TensorInit::Uniform(bound) => Tensor::f_empty(shape, (decl.kind, device))?.f_uniform_(-bound, bound)?,
        TensorInit::Normal(std) => Tensor::f_empty(shape, (decl.kind, device))?.f_normal_(0.0, std)?,
        TensorInit::DiracOver(bound) => {
            // PyTorch's default, then `dirac_` on the first min(out, in) filters: each passes one channel through.
            let t = Tensor::f_empty(shape, (decl.kind, device))?.f_uniform_(-bound, bound)?;
            let (out, inp) = (shape[0], shape[1]);
            let (kh, kw) = (shape[2] / 2, shape[3] / 2);
            let n = out.min(inp);
            let _ = t.f_narrow(0, 0, n)?.f_zero_()?;
            for i in 0..n {
                let _ = t.f_get(i)?.f_get(i)?.f_get(kh)?.f_get(kw)?.f_fill_(1.0)?;
            }
            t
        }
    };
    Ok(t)
}

/// The shapes of every node's parameter declarations, depth first.
fn param_shapes(nodes: &[Node]) -> Vec<Vec<i64>> {
    nodes
        .iter()
        .flat_map(|node| {
            let own = node.param_decls.iter().map(|d| d.shape.clone());
            own.chain(node.branches.iter().flat_map(|branch| param_shapes(branch)))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Points `to`'s nodes at the tensors of the same nodes in `from` (the same spec placed at another size).
fn share_tensors(from: &[Node], to: &mut [Node]) {
    for (a, b) in from.iter().zip(to.iter_mut()) {
        b.params.clone_from(&a.params);
        b.buffers.clone_from(&a.buffers);
        for (x, y) in a.branches.iter().zip(b.branches.iter_mut()) {
            share_tensors(x, y);
        }
    }
}

/// Visits every node depth first, with mutable access, in declaration order.
fn for_each_node(nodes: &mut [Node], f: &mut impl FnMut(&mut Node) -> Result<()>) -> Result<()> {
    for node in nodes {
        f(node)?;
        for branch in &mut node.branches {
            for_each_node(branch, f)?;
        }
    }
    Ok(())
}

impl Network {
    /// Builds the network with each layer's initialization (PyTorch's defaults unless the spec says otherwise).
    pub fn new(spec: ModelSpec, device: Device) -> Result<Self> {
        let mut nodes = spec.resolve()?;
        let mut params = Vec::new();
        let mut buffers = Vec::new();
        for_each_node(&mut nodes, &mut |node| {
            for decl in &node.param_decls {
                let fixed = !node.trainable || decl.frozen;
                let tensor = init_tensor(decl, device)?.f_set_requires_grad(!fixed)?;
                node.params.push(params.len());
                params.push(Param {
                    name: tensor_key(&node.path, &decl.field),
                    tensor,
                    trainable: !fixed,
                    fixed,
                    layer: node.layer.kind(),
                    field: decl.field.rsplit('.').next().unwrap_or_default().to_owned(),
                });
            }
            for decl in &node.buffer_decls {
                node.buffers.push(buffers.len());
                buffers.push(Buffer {
                    name: tensor_key(&node.path, &decl.field),
                    tensor: init_tensor(decl, device)?,
                });
            }
            Ok(())
        })?;
        Ok(Network {
            spec,
            nodes,
            device,
            params,
            buffers,
            channels_last: false,
            precision: Precision::Fp32,
            frozen_batchnorm_statistics: false,
            sync_batchnorm: None,
            eval_input_size: None,
            multi_label: false,
        })
    }

    /// The model's input `[height, width]`.
    pub fn input_size(&self) -> [i64; 2] {
        [self.spec.input_shape[1], self.spec.input_shape[2]]
    }

    /// The `[height, width]` evaluation and prediction feed the model: its eval input size, else its input.
    pub fn eval_size(&self) -> [i64; 2] {
        self.eval_input_size.unwrap_or_else(|| self.input_size())
    }

    pub fn classes(&self) -> i64 {
        self.nodes.last().map(|l| l.output_shape[0]).unwrap_or(0)
    }

    pub fn param_count(&self) -> i64 {
        self.params.iter().map(|p| p.tensor.numel() as i64).sum()
    }

    pub fn trainable_param_count(&self) -> i64 {
        self.params
            .iter()
            .filter(|p| p.trainable)
            .map(|p| p.tensor.numel() as i64)
            .sum()
    }

    /// Each layer with its shapes and parameters, depth first; `trainable` says whether it trains now.
    pub fn summary(&self) -> Vec<LayerRow> {
        summary_rows(&self.nodes, &|node: &Node| {
            node.params.is_empty() && node.trainable || node.params.iter().any(|&i| self.params[i].trainable)
        })
    }

    /// Sets the input size of evaluation and prediction (`None`: the spec's). Fails unless the layers take that size
    /// with the same weights and still score the same classes: convolutions and global pooling do; a linear layer
    /// after a flatten of a spatial map does not.
    pub fn set_eval_input_size(&mut self, size: Option<[i64; 2]>) -> Result<()> {
        if let Some([h, w]) = size {
            let output = |nodes: &[Node]| nodes.last().map(|n| n.output_shape.clone());
            let accepted = h >= 1
                && w >= 1
                && self.nodes_at([h, w]).is_ok_and(|nodes| {
                    param_shapes(&nodes) == param_shapes(&self.nodes) && output(&nodes) == output(&self.nodes)
                });
            if !accepted {
                let [_, sh, sw] = self.spec.input_shape;
                return Err(Error::option(
                    "evalInputSize",
                    format!("a size the layers take with the weights they have (the spec's input is {sh}x{sw}; a linear layer after a flatten of a spatial map fixes it)"),
                    format!("{h}x{w}"),
                ));
            }
        }
        self.eval_input_size = size;
        Ok(())
    }

    /// The layers placed for an input of `[h, w]`, sharing this network's tensors index for index (ONNX export at
    /// the evaluation size: `tf-same` padding and the declared shapes follow the input).
    pub fn nodes_at(&self, [h, w]: [i64; 2]) -> Result<Vec<Node>> {
        let spec = ModelSpec {
            input_shape: [self.spec.input_shape[0], h, w],
            ..self.spec.clone()
        };
        let mut nodes = spec.resolve()?;
        share_tensors(&self.nodes, &mut nodes);
        Ok(nodes)
    }

    /// Freezes or unfreezes the parameters whose names `select` picks. Parameters the spec fixed stay frozen.
    /// Returns how many parameters changed.
    pub fn set_trainable(&mut self, select: impl Fn(&str) -> bool, on: bool) -> Result<usize> {
        let mut changed = 0;
        for p in self.params.iter_mut().filter(|p| select(&p.name)) {
            let want = on && !p.fixed;
            if p.trainable != want {
                p.trainable = want;
                p.tensor = p.tensor.f_detach()?.f_set_requires_grad(want)?;
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// The type the weights are kept in: float32, or float64 for checking numerics against a reference.
    pub fn dtype(&self) -> Kind {
        self.params.first().map(|p| p.tensor.kind()).unwrap_or(Kind::Float)
    }

    /// Converts the floating weights and buffers to `kind` (`Float` or `Double`); integer buffers stay as they are.
    pub fn set_dtype(&mut self, kind: Kind) -> Result<()> {
        if !matches!(kind, Kind::Float | Kind::Double) {
            return Err(Error::option("dtype", "float32 or float64", format!("{kind:?}")));
        }
        tch::no_grad(|| -> Result<()> {
            for p in &mut self.params {
                p.tensor = p.tensor.f_to_kind(kind)?.f_detach()?.f_set_requires_grad(p.trainable)?;
            }
            for b in self.buffers.iter_mut().filter(|b| b.tensor.is_floating_point()) {
                b.tensor = b.tensor.f_to_kind(kind)?;
            }
            Ok(())
        })
    }

    /// Switches the memory order of the conv weights (and so of the activations) to channels_last or back.
    pub fn set_channels_last(&mut self, on: bool) -> Result<()> {
        if on == self.channels_last {
            return Ok(());
        }
        tch::no_grad(|| -> Result<()> {
            for p in self.params.iter_mut().filter(|p| p.tensor.dim() == 4) {
                let relaid = if on {
                    to_channels_last(&p.tensor)?
                } else {
                    p.tensor.f_contiguous()?
                };
                p.tensor = relaid.f_detach()?.f_set_requires_grad(p.trainable)?;
            }
            Ok(())
        })?;
        self.channels_last = on;
        Ok(())
    }

    /// Runs the network on a float batch `[N, C, H, W]`; `train` turns on dropout, stochastic depth and batch
    /// statistics in the layers that train.
    pub fn forward_t(&self, input: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_capturing(input, train, None)
    }

    /// [`Network::forward_t`], keeping the output of the layer `capture` names.
    pub fn forward_capturing(&self, input: &Tensor, train: bool, capture: Option<&Capture>) -> Result<Tensor> {
        let dtype = self.dtype();
        let input = if input.kind() != dtype {
            input.f_to_kind(dtype)?
        } else {
            input.shallow_clone()
        };
        let x = if self.channels_last && input.dim() == 4 {
            to_channels_last(&input)?
        } else {
            input
        };
        let forward = Forward {
            params: &self.params,
            buffers: &self.buffers,
            precision: self.precision,
            frozen_batchnorm_statistics: self.frozen_batchnorm_statistics,
            sync_batchnorm: self.sync_batchnorm.as_deref(),
            train,
            capture,
        };
        let logits = forward.run(&self.nodes, x)?;
        // A no-op in fp32 and fp64; bf16 logits come back as fp32 for the loss and softmax.
        Ok(logits.f_to_kind(dtype)?)
    }

    /// Every saved tensor by name, parameters then buffers.
    pub fn named_tensors(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.params
            .iter()
            .map(|p| (p.name.as_str(), &p.tensor))
            .chain(self.buffers.iter().map(|b| (b.name.as_str(), &b.tensor)))
    }

    /// Copies tensors into the network as `load_state_dict(strict=True)` does: every name present with the right
    /// shape, nothing extra. A mismatch is one error listing every missing, unexpected and mis-shaped key.
    /// Floating tensors of another precision are converted; `source` names where they came from.
    pub fn load_tensors(&mut self, tensors: HashMap<String, Tensor>, source: &std::path::Path) -> Result<()> {
        self.load_tensors_keeping(tensors, source, &[])
    }

    /// [`Network::load_tensors`], except that the model's tensors whose names match a glob of `keep` keep their own
    /// values (a classifier replaced for fine-tuning): the file need not have them, and its tensors of those names
    /// are left out.
    pub fn load_tensors_keeping(
        &mut self,
        mut tensors: HashMap<String, Tensor>,
        source: &std::path::Path,
        keep: &[String],
    ) -> Result<()> {
        let kept = |name: &str| keep.iter().any(|g| crate::glob::glob_match(g, name));
        tensors.retain(|name, _| !kept(name));
        let expected: HashMap<&str, (Vec<i64>, Kind)> = self
            .named_tensors()
            .filter(|(n, _)| !kept(n))
            .map(|(n, t)| (n, (t.size(), t.kind())))
            .collect();
        let mut missing: Vec<String> = expected
            .keys()
            .filter(|k| !tensors.contains_key(**k))
            .map(|k| k.to_string())
            .collect();
        let mut unexpected: Vec<String> = tensors
            .keys()
            .filter(|k| !expected.contains_key(k.as_str()))
            .cloned()
            .collect();
        let mut misshaped: Vec<String> = tensors
            .iter()
            .filter_map(|(k, t)| {
                let (shape, _) = expected.get(k.as_str())?;
                (t.size() != *shape).then(|| format!("{k}: {:?} in the file, {shape:?} in the model", t.size()))
            })
            .collect();
        let mut wrong_type: Vec<String> = tensors
            .iter()
            .filter_map(|(k, t)| {
                let (_, kind) = expected.get(k.as_str())?;
                let float = |k: Kind| matches!(k, Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16);
                (t.kind() != *kind && float(t.kind()) != float(*kind))
                    .then(|| format!("{k}: {:?} in the file, {kind:?} in the model", t.kind()))
            })
            .collect();
        if !(missing.is_empty() && unexpected.is_empty() && misshaped.is_empty() && wrong_type.is_empty()) {
            for list in [&mut missing, &mut unexpected, &mut misshaped, &mut wrong_type] {
                list.sort();
            }
            return Err(Error::StateDictMismatch {
                path: source.to_owned(),
                missing,
                unexpected,
                misshaped: misshaped.into_iter().chain(wrong_type).collect(),
            });
        }
        tch::no_grad(|| -> Result<()> {
            let targets = self
                .params
                .iter_mut()
                .map(|p| (&p.name, &mut p.tensor))
                .chain(self.buffers.iter_mut().map(|b| (&b.name, &mut b.tensor)));
            for (name, target) in targets {
                let Some(src) = tensors.remove(name.as_str()) else {
                    continue; // kept: checked above that only kept tensors are absent
                };
                target.f_copy_(&src.f_to_kind(target.kind())?)?;
            }
            Ok(())
        })
    }
}

impl NetworkTensors for Network {
    fn params(&self) -> &[Param] {
        &self.params
    }

    fn buffers(&self) -> &[Buffer] {
        &self.buffers
    }
}

impl crate::onnx::Exportable for Network {
    fn input_channels(&self) -> i64 {
        self.spec.input_shape[0]
    }

    fn eval_nodes(&self) -> Result<([i64; 2], std::borrow::Cow<'_, [Node]>)> {
        Ok(match self.eval_input_size {
            Some(size) => (size, std::borrow::Cow::Owned(self.nodes_at(size)?)),
            None => (self.input_size(), std::borrow::Cow::Borrowed(&self.nodes)),
        })
    }

    fn classes(&self) -> i64 {
        Network::classes(self)
    }
}
