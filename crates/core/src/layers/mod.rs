//! The layer types a model is built from. Each type is declared once, in its own file: its fields (with
//! serde, as users write them in a spec), its shape inference and tensors ([`LayerKind::declare`]), its
//! forward pass ([`LayerKind::forward`]) and its ONNX form ([`LayerKind::onnx`]). [`layers!`] below lists
//! them; that list is the only other place a new type is named. TypeScript's side is `ts/spec/layers.ts`,
//! checked against this list by `__test__/spec-conformance.spec.ts`.

mod activation;
mod batchnorm;
mod conv;
mod dropout;
mod layer_norm;
mod layer_scale;
mod linear;
mod pool;
mod residual;
mod scale;
mod sequential;
mod shape;
mod squeeze_excitation;
pub mod values;

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::distributed::ProcessGroup;
use crate::error::{Error, Result};
use crate::onnx::OnnxGraph;
use crate::weights::{Buffer, Param, Precision};

pub use activation::{Gelu, Hardsigmoid, Hardswish, Relu, Relu6, Sigmoid, Silu};
pub use batchnorm::Batchnorm2d;
pub use conv::Conv2d;
pub use dropout::Dropout;
pub use layer_norm::Layernorm2d;
pub use layer_scale::Layerscale;
pub use linear::Linear;
pub use pool::{Adaptiveavgpool2d, Adaptivemaxpool2d, Avgpool2d, Maxpool2d};
pub use residual::Residual;
pub use scale::Scale;
pub use sequential::Sequential;
pub use shape::{Flatten, Identity};
pub use squeeze_excitation::Se;

/// The permutation that shows an `[N, C, H, W]` tensor as `[N, H, W, C]`, and the one back.
pub(crate) const TO_NHWC: [i64; 4] = [0, 2, 3, 1];
pub(crate) const TO_NCHW: [i64; 4] = [0, 3, 1, 2];

/// Runs `f` at each position over the channels: on `x` (`[N, C, H, W]`) seen as `[N, H, W, C]`, where the channels
/// are the last dimension, with its result seen as NCHW again. ConvNeXt's layer norm and linear layers work so, as
/// PyTorch's do between two permutes.
pub(crate) fn over_channels(x: &Tensor, f: impl FnOnce(Tensor) -> Result<Tensor>) -> Result<Tensor> {
    Ok(f(x.f_permute(TO_NHWC)?)?.f_permute(TO_NCHW)?)
}

/// How a tensor starts out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TensorInit {
    /// Uniform in ±bound.
    Uniform(f64),
    /// Normal with mean 0 and this standard deviation.
    Normal(f64),
    /// PyTorch's default conv init, then the first `min(out, in)` filters set to the identity.
    DiracOver(f64),
    Ones,
    Zeros,
    /// Every element this value (layer scale's 1e-6).
    Constant(f64),
}

/// A tensor a layer holds: its field (`weight`), shape and initialization.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorDecl {
    pub field: String,
    pub shape: Vec<i64>,
    pub init: TensorInit,
    pub kind: Kind,
    /// A parameter the spec keeps fixed whatever else trains (batch norm's `frozenScale`).
    pub frozen: bool,
}

impl TensorDecl {
    pub fn float(field: &str, shape: Vec<i64>, init: TensorInit) -> Self {
        TensorDecl {
            field: field.into(),
            shape,
            init,
            kind: Kind::Float,
            frozen: false,
        }
    }
}

/// What a layer declares once its input shape is known.
#[derive(Debug, Default)]
pub struct Declared {
    pub output: Vec<i64>,
    /// Trainable tensors, in PyTorch's order.
    pub params: Vec<TensorDecl>,
    /// Saved, not trained (batch norm's running statistics).
    pub buffers: Vec<TensorDecl>,
    /// Nested layers: a sequential's one branch; a residual's body and, when projected, its shortcut.
    pub branches: Vec<Vec<Node>>,
}

impl Declared {
    pub fn shape(output: Vec<i64>) -> Self {
        Declared {
            output,
            ..Declared::default()
        }
    }
}

