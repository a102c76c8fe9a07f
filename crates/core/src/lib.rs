//! ConvKit's native core: convolutional classifiers on libtorch, with no JavaScript in sight.
//!
//! A [`ModelSpec`] describes the layers; [`Network`] holds their weights; [`Trainer`] steps them with an
//! [`Optimizer`]; [`evaluate()`] counts what they get right; [`checkpoint`] saves and restores them.

pub mod allocator;
pub mod checkpoint;
pub mod dataset;
pub mod error;
pub mod evaluate;
pub mod model;
pub mod optimizer;
pub mod runtime;
pub mod spec;
pub mod trainer;

pub use dataset::{Dataset, Normalization};
pub use error::{Error, Result};
pub use evaluate::{evaluate, EvalCounts};
pub use model::{Network, Precision};
pub use optimizer::{Optimizer, OptimizerConfig};
pub use spec::{Layer, ModelSpec, ResolvedLayer};
pub use trainer::{StepOutput, Trainer};
