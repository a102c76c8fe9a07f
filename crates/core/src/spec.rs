//! The layer spec a model is built from, and the shape inference that turns it into concrete layers.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One layer of a model, as written in a spec (`{"type": "conv2d", "outChannels": 32, ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Layer {
    #[serde(rename_all = "camelCase")]
    Conv2d {
        out_channels: i64,
        kernel_size: i64,
        #[serde(default = "one")]
        stride: i64,
        #[serde(default)]
        padding: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Relu,
    #[serde(rename_all = "camelCase")]
    Maxpool2d {
        kernel_size: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<i64>,
    },
    Flatten,
    #[serde(rename_all = "camelCase")]
    Linear {
        out_features: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Dropout {
        p: f64,
    },
    #[serde(rename_all = "camelCase")]
    Batchnorm2d {
        #[serde(default = "bn_eps")]
        eps: f64,
        #[serde(default = "bn_momentum")]
        momentum: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
}

fn one() -> i64 {
    1
}
fn bn_eps() -> f64 {
    1e-5
}
fn bn_momentum() -> f64 {
    0.1
}

const LAYER_TYPES: &str = "conv2d, relu, maxpool2d, flatten, linear, dropout, batchnorm2d";

/// A whole model: the shape of one input (channels, height, width) and its layers in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelSpec {
    pub input_shape: [i64; 3],
    pub layers: Vec<Layer>,
}

/// What a layer holds once shapes are known: parameter and buffer names with their shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedLayer {
    pub layer: Layer,
    /// The prefix of its tensors (`conv1`), for layers that have any.
    pub name: Option<String>,
    pub input_shape: Vec<i64>,
    pub output_shape: Vec<i64>,
    /// Trainable tensors, in PyTorch's order (`weight`, then `bias`).
    pub params: Vec<(String, Vec<i64>)>,
    /// Non-trainable state saved with the weights (batch norm's running statistics).
    pub buffers: Vec<(String, Vec<i64>)>,
}

impl ResolvedLayer {
    pub fn kind(&self) -> &'static str {
        match self.layer {
            Layer::Conv2d { .. } => "conv2d",
            Layer::Relu => "relu",
            Layer::Maxpool2d { .. } => "maxpool2d",
            Layer::Flatten => "flatten",
            Layer::Linear { .. } => "linear",
            Layer::Dropout { .. } => "dropout",
            Layer::Batchnorm2d { .. } => "batchnorm2d",
        }
    }

    pub fn param_count(&self) -> i64 {
        self.params.iter().map(|(_, s)| s.iter().product::<i64>()).sum()
    }
}

