//! The spec a model is built from: the shape of one input and its layers (see [`crate::layers`]), parsed from
//! JSON with errors that name the path of the field at fault, and resolved into a tree of placed layers.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layers::{Conv2d, Flatten, Layer, Linear, Maxpool2d, Node, Relu, Scope, LAYER_TYPES, PATH_MARK};

/// A whole model: the shape of one input (channels, height, width) and its layers in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelSpec {
    pub input_shape: [i64; 3],
    pub layers: Vec<Layer>,
}

/// One row of a model summary: a layer with its place in the tree.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "napi", napi_derive::napi(object))]
pub struct LayerRow {
    /// The layer type (`conv2d`).
    pub kind: String,
    /// The layer's tensor prefix (`layer1.0.conv1`), when it has one.
    pub name: Option<String>,
    /// Nesting depth: 0 at the top, 1 inside a block, ….
    pub depth: u32,
    pub input_shape: Vec<i64>,
    pub output_shape: Vec<i64>,
    /// Parameters of this layer itself, not of layers nested in it.
    pub params: i64,
    /// Whether it trains now.
    pub trainable: bool,
}

impl ModelSpec {
    /// Parses a spec from JSON, naming the path of the field at fault (`layers[3].layers[0].stride`).
    pub fn from_json(json: &str) -> Result<Self> {
        let mut de = serde_json::Deserializer::from_str(json);
        serde_path_to_error::deserialize(&mut de).map_err(spec_error)
    }

    /// Parses a spec that is already a JSON value (as the binding receives it from JavaScript).
    pub fn from_value(value: serde_json::Value) -> Result<Self> {
        serde_path_to_error::deserialize(value).map_err(spec_error)
    }

    /// The spec as JSON, every default written out, so a checkpoint means the same whatever later defaults are.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a spec always serializes")
    }

    /// The reference CIFAR network: two conv/ReLU/pool stages, then two linear layers.
    pub fn reference(input_shape: [i64; 3], classes: i64) -> Self {
        ModelSpec {
            input_shape,
            layers: vec![
                Layer::Conv2d(Conv2d::new(32, 3).padding(1)),
                Layer::Relu(Relu {}),
                Layer::Maxpool2d(Maxpool2d::new(2)),
                Layer::Conv2d(Conv2d::new(64, 3).padding(1)),
                Layer::Relu(Relu {}),
                Layer::Maxpool2d(Maxpool2d::new(2)),
                Layer::Flatten(Flatten {}),
                Layer::Linear(Linear::new(512)),
                Layer::Relu(Relu {}),
                Layer::Linear(Linear::new(classes)),
            ],
        }
    }

    /// Places every layer from the input shape, checking each and naming its tensors (`conv1`, `bn1`, `fc1`, …
    /// at the top level; see [`crate::layers::Naming`]).
    pub fn resolve(&self) -> Result<Vec<Node>> {
        if self.input_shape.iter().any(|&d| d <= 0) {
            return Err(Error::InvalidSpec(format!(
                "field `inputShape`: expected [channels, height, width] of positive sizes, got {:?}",
                self.input_shape
            )));
        }
        if self.layers.is_empty() {
            return Err(Error::InvalidSpec("field `layers`: expected at least one layer".into()));
        }
        let nodes = Scope::root().resolve(&self.layers, &self.input_shape)?;
        let out = &nodes.last().expect("at least one layer").output_shape;
        if out.len() != 1 {
            return Err(Error::InvalidSpec(format!(
                "the last layer must output one score per class (a flat shape), got {out:?}; end with a flatten and a linear layer"
            )));
        }
        Ok(nodes)
    }

    /// How many classes the model scores: the size of the last layer's output.
    pub fn classes(&self) -> Result<i64> {
        Ok(self.resolve()?.last().map(|n| n.output_shape[0]).unwrap_or(0))
    }

    /// Every layer, depth first, with its shapes and parameter count.
    pub fn summary(&self) -> Result<Vec<LayerRow>> {
        Ok(summary_rows(&self.resolve()?, &|node| node.trainable))
    }
}