/// A layer placed in a network: its spec, its full tensor prefix and shapes, and where its tensors live.
#[derive(Debug, Clone)]
pub struct Node {
    pub layer: Layer,
    /// The prefix of its tensors (`layer1.0.conv1`); empty for an unnamed layer without tensors.
    pub path: String,
    /// Where it sits in the spec (`layers[3].layers[0]`), for messages about layers that have no `path`.
    pub spec_path: String,
    pub input_shape: Vec<i64>,
    pub output_shape: Vec<i64>,
    /// The tensors it holds, as declared.
    pub param_decls: Vec<TensorDecl>,
    pub buffer_decls: Vec<TensorDecl>,
    /// Indices into the network's parameters and buffers, in declaration order; set when a network is built.
    pub params: Vec<usize>,
    pub buffers: Vec<usize>,
    pub branches: Vec<Vec<Node>>,
    /// False when the spec froze this layer or a block around it.
    pub trainable: bool,
    /// Nesting depth, 0 at the top.
    pub depth: usize,
}

impl Node {
    /// Every node under this one (not itself), depth first.
    pub fn descendants(&self) -> impl Iterator<Item = &Node> {
        let mut stack: Vec<&Node> = self.branches.iter().rev().flat_map(|b| b.iter().rev()).collect();
        std::iter::from_fn(move || {
            let node = stack.pop()?;
            stack.extend(node.branches.iter().rev().flat_map(|b| b.iter().rev()));
            Some(node)
        })
    }
}

/// How layers without a `name` are named in a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// `conv1`, `bn1`, `fc1`, … counted per kind: the top level and residual bodies, like PyTorch modules
    /// that name their children (`BasicBlock.conv1`).
    ByKind,
    /// `0`, `1`, … by position, like `nn.Sequential`.
    ByIndex,
}

/// Names layers inside one block and checks that names are valid and unique there.
#[derive(Debug)]
pub struct Scope {
    prefix: String,
    /// Where this scope sits in the spec, for error messages (`layers[3].layers[0]`).
    spec_path: String,
    naming: Naming,
    counters: HashMap<&'static str, usize>,
    used: HashSet<String>,
    depth: usize,
    trainable: bool,
}

impl Scope {
    pub fn root() -> Self {
        Scope::new(String::new(), "layers".into(), Naming::ByKind, 0, true)
    }

    fn new(prefix: String, spec_path: String, naming: Naming, depth: usize, trainable: bool) -> Self {
        Scope {
            prefix,
            spec_path,
            naming,
            counters: HashMap::new(),
            used: HashSet::new(),
            depth,
            trainable,
        }
    }

    /// The scope of a block's children: under `path`, at `field` of the spec.
    pub fn child(&self, path: &str, spec_path: String, naming: Naming, trainable: bool) -> Scope {
        Scope::new(
            path.to_owned(),
            spec_path,
            naming,
            self.depth + 1,
            self.trainable && trainable,
        )
    }

    /// An error about the layer at `index` of this scope.
    pub fn error(&self, index: usize, message: impl std::fmt::Display) -> Error {
        Error::InvalidSpec(format!("{}[{index}]: {message}", self.spec_path))
    }

    pub fn spec_path(&self, index: usize, field: &str) -> String {
        format!("{}[{index}].{field}", self.spec_path)
    }

    fn full(&self, local: &str) -> String {
        if self.prefix.is_empty() {
            local.to_owned()
        } else {
            format!("{}.{local}", self.prefix)
        }
    }