impl ModelSpec {
    /// Parses a spec from JSON, naming the layer and field at fault.
    pub fn from_json(json: &str) -> Result<Self> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| Error::InvalidSpec(format!("not valid JSON: {e}")))?;
        let layers = value
            .get("layers")
            .and_then(|l| l.as_array())
            .ok_or_else(|| Error::InvalidSpec("field `layers`: expected an array of layer objects".into()))?;
        for (index, layer) in layers.iter().enumerate() {
            let found = layer.get("type").and_then(|t| t.as_str());
            match found {
                None => {
                    return Err(Error::InvalidSpec(format!(
                        "layers[{index}]: expected an object with a string field `type`"
                    )))
                }
                Some(t) if !LAYER_TYPES.split(", ").any(|known| known == t) => {
                    return Err(Error::UnknownLayer {
                        index,
                        found: t.to_owned(),
                        expected: LAYER_TYPES.to_owned(),
                    })
                }
                Some(_) => {
                    serde_json::from_value::<Layer>(layer.clone())
                        .map_err(|e| Error::InvalidSpec(format!("layers[{index}]: {e}")))?;
                }
            }
        }
        serde_json::from_value(value).map_err(|e| Error::InvalidSpec(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a spec always serializes")
    }

    /// The reference CIFAR network: two conv/ReLU/pool stages, then two linear layers.
    pub fn reference(input_shape: [i64; 3], classes: i64) -> Self {
        ModelSpec {
            input_shape,
            layers: vec![
                Layer::Conv2d {
                    out_channels: 32,
                    kernel_size: 3,
                    stride: 1,
                    padding: 1,
                    name: None,
                },
                Layer::Relu,
                Layer::Maxpool2d {
                    kernel_size: 2,
                    stride: None,
                },
                Layer::Conv2d {
                    out_channels: 64,
                    kernel_size: 3,
                    stride: 1,
                    padding: 1,
                    name: None,
                },
                Layer::Relu,
                Layer::Maxpool2d {
                    kernel_size: 2,
                    stride: None,
                },
                Layer::Flatten,
                Layer::Linear {
                    out_features: 512,
                    name: None,
                },
                Layer::Relu,
                Layer::Linear {
                    out_features: classes,
                    name: None,
                },
            ],
        }
    }

    /// Walks the layers from the input shape, checking each and naming its tensors
    /// (`conv1`, `conv2`, `fc1`, `bn1`, ... unless a layer names itself).
    pub fn resolve(&self) -> Result<Vec<ResolvedLayer>> {
        let bad = |index: usize, msg: String| Error::InvalidSpec(format!("layers[{index}]: {msg}"));
        if self.input_shape.iter().any(|&d| d <= 0) {
            return Err(Error::InvalidSpec(format!(
                "field `inputShape`: expected [channels, height, width] of positive sizes, got {:?}",
                self.input_shape
            )));
        }
        if self.layers.is_empty() {
            return Err(Error::InvalidSpec("field `layers`: expected at least one layer".into()));
        }
        let mut shape = self.input_shape.to_vec();
        let (mut convs, mut linears, mut norms) = (0, 0, 0);
        let mut names: Vec<String> = Vec::new();
        let mut resolved = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let input_shape = shape.clone();
            let spatial = |what: &str| -> Result<(i64, i64, i64)> {
                match input_shape.as_slice() {
                    [c, h, w] => Ok((*c, *h, *w)),
                    other => Err(bad(
                        i,
                        format!("{what} expects a [channels, height, width] input, got {other:?}"),
                    )),
                }
            };
            let mut pick_name = |given: &Option<String>, prefix: &str, counter: &mut usize| -> Result<String> {
                *counter += 1;
                let name = given.clone().unwrap_or_else(|| format!("{prefix}{counter}"));
                let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err(bad(
                        i,
                        format!("name {name:?}: expected letters, digits and underscores"),
                    ));
                }
                if names.contains(&name) {
                    return Err(bad(i, format!("name {name:?} is used twice")));
                }
                names.push(name.clone());
                Ok(name)
            };
            let (name, params, buffers) = match layer {
                Layer::Conv2d {
                    out_channels,
                    kernel_size,
                    stride,
                    padding,
                    name,
                } => {
                    let (c, h, w) = spatial("conv2d")?;
                    if *out_channels <= 0 || *kernel_size <= 0 || *stride <= 0 || *padding < 0 {
                        return Err(bad(
                            i,
                            "conv2d expects outChannels, kernelSize, stride > 0 and padding >= 0".into(),
                        ));
                    }
                    let out = |d: i64| (d + 2 * padding - kernel_size) / stride + 1;
                    if out(h) <= 0 || out(w) <= 0 {
                        return Err(bad(
                            i,
                            format!("conv2d kernel {kernel_size} does not fit a {h}x{w} input"),
                        ));
                    }
                    shape = vec![*out_channels, out(h), out(w)];
                    let name = pick_name(name, "conv", &mut convs)?;
                    let params = vec![
                        ("weight".into(), vec![*out_channels, c, *kernel_size, *kernel_size]),
                        ("bias".into(), vec![*out_channels]),
                    ];
                    (Some(name), params, vec![])
                }
                Layer::Maxpool2d { kernel_size, stride } => {
                    let (c, h, w) = spatial("maxpool2d")?;
                    let stride = stride.unwrap_or(*kernel_size);
                    if *kernel_size <= 0 || stride <= 0 || *kernel_size > h || *kernel_size > w {
                        return Err(bad(
                            i,
                            format!("maxpool2d kernel {kernel_size} does not fit a {h}x{w} input"),
                        ));
                    }
                    shape = vec![c, (h - kernel_size) / stride + 1, (w - kernel_size) / stride + 1];
                    (None, vec![], vec![])
                }
                Layer::Batchnorm2d { name, eps, momentum } => {
                    let (c, _, _) = spatial("batchnorm2d")?;
                    if *eps <= 0.0 || !(0.0..=1.0).contains(momentum) {
                        return Err(bad(i, "batchnorm2d expects eps > 0 and momentum in [0, 1]".into()));
                    }
                    let name = pick_name(name, "bn", &mut norms)?;
                    let params = vec![("weight".into(), vec![c]), ("bias".into(), vec![c])];
                    let buffers = vec![
                        ("running_mean".into(), vec![c]),
                        ("running_var".into(), vec![c]),
                        ("num_batches_tracked".into(), vec![]),
                    ];
                    (Some(name), params, buffers)
                }
                Layer::Linear { out_features, name } => {
                    let features = match shape.as_slice() {
                        [f] => *f,
                        other => {
                            return Err(bad(
                                i,
                                format!(
                                "linear expects a flat input, got {other:?}; add {{\"type\": \"flatten\"}} before it"
                            ),
                            ))
                        }
                    };
                    if *out_features <= 0 {
                        return Err(bad(i, "linear expects outFeatures > 0".into()));
                    }
                    shape = vec![*out_features];
                    let name = pick_name(name, "fc", &mut linears)?;
                    let params = vec![
                        ("weight".into(), vec![*out_features, features]),
                        ("bias".into(), vec![*out_features]),
                    ];
                    (Some(name), params, vec![])
                }
                Layer::Flatten => {
                    shape = vec![shape.iter().product()];
                    (None, vec![], vec![])
                }
                Layer::Dropout { p } => {
                    if !(0.0..1.0).contains(p) {
                        return Err(bad(i, format!("dropout expects p in [0, 1), got {p}")));
                    }
                    (None, vec![], vec![])
                }
                Layer::Relu => (None, vec![], vec![]),
            };
            resolved.push(ResolvedLayer {
                layer: layer.clone(),
                name,
                input_shape,
                output_shape: shape.clone(),
                params,
                buffers,
            });
        }
        if shape.len() != 1 {
            return Err(Error::InvalidSpec(format!(
                "the last layer must output one score per class (a flat shape), got {shape:?}"
            )));
        }
        Ok(resolved)
    }

    /// How many classes the model scores: the size of the last layer's output.
    pub fn classes(&self) -> Result<i64> {
        let layers = self.resolve()?;
        Ok(layers.last().map(|l| l.output_shape[0]).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_network_shapes_follow_the_input() {
        let layers = ModelSpec::reference([3, 32, 32], 10).resolve().unwrap();
        let fc1 = layers.iter().find(|l| l.name.as_deref() == Some("fc1")).unwrap();
        // Two 2x2 pools halve 32 twice: 64 channels of 8x8 reach fc1.
        assert_eq!(fc1.params[0].1, vec![512, 64 * 8 * 8]);
        assert_eq!(layers.last().unwrap().output_shape, vec![10]);
        let total: i64 = layers.iter().map(ResolvedLayer::param_count).sum();
        assert_eq!(total, 896 + 18_496 + 2_097_664 + 5_130);

        let small = ModelSpec::reference([1, 28, 28], 10).resolve().unwrap();
        let fc1 = small.iter().find(|l| l.name.as_deref() == Some("fc1")).unwrap();
        assert_eq!(fc1.params[0].1, vec![512, 64 * 7 * 7]);
    }

    #[test]
    fn json_round_trip_and_errors_name_the_layer() {
        let spec = ModelSpec::reference([3, 32, 32], 10);
        assert_eq!(ModelSpec::from_json(&spec.to_json()).unwrap(), spec);

        let unknown = r#"{"inputShape":[3,8,8],"layers":[{"type":"relu"},{"type":"conv3d"}]}"#;
        match ModelSpec::from_json(unknown) {
            Err(Error::UnknownLayer { index: 1, found, .. }) => assert_eq!(found, "conv3d"),
            other => panic!("expected UnknownLayer, got {other:?}"),
        }
        let missing = r#"{"inputShape":[3,8,8],"layers":[{"type":"conv2d","kernelSize":3}]}"#;
        let msg = ModelSpec::from_json(missing).unwrap_err().to_string();
        assert!(msg.contains("layers[0]") && msg.contains("outChannels"), "{msg}");
    }

    #[test]
    fn shape_errors_explain_the_fix() {
        let no_flatten = ModelSpec {
            input_shape: [3, 8, 8],
            layers: vec![Layer::Linear {
                out_features: 10,
                name: None,
            }],
        };
        let msg = no_flatten.resolve().unwrap_err().to_string();
        assert!(msg.contains("flatten"), "{msg}");

        let too_small = ModelSpec {
            input_shape: [3, 2, 2],
            layers: vec![Layer::Conv2d {
                out_channels: 4,
                kernel_size: 5,
                stride: 1,
                padding: 0,
                name: None,
            }],
        };
        assert!(too_small.resolve().unwrap_err().to_string().contains("does not fit"));
    }
}
