//! ONNX export: a [`Network`](crate::Network) as an ONNX model at opset 17, for onnxruntime and anything else that reads ONNX.
//!
//! The graph takes `input`, float32 `[N, C, H, W]` with a dynamic batch dimension `N`, and returns `logits`,
//! `[N, classes]`. Each layer writes its own ONNX form ([`LayerKind::onnx`](crate::layers::LayerKind::onnx));
//! one that has none is an [`Error::NotExportable`](crate::Error::NotExportable) naming it. Weights are
//! initializers named by their PyTorch keys. The file is encoded by the message types generated from ONNX's own
//! `onnx.proto` ([`proto`]).

mod graph;
pub mod proto;

use std::collections::BTreeMap;
use std::path::Path;

use prost::Message;

pub use graph::{Attr, OnnxGraph};
use proto::tensor_proto::DataType;
use proto::tensor_shape_proto::{dimension, Dimension};
use proto::{
    type_proto, GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};

use crate::atomic_file::write_atomic;
use crate::error::Result;
use crate::layers::Node;
use crate::weights::NetworkTensors;

/// The operator set exported models import: 17, so GELU is written out with `Erf` (ONNX's `Gelu` is opset 20).
pub const OPSET: i64 = 17;
/// The IR version that came with opset 17 (ONNX 1.12).
const IR_VERSION: i64 = 8;
/// The graph's input and output.
pub const INPUT: &str = "input";
pub const OUTPUT: &str = "logits";
/// The symbolic batch dimension.
const BATCH: &str = "N";

/// The metadata key of the ConvKit version that wrote a file (its `producer_version` too).
pub const VERSION_KEY: &str = crate::metadata::VERSION;

/// What export reads of a network. [`Network`](crate::Network) implements it: the network is built from the
/// layers, which write themselves into an [`OnnxGraph`], so this module names what it needs instead of the network.
pub trait Exportable: NetworkTensors {
    fn input_channels(&self) -> i64;
    /// The `[height, width]` prediction feeds the network, and its layers placed for that size.
    fn eval_nodes(&self) -> Result<([i64; 2], std::borrow::Cow<'_, [Node]>)>;
    fn classes(&self) -> i64;
}

/// The network as an ONNX model; `metadata` becomes its `metadata_props`, in key order, with
/// [`VERSION_KEY`] added.
pub fn to_model(net: &impl Exportable, metadata: &BTreeMap<String, String>) -> Result<ModelProto> {
    let mut metadata = metadata.clone();
    metadata.insert(VERSION_KEY.into(), env!("CARGO_PKG_VERSION").into());
    let mut g = OnnxGraph::new(net.params(), net.buffers(), &[INPUT, OUTPUT]);
    // The graph takes the input prediction uses: the evaluation size when the network has one.
    let c = net.input_channels();
    let ([h, w], nodes) = net.eval_nodes()?;
    let last = g.run(&nodes, INPUT)?;
    g.rename_output(&last, OUTPUT);
    let graph = GraphProto {
        name: Some("convkit".into()),
        node: g.nodes,
        initializer: g.initializers,
        input: vec![float_value(INPUT, &[None, Some(c), Some(h), Some(w)])],
        output: vec![float_value(OUTPUT, &[None, Some(net.classes())])],
        ..GraphProto::default()
    };
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        producer_name: Some("convkit".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(format!(
            "A ConvKit image classifier. `{INPUT}`: float32 [N, {c}, {h}, {w}], pixels scaled to [0, 1], then \
             (x - mean) / std per channel (metadata_props say which); `{OUTPUT}`: [N, {}] class scores, before softmax.",
            net.classes()
        )),
        graph: Some(graph),
        metadata_props: metadata
            .iter()
            .map(|(k, v)| StringStringEntryProto {
                key: Some(k.clone()),
                value: Some(v.clone()),
            })
            .collect(),
        ..ModelProto::default()
    })
}

/// The network as the bytes of an `.onnx` file.
pub fn to_bytes(net: &impl Exportable, metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    Ok(to_model(net, metadata)?.encode_to_vec())
}

/// Writes the network to `path` as an ONNX file, atomically: a crash leaves the old file or the new one.
pub fn export(net: &impl Exportable, path: &Path, metadata: &BTreeMap<String, String>) -> Result<()> {
    write_atomic(path, &to_bytes(net, metadata)?)
}

/// A float32 tensor value; `None` dimensions are the batch.
fn float_value(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(n) => dimension::Value::DimValue(*n),
                None => dimension::Value::DimParam(BATCH.into()),
            }),
            ..Dimension::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..TypeProto::default()
        }),
        ..ValueInfoProto::default()
    }
}