    /// The local name of the layer at `index`: its own, or one made up by this scope's naming. Layers
    /// without tensors and without a name get none.
    fn name_for(&mut self, index: usize, given: Option<&str>, auto: Option<&'static str>) -> Result<Option<String>> {
        let local = match (given, self.naming, auto) {
            (Some(name), _, _) => name.to_owned(),
            (None, Naming::ByIndex, _) => index.to_string(),
            (None, Naming::ByKind, Some(prefix)) => {
                let n = self.counters.entry(prefix).or_insert(0);
                *n += 1;
                format!("{prefix}{n}")
            }
            (None, Naming::ByKind, None) => return Ok(None),
        };
        // Anything but the key separator would do for PyTorch; hyphens are in torchvision's RegNet keys (`block1-0`).
        let valid = !local.is_empty() && local.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(self.error(
                index,
                format!("name {local:?}: expected letters, digits, underscores and hyphens"),
            ));
        }
        if !self.used.insert(local.clone()) {
            return Err(self.error(index, format!("name {local:?} is used twice in the same block")));
        }
        Ok(Some(local))
    }

    /// Resolves a list of layers from `input`, returning their nodes (tensor indices not yet assigned).
    pub fn resolve(&mut self, layers: &[Layer], input: &[i64]) -> Result<Vec<Node>> {
        let mut shape = input.to_vec();
        let mut nodes = Vec::with_capacity(layers.len());
        for (index, layer) in layers.iter().enumerate() {
            let local = self.name_for(index, layer.name(), layer.auto_name())?;
            let path = local.as_deref().map(|l| self.full(l)).unwrap_or_default();
            let trainable = self.trainable && layer.trainable().unwrap_or(true);
            let mut ctx = DeclareCtx {
                scope: self,
                index,
                path: &path,
                trainable,
            };
            let declared = layer.declare(&shape, &mut ctx)?;
            if declared.output.iter().any(|&d| d <= 0) {
                return Err(self.error(
                    index,
                    format!(
                        "{} turns {shape:?} into {:?}; the input is too small",
                        layer.kind(),
                        declared.output
                    ),
                ));
            }
            nodes.push(Node {
                layer: layer.clone(),
                path,
                spec_path: format!("{}[{index}]", self.spec_path),
                input_shape: shape.clone(),
                output_shape: declared.output.clone(),
                param_decls: declared.params,
                buffer_decls: declared.buffers,
                params: Vec::new(),
                buffers: Vec::new(),
                branches: declared.branches,
                trainable,
                depth: self.depth,
            });
            shape = declared.output;
        }
        Ok(nodes)
    }
}

/// What a layer sees while declaring itself: its place, for naming children and for errors.
pub struct DeclareCtx<'a> {
    scope: &'a mut Scope,
    pub index: usize,
    pub path: &'a str,
    pub trainable: bool,
}

impl DeclareCtx<'_> {
    pub fn error(&self, message: impl std::fmt::Display) -> Error {
        self.scope.error(self.index, message)
    }

    /// Resolves nested layers found at `field` of this layer, under `child` (appended to this layer's path).
    pub fn nested(
        &mut self,
        field: &str,
        child: Option<&str>,
        naming: Naming,
        layers: &[Layer],
        input: &[i64],
    ) -> Result<Vec<Node>> {
        let path = match child {
            Some(c) if self.path.is_empty() => c.to_owned(),
            Some(c) => format!("{}.{c}", self.path),
            None => self.path.to_owned(),
        };
        let mut scope = self
            .scope
            .child(&path, self.scope.spec_path(self.index, field), naming, self.trainable);
        scope.resolve(layers, input)
    }

    /// Checks `input` is `[channels, height, width]` and returns it.
    pub fn spatial(&self, input: &[i64]) -> Result<[i64; 3]> {
        <[i64; 3]>::try_from(input).map_err(|_| {
            self.error(format!(
                "expects a [channels, height, width] input, got {input:?}; is it after a flatten?"
            ))
        })
    }
}

/// A forward pass in progress: the network's tensors the nodes index, how its layers compute, and whether it
/// trains.
pub struct Forward<'a> {
    pub params: &'a [Param],
    pub buffers: &'a [Buffer],
    pub precision: Precision,
    /// Batch norm keeps its running statistics even where it learns (see `Network::frozen_batchnorm_statistics`).
    pub frozen_batchnorm_statistics: bool,
    /// Batch norms that learn take their statistics over every rank's batch through this group.
    pub sync_batchnorm: Option<&'a ProcessGroup>,
    pub train: bool,
    /// Keeps one layer's output as the pass computes it (Grad-CAM's target layer); `None` in training.
    pub capture: Option<&'a Capture>,
}

