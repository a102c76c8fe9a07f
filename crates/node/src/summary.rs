//! Model summaries as JavaScript sees them.

use convkit_core::LayerRow;
use napi_derive::napi;

/// One row of a model summary.
#[napi(object)]
pub struct BindingLayerInfo {
    pub kind: String,
    /// The layer's tensor prefix (`layer1.0.conv1`), when it has one.
    pub name: Option<String>,
    /// Nesting depth: 0 at the top, 1 inside a block, ….
    pub depth: u32,
    pub input_shape: Vec<i64>,
    pub output_shape: Vec<i64>,
    /// Parameters of this layer itself, not of layers nested in it.
    pub params: i64,
    pub trainable: bool,
}

pub fn rows(layers: &[LayerRow]) -> Vec<BindingLayerInfo> {
    layers
        .iter()
        .map(|l| BindingLayerInfo {
            kind: l.kind.to_owned(),
            name: l.name.clone(),
            depth: l.depth as u32,
            input_shape: l.input_shape.clone(),
            output_shape: l.output_shape.clone(),
            params: l.params,
            trainable: l.trainable,
        })
        .collect()
}
