//! The graph an export builds: ONNX nodes in order, the network's tensors as initializers named by their PyTorch
//! keys (`conv1.weight`), a few constants, and node and value names as PyTorch's exporter gives them
//! (`/conv1/Conv`, `/conv1/Conv_output_0`). Each layer adds its own nodes through
//! [`LayerKind::onnx`](crate::layers::LayerKind::onnx); blocks call [`OnnxGraph::run`] on their branches.

use std::collections::{HashMap, HashSet};

use tch::{Device, Kind, Tensor};

use super::proto::attribute_proto::AttributeType;
use super::proto::tensor_proto::DataType;
use super::proto::{AttributeProto, NodeProto, TensorProto};
use crate::error::{Error, Result};
use crate::layers::{Node, TO_NCHW, TO_NHWC};
use crate::weights::{Buffer, Param};

/// The value of one attribute of an ONNX node.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
}

impl Attr {
    fn proto(&self, name: &str) -> AttributeProto {
        let mut a = AttributeProto {
            name: Some(name.to_owned()),
            ..AttributeProto::default()
        };
        let kind = match self {
            Attr::Int(i) => {
                a.i = Some(*i);
                AttributeType::Int
            }
            Attr::Ints(v) => {
                a.ints = v.clone();
                AttributeType::Ints
            }
            Attr::Float(f) => {
                a.f = Some(*f);
                AttributeType::Float
            }
        };
        a.r#type = Some(kind as i32);
        a
    }
}

/// An ONNX graph being built from a network's nodes.
pub struct OnnxGraph<'a> {
    params: &'a [Param],
    buffers: &'a [Buffer],
    pub(super) nodes: Vec<NodeProto>,
    pub(super) initializers: Vec<TensorProto>,
    /// Every name given to a node, value or initializer so far: ONNX wants values named once.
    names: HashSet<String>,
    /// Scalar constants by their bits, each stored once.
    scalars: HashMap<u32, String>,
}

impl<'a> OnnxGraph<'a> {
    /// An empty graph over a network's tensors, with `reserved` (the graph's input and output) already taken.
    pub(super) fn new(params: &'a [Param], buffers: &'a [Buffer], reserved: &[&str]) -> Self {
        OnnxGraph {
            params,
            buffers,
            nodes: Vec::new(),
            initializers: Vec::new(),
            names: reserved.iter().map(|s| s.to_string()).collect(),
            scalars: HashMap::new(),
        }
    }

    /// Adds `nodes` in order on the value `input`; returns the name of the last one's output.
    pub fn run(&mut self, nodes: &[Node], input: &str) -> Result<String> {
        let mut x = input.to_owned();
        for node in nodes {
            x = node.layer.onnx(node, self, &x)?;
        }
        Ok(x)
    }

    /// The initializer of `node`'s parameter `i` (in declaration order), named by its PyTorch key.
    pub fn param(&mut self, node: &Node, i: usize) -> Result<String> {
        let p = &self.params[node.params[i]];
        self.initializer(&p.name, &p.tensor)
    }

    /// The initializer of `node`'s buffer `i` (batch norm's running statistics), named by its PyTorch key.
    pub fn buffer(&mut self, node: &Node, i: usize) -> Result<String> {
        let b = &self.buffers[node.buffers[i]];
        self.initializer(&b.name, &b.tensor)
    }

    fn initializer(&mut self, name: &str, tensor: &Tensor) -> Result<String> {
        // A tensor is read once even when several nodes use it.
        if self.names.contains(name) && self.initializers.iter().any(|t| t.name.as_deref() == Some(name)) {
            return Ok(name.to_owned());
        }
        // Weights may be float64 or laid out channels_last; ONNX gets contiguous float32.
        let t = tensor
            .f_detach()?
            .f_to_kind(Kind::Float)?
            .f_to_device(Device::Cpu)?
            .f_contiguous()?;
        let numel = t.numel();
        let mut values = vec![0f32; numel];
        t.f_copy_data(&mut values, numel)?;
        let name = self.fresh(name);
        self.initializers.push(float_tensor(&name, &t.size(), &values));
        Ok(name)
    }