/// Summary rows for placed layers, depth first; `trainable` decides each row's flag.
pub fn summary_rows(nodes: &[Node], trainable: &dyn Fn(&Node) -> bool) -> Vec<LayerRow> {
    let mut rows = Vec::new();
    for node in nodes {
        rows.push(LayerRow {
            kind: node.layer.kind().to_owned(),
            name: (!node.path.is_empty()).then(|| node.path.clone()),
            depth: node.depth as u32,
            input_shape: node.input_shape.clone(),
            output_shape: node.output_shape.clone(),
            params: node.param_decls.iter().map(|d| d.shape.iter().product::<i64>()).sum(),
            trainable: trainable(node),
        });
        for branch in &node.branches {
            rows.extend(summary_rows(branch, trainable));
        }
    }
    rows
}

/// A serde error with its path, as a spec error; an unknown `type` becomes [`Error::UnknownLayer`].
fn spec_error(err: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let mut path = err.path().to_string();
    let mut message = err.inner().to_string();
    // serde's own line and column refer to the JSON text, which users of a JSON value never see.
    message = message.split(" at line ").next().unwrap_or(&message).to_owned();
    if let Some((inner, rest)) = message.clone().split_once(PATH_MARK) {
        if !inner.is_empty() {
            path = if path == "." {
                inner.to_owned()
            } else {
                format!("{path}.{inner}")
            };
        }
        message = rest.to_owned();
    }
    if let Some(found) = message
        .strip_prefix("unknown variant `")
        .and_then(|rest| rest.split('`').next())
    {
        return Error::UnknownLayer {
            path,
            found: found.to_owned(),
            expected: LAYER_TYPES.join(", "),
        };
    }
    if path == "." {
        Error::InvalidSpec(message)
    } else {
        Error::InvalidSpec(format!("{path}: {message}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::values::{Padding, PaddingMode, Size2};

    fn params_of(nodes: &[Node], name: &str) -> Vec<Vec<i64>> {
        let all: Vec<&Node> = nodes
            .iter()
            .flat_map(|n| std::iter::once(n).chain(n.descendants()))
            .collect();
        let node = all
            .iter()
            .find(|n| n.path == name)
            .unwrap_or_else(|| panic!("no layer {name}"));
        node.param_decls.iter().map(|d| d.shape.clone()).collect()
    }

    #[test]
    fn reference_network_shapes_follow_the_input() {
        let spec = ModelSpec::reference([3, 32, 32], 10);
        let nodes = spec.resolve().unwrap();
        // Two 2x2 pools halve 32 twice: 64 channels of 8x8 reach fc1.
        assert_eq!(params_of(&nodes, "fc1")[0], vec![512, 64 * 8 * 8]);
        assert_eq!(nodes.last().unwrap().output_shape, vec![10]);
        let total: i64 = spec.summary().unwrap().iter().map(|r| r.params).sum();
        assert_eq!(total, 896 + 18_496 + 2_097_664 + 5_130);

        let small = ModelSpec::reference([1, 28, 28], 10).resolve().unwrap();
        assert_eq!(params_of(&small, "fc1")[0], vec![512, 64 * 7 * 7]);
    }

    #[test]
    fn json_round_trip_and_errors_name_the_path() {
        let spec = ModelSpec::reference([3, 32, 32], 10);
        assert_eq!(ModelSpec::from_json(&spec.to_json()).unwrap(), spec);

        let unknown = r#"{"inputShape":[3,8,8],"layers":[{"type":"relu"},{"type":"conv3d"}]}"#;
        match ModelSpec::from_json(unknown) {
            Err(Error::UnknownLayer { path, found, .. }) => {
                assert_eq!(found, "conv3d");
                assert_eq!(path, "layers[1]");
            }
            other => panic!("expected UnknownLayer, got {other:?}"),
        }
        let missing = r#"{"inputShape":[3,8,8],"layers":[{"type":"conv2d","kernelSize":3}]}"#;
        let msg = ModelSpec::from_json(missing).unwrap_err().to_string();
        assert!(msg.contains("layers[0]") && msg.contains("outChannels"), "{msg}");

        let nested_typo = r#"{"inputShape":[3,8,8],"layers":[{"type":"sequential","layers":[{"type":"conv2d","outChannels":4,"kernelSize":3,"strid":2}]}]}"#;
        let msg = ModelSpec::from_json(nested_typo).unwrap_err().to_string();
        assert!(
            msg.contains("layers[0].layers[0].strid: unknown field `strid`"),
            "{msg}"
        );
    }

    #[test]
    fn shape_errors_explain_the_fix() {
        let no_flatten = ModelSpec {
            input_shape: [3, 8, 8],
            layers: vec![Layer::Linear(Linear::new(10))],
        };
        let msg = no_flatten.resolve().unwrap_err().to_string();
        assert!(msg.contains("flatten"), "{msg}");

        let too_small = ModelSpec {
            input_shape: [3, 2, 2],
            layers: vec![Layer::Conv2d(Conv2d::new(4, 5))],
        };
        assert!(too_small.resolve().unwrap_err().to_string().contains("does not fit"));
    }

    #[test]
    fn blocks_name_their_tensors_as_pytorch_modules_do() {
        let json = r#"{"inputShape":[8,8,8],"layers":[
            {"type":"sequential","name":"layer1","layers":[
                {"type":"residual","layers":[
                    {"type":"conv2d","outChannels":16,"kernelSize":3,"stride":2,"padding":1,"bias":false},
                    {"type":"batchnorm2d"},{"type":"relu"},
                    {"type":"conv2d","outChannels":16,"kernelSize":3,"padding":1,"bias":false},
                    {"type":"batchnorm2d"}],
                 "shortcut":[{"type":"conv2d","outChannels":16,"kernelSize":1,"stride":2,"bias":false},{"type":"batchnorm2d"}]},
                {"type":"se","squeezeChannels":4}]},
            {"type":"adaptiveavgpool2d"},{"type":"flatten"},{"type":"linear","outFeatures":3,"name":"fc"}]}"#;
        let nodes = ModelSpec::from_json(json).unwrap().resolve().unwrap();
        assert_eq!(params_of(&nodes, "layer1.0.conv1"), vec![vec![16, 8, 3, 3]]);
        assert_eq!(params_of(&nodes, "layer1.0.bn2"), vec![vec![16], vec![16]]);
        assert_eq!(params_of(&nodes, "layer1.0.downsample.0"), vec![vec![16, 8, 1, 1]]);
        assert_eq!(params_of(&nodes, "layer1.0.downsample.1"), vec![vec![16], vec![16]]);
        assert_eq!(params_of(&nodes, "layer1.1")[0], vec![4, 16, 1, 1]);
        assert_eq!(nodes[0].output_shape, vec![16, 4, 4]);
        assert_eq!(nodes.last().unwrap().output_shape, vec![3]);
    }

    #[test]
    fn tf_same_padding_matches_tensorflow() {
        // TensorFlow's SAME with stride 2 on an even input pads 0 before and 1 after a 3×3 kernel.
        let spec = ModelSpec {
            input_shape: [3, 224, 224],
            layers: vec![Layer::Conv2d(Conv2d {
                stride: Size2::Square(2),
                padding: Padding::Mode(PaddingMode::TfSame),
                ..Conv2d::new(32, 3)
            })],
        };
        let err = spec.resolve().unwrap_err().to_string();
        assert!(err.contains("flat shape"), "{err}");
        let conv = &Scope::root().resolve(&spec.layers, &spec.input_shape).unwrap()[0];
        assert_eq!(conv.output_shape, vec![32, 112, 112]);
        let pads = crate::layers::values::pads(Padding::Mode(PaddingMode::TfSame), [224, 224], [3, 3], [2, 2], [1, 1]);
        assert_eq!(pads, [0, 1, 0, 1]);
    }
}