/// One layer's output from a forward pass, still in the autograd graph: the node whose `path` (`layer4`) or
/// `spec_path` (`layers[3]`, for layers without tensors) is `layer`.
pub struct Capture {
    pub layer: String,
    output: std::sync::Mutex<Option<Tensor>>,
}

impl Capture {
    pub fn new(layer: &str) -> Self {
        Capture {
            layer: layer.to_owned(),
            output: std::sync::Mutex::new(None),
        }
    }

    pub fn matches(&self, node: &Node) -> bool {
        node.path == self.layer || node.spec_path == self.layer
    }

    /// The captured output; an error naming the layer when the pass never reached it.
    pub fn take(&self) -> Result<Tensor> {
        let taken = self
            .output
            .lock()
            .map_err(|_| Error::torch("layer capture poisoned"))?
            .take();
        taken.ok_or_else(|| Error::torch(format!("layer {} did not run in the forward pass", self.layer)))
    }
}

impl Forward<'_> {
    pub fn param(&self, node: &Node, i: usize) -> &Tensor {
        &self.params[node.params[i]].tensor
    }

    pub fn buffer(&self, node: &Node, i: usize) -> &Tensor {
        &self.buffers[node.buffers[i]].tensor
    }

    /// `t` in the type convolutions and linear layers compute in (bf16 under the bf16 precision).
    pub fn low(&self, t: &Tensor) -> Result<Tensor> {
        self.precision.compute(t)
    }

    /// Whether this node learns in this pass: training, and some parameter in it (or in the layers it holds) is
    /// trainable. A frozen layer behaves as in evaluation: batch norm uses its running statistics, stochastic
    /// depth keeps every path.
    pub fn learning(&self, node: &Node) -> bool {
        let trainable = |n: &Node| n.params.iter().any(|&i| self.params[i].trainable);
        self.train && (trainable(node) || node.descendants().any(trainable))
    }

    /// Runs `nodes` in order on `x`.
    pub fn run(&self, nodes: &[Node], mut x: Tensor) -> Result<Tensor> {
        for node in nodes {
            x = node.layer.forward(node, self, x)?;
            if let Some(capture) = self.capture.filter(|c| c.matches(node)) {
                let mut output = capture
                    .output
                    .lock()
                    .map_err(|_| Error::torch("layer capture poisoned"))?;
                *output = Some(x.shallow_clone());
            }
        }
        Ok(x)
    }
}

/// One layer type: how it is declared and how it runs. Implemented by each file of this module.
pub trait LayerKind {
    /// The prefix of automatic names for layers that hold tensors (`conv` → `conv1`, `conv2`, …).
    const AUTO_NAME: Option<&'static str> = None;
    fn name(&self) -> Option<&str> {
        None
    }
    fn trainable(&self) -> Option<bool> {
        None
    }
    /// Checks the layer against its input shape; returns the output shape and the tensors it holds.
    fn declare(&self, input: &[i64], ctx: &mut DeclareCtx) -> Result<Declared>;
    /// Runs the layer on a batch `[N, ...input shape]`.
    fn forward(&self, node: &Node, f: &Forward, x: Tensor) -> Result<Tensor>;
    /// Adds the layer's inference-time ONNX nodes (opset 17) on the value `input` to `g`; returns the name of its
    /// output. A layer that ONNX cannot express in the form this one has returns [`OnnxGraph::unsupported`].
    fn onnx(&self, node: &Node, g: &mut OnnxGraph, input: &str) -> Result<String>;
}

/// Marks where a nested layer's own path ends in an error message, so the spec's parser can join the paths:
/// serde loses paths inside a layer, which is parsed on its own once its `type` is known.
pub const PATH_MARK: char = '\u{1f}';