    /// A float32 constant of shape `dims`, named `name` (made unique).
    pub fn constant(&mut self, name: &str, dims: &[i64], values: &[f32]) -> String {
        let name = self.fresh(name);
        self.initializers.push(float_tensor(&name, dims, values));
        name
    }

    /// An int64 constant of shape `dims` (a Pad node's `pads`), named `name` (made unique).
    pub fn constant_i64(&mut self, name: &str, dims: &[i64], values: &[i64]) -> String {
        let name = self.fresh(name);
        self.initializers.push(TensorProto {
            name: Some(name.clone()),
            dims: dims.to_vec(),
            data_type: Some(DataType::Int64 as i32),
            raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..TensorProto::default()
        });
        name
    }

    /// A float32 scalar constant, shared by every node that uses the same value.
    pub fn scalar(&mut self, value: f32) -> String {
        if let Some(name) = self.scalars.get(&value.to_bits()) {
            return name.clone();
        }
        let name = self.constant(&format!("/Constant_{value}"), &[], &[value]);
        self.scalars.insert(value.to_bits(), name.clone());
        name
    }

    /// Adds an `op_type` node for `node` on `inputs` (an empty name skips an optional input); returns its output.
    pub fn op(&mut self, node: &Node, op_type: &str, inputs: &[&str], attrs: &[(&str, Attr)]) -> String {
        let scope = if node.path.is_empty() {
            &node.spec_path
        } else {
            &node.path
        };
        let name = self.fresh(&format!("/{scope}/{op_type}"));
        let output = self.fresh(&format!("{name}_output_0"));
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            name: Some(name),
            op_type: Some(op_type.to_owned()),
            attribute: attrs.iter().map(|(n, a)| a.proto(n)).collect(),
            ..NodeProto::default()
        });
        output
    }

    /// [`crate::layers::over_channels`] as ONNX: the nodes `f` adds on the input transposed to NHWC, their output
    /// transposed back.
    pub fn over_channels(
        &mut self,
        node: &Node,
        input: &str,
        f: impl FnOnce(&mut Self, &str) -> Result<String>,
    ) -> Result<String> {
        let nhwc = self.op(node, "Transpose", &[input], &[("perm", Attr::Ints(TO_NHWC.to_vec()))]);
        let out = f(self, &nhwc)?;
        Ok(self.op(node, "Transpose", &[&out], &[("perm", Attr::Ints(TO_NCHW.to_vec()))]))
    }

    /// The error for a layer that has no ONNX form, naming it by its place in the spec and its tensor prefix.
    pub fn unsupported(&self, node: &Node, reason: impl std::fmt::Display) -> Error {
        let layer = if node.path.is_empty() {
            format!("{} ({})", node.spec_path, node.layer.kind())
        } else {
            format!("{} `{}` ({})", node.spec_path, node.path, node.layer.kind())
        };
        Error::NotExportable {
            layer,
            reason: reason.to_string(),
        }
    }

    /// Renames the value `from` to `to` wherever it appears (the last layer's output becomes `logits`); a value no
    /// node produces (the graph's input) gets an Identity node instead.
    pub(super) fn rename_output(&mut self, from: &str, to: &str) {
        let produced = self.nodes.iter().any(|n| n.output.iter().any(|o| o == from));
        if !produced {
            let name = self.fresh("/Identity");
            self.nodes.push(NodeProto {
                input: vec![from.to_owned()],
                output: vec![to.to_owned()],
                name: Some(name),
                op_type: Some("Identity".into()),
                ..NodeProto::default()
            });
            return;
        }
        for node in &mut self.nodes {
            for value in node.input.iter_mut().chain(node.output.iter_mut()) {
                if value == from {
                    *value = to.to_owned();
                }
            }
        }
    }

    /// `base`, or `base_1`, `base_2`, … when taken.
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_owned();
        let mut n = 0;
        while self.names.contains(&name) {
            n += 1;
            name = format!("{base}_{n}");
        }
        self.names.insert(name.clone());
        name
    }
}

fn float_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.to_owned()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        // raw_data is little-endian by ONNX's definition, whatever the host.
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..TensorProto::default()
    }
}
