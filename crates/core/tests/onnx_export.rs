//! ONNX export's structure: opset, dynamic batch, initializers named by PyTorch keys, a well-formed graph for every
//! layer type, metadata, the error for a layer without an ONNX form, and the atomic write. Numbers are compared with
//! onnxruntime in `__test__/onnx-export.spec.ts`.

use std::collections::{BTreeMap, HashSet};

use convkit_core::onnx::proto::tensor_shape_proto::dimension::Value;
use convkit_core::onnx::proto::{type_proto, ModelProto, ValueInfoProto};
use convkit_core::onnx::{self, OPSET};
use convkit_core::{Error, Layer, ModelSpec, Network, LAYER_TYPES};
use prost::Message;
use tch::Device;

/// The spec the ava test checks against onnxruntime too: every layer type, in the forms with special cases.
fn every_layer() -> ModelSpec {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../__test__/fixtures/onnx-every-layer.json"
    );
    ModelSpec::from_json(&std::fs::read_to_string(file).unwrap()).unwrap()
}

fn kinds(layers: &[Layer], into: &mut HashSet<&'static str>) {
    for layer in layers {
        into.insert(layer.kind());
        match layer {
            Layer::Sequential(s) => kinds(&s.layers, into),
            Layer::Residual(r) => {
                kinds(&r.layers, into);
                kinds(r.shortcut.as_deref().unwrap_or_default(), into);
            }
            _ => {}
        }
    }
}

fn dims(value: &ValueInfoProto) -> Vec<String> {
    let Some(type_proto::Value::TensorType(t)) = value.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        panic!("{:?} is not a tensor", value.name)
    };
    t.shape
        .as_ref()
        .unwrap()
        .dim
        .iter()
        .map(|d| match d.value.as_ref().unwrap() {
            Value::DimValue(n) => n.to_string(),
            Value::DimParam(p) => p.clone(),
        })
        .collect()
}

fn export(spec: ModelSpec, metadata: &BTreeMap<String, String>) -> ModelProto {
    let net = Network::new(spec, Device::Cpu).unwrap();
    ModelProto::decode(onnx::to_bytes(&net, metadata).unwrap().as_slice()).unwrap()
}

#[test]
fn the_reference_network_exports_at_opset_17_with_a_dynamic_batch() {
    let metadata = BTreeMap::from([("b".to_string(), "2".to_string()), ("a".to_string(), "1".to_string())]);
    let model = export(ModelSpec::reference([3, 32, 32], 10), &metadata);
    assert_eq!(model.opset_import.len(), 1);
    assert_eq!(model.opset_import[0].version, Some(OPSET));
    assert_eq!(model.opset_import[0].domain.as_deref(), Some(""));
    assert_eq!(model.producer_name.as_deref(), Some("convkit"));
    let props: Vec<(&str, &str)> = model
        .metadata_props
        .iter()
        .map(|p| (p.key.as_deref().unwrap(), p.value.as_deref().unwrap()))
        .collect();
    assert_eq!(
        props,
        [("a", "1"), ("b", "2"), ("convkit.version", env!("CARGO_PKG_VERSION"))]
    );

    let graph = model.graph.unwrap();
    assert_eq!(graph.input.len(), 1);
    assert_eq!(graph.input[0].name.as_deref(), Some("input"));
    assert_eq!(dims(&graph.input[0]), ["N", "3", "32", "32"]);
    assert_eq!(graph.output[0].name.as_deref(), Some("logits"));
    assert_eq!(dims(&graph.output[0]), ["N", "10"]);

    let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_deref().unwrap()).collect();
    assert_eq!(
        ops,
        ["Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Flatten", "Gemm", "Relu", "Gemm"]
    );
    assert_eq!(graph.node[0].name.as_deref(), Some("/conv1/Conv"));
    assert_eq!(graph.node.last().unwrap().output, ["logits"]);
    let names: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "conv1.weight",
            "conv1.bias",
            "conv2.weight",
            "conv2.bias",
            "fc1.weight",
            "fc1.bias",
            "fc2.weight",
            "fc2.bias"
        ]
    );
    // float32, little-endian, in PyTorch's [out, in] layout.
    let fc1 = &graph.initializer[4];
    assert_eq!(fc1.dims, [512, 64 * 8 * 8]);
    assert_eq!(fc1.raw_data.as_ref().unwrap().len(), 512 * 64 * 8 * 8 * 4);
}

