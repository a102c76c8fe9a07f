//! The header keys ConvKit writes into its files: a checkpoint's safetensors header and an ONNX file's
//! `metadata_props`. Every `convkit.` key is declared here, so the core and the TypeScript side (which reads them
//! through `metadataKeys()`) name them alike; other keys are the caller's. The optimizer file's own keys are
//! private to [`crate::checkpoint`].

/// The normalized spec a checkpoint was built from (JSON).
pub const SPEC: &str = "convkit.spec";
/// The checkpoint format's version.
pub const FORMAT: &str = "convkit.format";
/// The ConvKit version that wrote an ONNX file (its `producer_version` too).
pub const VERSION: &str = "convkit.version";
/// The class names (a JSON array of strings).
pub const CLASSES: &str = "convkit.classes";
/// `{ mean, std }` per channel, on pixels scaled to [0, 1] (JSON).
pub const NORMALIZATION: &str = "convkit.normalization";
/// How images are resized and cropped before normalization (JSON).
pub const PREPROCESSING: &str = "convkit.preprocessing";
/// The test-time augmentation predictions use (JSON).
pub const TTA: &str = "convkit.tta";
/// `[height, width]` evaluation and prediction feed the network (JSON).
pub const EVAL_INPUT_SIZE: &str = "convkit.eval_input_size";
/// `[channels, height, width]` an exported graph takes (JSON).
pub const INPUT_SHAPE: &str = "convkit.input_shape";
/// A multi-label model's `{ thresholds }`: the probability above which each class is predicted (JSON). Absent for a
/// single-label model, whose probabilities are one softmax.
pub const MULTI_LABEL: &str = "convkit.multi_label";
/// Every key starts with this; callers' own keys may not.
pub const PREFIX: &str = "convkit.";

/// The header keys ConvKit writes into checkpoints and ONNX files, by what they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "napi", napi_derive::napi(object, object_from_js = false))]
pub struct MetadataKeys {
    pub spec: String,
    pub format: String,
    pub version: String,
    pub classes: String,
    pub normalization: String,
    pub preprocessing: String,
    pub tta: String,
    pub eval_input_size: String,
    pub input_shape: String,
    pub multi_label: String,
    /// The prefix every one of them starts with; callers' own keys may not.
    pub prefix: String,
}

impl Default for MetadataKeys {
    fn default() -> Self {
        MetadataKeys {
            spec: SPEC.into(),
            format: FORMAT.into(),
            version: VERSION.into(),
            classes: CLASSES.into(),
            normalization: NORMALIZATION.into(),
            preprocessing: PREPROCESSING.into(),
            tta: TTA.into(),
            eval_input_size: EVAL_INPUT_SIZE.into(),
            input_shape: INPUT_SHAPE.into(),
            multi_label: MULTI_LABEL.into(),
            prefix: PREFIX.into(),
        }
    }
}