/// An error from inside a layer as `<path within the layer><PATH_MARK><message>`, nested paths joined.
fn nested_error(e: serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    let inner = e.inner().to_string();
    let (deeper, message) = match inner.split_once(PATH_MARK) {
        Some((p, m)) => (p.to_owned(), m.to_owned()),
        None => (String::new(), inner),
    };
    let joined = match (path.as_str(), deeper.as_str()) {
        (".", "") => String::new(),
        (".", d) => d.to_owned(),
        (p, "") => p.to_owned(),
        (p, d) => format!("{p}.{d}"),
    };
    format!("{joined}{PATH_MARK}{message}")
}

/// Declares the `Layer` enum over every layer type, with its `type` name, and dispatches to each.
macro_rules! layers {
    ($($variant:ident = $tag:literal),* $(,)?) => {
        /// One layer of a model, as written in a spec: `{"type": "conv2d", "outChannels": 32, ...}`.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(tag = "type")]
        pub enum Layer {
            $(#[serde(rename = $tag)] $variant($variant),)*
        }

        impl<'de> Deserialize<'de> for Layer {
            fn deserialize<D: serde::Deserializer<'de>>(de: D) -> std::result::Result<Self, D::Error> {
                use serde::de::Error as _;
                let mut fields = serde_json::Map::deserialize(de)?;
                let tag = match fields.remove("type") {
                    Some(serde_json::Value::String(t)) => t,
                    Some(_) => return Err(D::Error::custom("field `type`: expected a string naming the layer type")),
                    None => return Err(D::Error::missing_field("type")),
                };
                let fields = serde_json::Value::Object(fields);
                match tag.as_str() {
                    $($tag => serde_path_to_error::deserialize::<_, $variant>(fields)
                        .map(Layer::$variant)
                        .map_err(|e| D::Error::custom(nested_error(e))),)*
                    other => Err(D::Error::unknown_variant(other, LAYER_TYPES)),
                }
            }
        }

        /// Every layer type, as users write it.
        pub const LAYER_TYPES: &[&str] = &[$($tag),*];

        impl Layer {
            pub fn kind(&self) -> &'static str {
                match self { $(Layer::$variant(_) => $tag,)* }
            }
            pub fn name(&self) -> Option<&str> {
                match self { $(Layer::$variant(l) => l.name(),)* }
            }
            pub fn trainable(&self) -> Option<bool> {
                match self { $(Layer::$variant(l) => l.trainable(),)* }
            }
            fn auto_name(&self) -> Option<&'static str> {
                match self { $(Layer::$variant(_) => <$variant as LayerKind>::AUTO_NAME,)* }
            }
            pub fn declare(&self, input: &[i64], ctx: &mut DeclareCtx) -> Result<Declared> {
                match self { $(Layer::$variant(l) => l.declare(input, ctx),)* }
            }
            pub fn forward(&self, node: &Node, f: &Forward, x: Tensor) -> Result<Tensor> {
                match self { $(Layer::$variant(l) => l.forward(node, f, x),)* }
            }
            pub fn onnx(&self, node: &Node, g: &mut OnnxGraph, input: &str) -> Result<String> {
                match self { $(Layer::$variant(l) => l.onnx(node, g, input),)* }
            }
        }
    };
}

layers! {
    Conv2d = "conv2d",
    Batchnorm2d = "batchnorm2d",
    Layernorm2d = "layernorm2d",
    Layerscale = "layerscale",
    Linear = "linear",
    Relu = "relu",
    Relu6 = "relu6",
    Gelu = "gelu",
    Silu = "silu",
    Hardswish = "hardswish",
    Hardsigmoid = "hardsigmoid",
    Sigmoid = "sigmoid",
    Maxpool2d = "maxpool2d",
    Avgpool2d = "avgpool2d",
    Adaptiveavgpool2d = "adaptiveavgpool2d",
    Adaptivemaxpool2d = "adaptivemaxpool2d",
    Flatten = "flatten",
    Identity = "identity",
    Dropout = "dropout",
    Scale = "scale",
    Sequential = "sequential",
    Residual = "residual",
    Se = "se",
}
