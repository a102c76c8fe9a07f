//! ConvKit's native core: convolutional classifiers on libtorch, with no JavaScript in sight.
//!
//! A [`ModelSpec`] describes the layers ([`layers`], one file per type); [`Network`] holds their weights;
//! [`Classifier`] owns a network with everything that trains, evaluates and saves it (the binding's model);
//! [`Trainer`] steps them with an [`Optimizer`], a loss and optional weight averaging; [`evaluate()`] counts what
//! they get right; [`checkpoint`] saves and restores them; [`onnx`] exports them; [`jpeg`] decodes image folders fast;
//! [`distributed`] averages gradients over several processes with PyTorch's own c10d.

pub mod allocator;
pub mod atomic_file;
pub mod augment;
pub mod auto_augment;
pub mod averaging;
pub mod batch;
pub mod checkpoint;
pub mod classifier;
pub mod dataset;
pub mod distributed;
pub mod draw;
pub mod error;
pub mod evaluate;
pub mod explain;
pub(crate) mod ffi;
pub mod glob;
pub mod grad_clip;
pub mod host;
pub mod inspect;
pub mod jpeg;
pub mod layers;
pub mod loss;
pub mod metadata;
pub mod model;
pub mod onnx;
pub mod op_count;
pub mod optimizer;
pub mod options;
pub mod runtime;
pub mod spec;
pub mod trainer;
pub mod transfer;
pub mod weights;
pub mod whitening;

pub use classifier::{Classifier, TensorBytes};
pub use dataset::{Dataset, Normalization};
pub use error::{Error, Result};
pub use evaluate::{evaluate, EvalCounts, LabelScores, Tta};
pub use explain::GradCam;
pub use inspect::Embeddings;
pub use layers::{Layer, LAYER_TYPES};
pub use metadata::MetadataKeys;
pub use model::Network;
pub use optimizer::{Optimizer, OptimizerConfig, ParamGroup};
pub use options::{AugmentOptions, AveragingOptions, LoadOptions, LossOptions, ModelOptions, StepOptions};
pub use spec::{LayerRow, ModelSpec};
pub use trainer::{PendingStep, StepOutput, Trainer};
pub use weights::Precision;