#[test]
fn every_layer_type_exports_to_a_well_formed_graph() {
    let spec = every_layer();
    let mut covered = HashSet::new();
    kinds(&spec.layers, &mut covered);
    let missing: Vec<&&str> = LAYER_TYPES.iter().filter(|t| !covered.contains(**t)).collect();
    assert!(
        missing.is_empty(),
        "__test__/fixtures/onnx-every-layer.json lacks {missing:?}: add them so their ONNX forms are checked"
    );

    let graph = export(spec, &BTreeMap::new()).graph.unwrap();
    // Topological order: each input is the graph's, an initializer, or an earlier node's output, named once.
    let mut known: HashSet<String> = graph.initializer.iter().map(|t| t.name.clone().unwrap()).collect();
    known.insert("input".into());
    for node in &graph.node {
        for input in &node.input {
            assert!(
                known.contains(input),
                "{:?} reads {input:?} before it exists",
                node.name
            );
        }
        for output in &node.output {
            assert!(known.insert(output.clone()), "{output:?} is produced twice");
        }
    }
    assert_eq!(graph.node.last().unwrap().output, ["logits"]);
    let ops: HashSet<&str> = graph.node.iter().map(|n| n.op_type.as_deref().unwrap()).collect();
    for op in [
        "BatchNormalization",
        "Clip",
        "Erf",
        "HardSigmoid",
        "HardSwish",
        "GlobalAveragePool",
        "Pad",
        "AveragePool",
        "MaxPool",
        "Add",
        "Gemm",
    ] {
        assert!(ops.contains(op), "no {op} in {ops:?}");
    }
    assert!(!ops.contains("Dropout"), "dropout is left out of an inference graph");
    // The running statistics are initializers; the batch counter is not needed.
    let names: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_deref().unwrap()).collect();
    assert!(names.contains("bn1.running_var") && names.contains("res2.downsample.1.running_mean"));
    assert!(!names.iter().any(|n| n.ends_with("num_batches_tracked")));
}

#[test]
fn a_layer_without_an_onnx_form_is_an_error_naming_it() {
    let spec = ModelSpec::from_json(
        r#"{"inputShape":[3,8,8],"layers":[
            {"type":"conv2d","outChannels":4,"kernelSize":3,"stride":2,"padding":1},
            {"type":"sequential","layers":[{"type":"relu"},{"type":"adaptiveavgpool2d","outputSize":3}]},
            {"type":"flatten"},{"type":"linear","outFeatures":2}]}"#,
    )
    .unwrap();
    let net = Network::new(spec, Device::Cpu).unwrap();
    match onnx::to_bytes(&net, &BTreeMap::new()) {
        Err(e @ Error::NotExportable { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains("layers[1].layers[1] `seq1.1` (adaptiveavgpool2d)") && message.contains("4x4"),
                "{message}"
            );
            assert_eq!(e.code(), "NOT_EXPORTABLE");
        }
        other => panic!("expected NotExportable, got {:?}", other.map(|b| b.len())),
    }
}

#[test]
fn the_file_is_written_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, b"old").unwrap();
    let net = Network::new(ModelSpec::reference([1, 8, 8], 3), Device::Cpu).unwrap();
    onnx::export(&net, &path, &BTreeMap::new()).unwrap();
    let written = std::fs::read(&path).unwrap();
    assert_eq!(ModelProto::decode(written.as_slice()).unwrap().ir_version, Some(8));
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["model.onnx"], "no temporary file is left beside it");
}
