//! The one error type of the core: each variant has a stable code that the binding hands to JavaScript.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The layer spec is malformed or cannot be applied to the input shape.
    #[error("invalid model spec: {0}")]
    InvalidSpec(String),

    /// A layer type the core does not know.
    #[error("unknown layer type {found:?} at {path}; expected one of {expected}")]
    UnknownLayer {
        path: String,
        found: String,
        expected: String,
    },

    /// Input data whose shape or size disagrees with what was declared.
    #[error("{what}: expected {expected}, got {got}")]
    BadShape {
        what: String,
        expected: String,
        got: String,
    },

    /// A class label outside `0..classes`.
    #[error("{what}: label {label} at position {position} is out of range; expected 0..{classes}")]
    LabelOutOfRange {
        what: String,
        label: i64,
        position: usize,
        classes: i64,
    },

    /// An option with a value outside what it accepts.
    #[error("invalid option {field}: expected {expected}, got {got}")]
    InvalidOption {
        field: String,
        expected: String,
        got: String,
    },

    /// A checkpoint that cannot be parsed.
    #[error("corrupt checkpoint {path}: {reason}")]
    CorruptCheckpoint { path: PathBuf, reason: String },

    /// A checkpoint whose tensors do not fit its spec or the model.
    #[error("checkpoint {path} does not match the model: {reason}")]
    CheckpointMismatch { path: PathBuf, reason: String },

    /// Weights whose names or shapes differ from the model's, all listed, as `load_state_dict(strict=True)` does.
    #[error(
        "{path} does not match the model: {}",
        describe_mismatch(missing, unexpected, misshaped)
    )]
    StateDictMismatch {
        path: PathBuf,
        missing: Vec<String>,
        unexpected: Vec<String>,
        misshaped: Vec<String>,
    },

    /// A file system error, with the file it concerns.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    /// The requested device cannot be used.
    #[error("device {requested:?} is not available: {reason}")]
    DeviceUnavailable { requested: String, reason: String },

    /// A layer that ONNX has no operator for, in the form this model uses it.
    #[error("cannot export to ONNX: {layer} has no ONNX form: {reason}")]
    NotExportable { layer: String, reason: String },

    /// A rank of a distributed run could not meet the others, or a collective failed: a peer died or stopped
    /// answering. The run cannot go on; the message names this rank and, where it can tell, the one it lost.
    #[error(
        "rank {rank} of {world_size}: {op} failed{}: {reason}",
        peer.as_ref().map(|p| format!(" (lost {p}: it died or stopped answering)")).unwrap_or_default()
    )]
    Distributed {
        rank: i32,
        world_size: i32,
        op: String,
        peer: Option<String>,
        reason: String,
    },

    /// Work stopped because its cancel token was set.
    #[error("cancelled")]
    Cancelled,

    /// An error raised by libtorch itself.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

impl Error {
    /// The stable code JavaScript sees as `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidSpec(_) => "INVALID_SPEC",
            Error::UnknownLayer { .. } => "UNKNOWN_LAYER",
            Error::BadShape { .. } => "BAD_SHAPE",
            Error::LabelOutOfRange { .. } => "LABEL_OUT_OF_RANGE",
            Error::InvalidOption { .. } => "INVALID_OPTION",
            Error::CorruptCheckpoint { .. } => "CORRUPT_CHECKPOINT",
            Error::CheckpointMismatch { .. } | Error::StateDictMismatch { .. } => "CHECKPOINT_MISMATCH",
            Error::Io { .. } => "IO_ERROR",
            Error::DeviceUnavailable { .. } => "DEVICE_UNAVAILABLE",
            Error::NotExportable { .. } => "NOT_EXPORTABLE",

            Error::Distributed { .. } => "DISTRIBUTED_ERROR",
            Error::Cancelled => "CANCELLED",
            Error::Torch(_) => "TORCH_ERROR",
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// A failure inside libtorch reported as a message (by the C++ bridge, or a precondition of a call into it).
    pub(crate) fn torch(message: impl Into<String>) -> Self {
        Error::Torch(tch::TchError::Torch(message.into()))
    }

    pub(crate) fn option(field: &str, expected: impl Into<String>, got: impl std::fmt::Display) -> Self {
        Error::InvalidOption {
            field: field.to_owned(),
            expected: expected.into(),
            got: got.to_string(),
        }
    }
}

/// "missing keys: a, b; unexpected keys: c; size mismatch: d …", each list cut at 20 with a count of the rest.
fn describe_mismatch(missing: &[String], unexpected: &[String], misshaped: &[String]) -> String {
    let list = |what: &str, keys: &[String]| {
        if keys.is_empty() {
            return None;
        }
        let shown = keys.iter().take(20).cloned().collect::<Vec<_>>().join(", ");
        let more = if keys.len() > 20 {
            format!(" and {} more", keys.len() - 20)
        } else {
            String::new()
        };
        Some(format!("{} {what}: {shown}{more}", keys.len()))
    };
    [
        list("missing key(s)", missing),
        list("unexpected key(s)", unexpected),
        list("mis-shaped", misshaped),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("; ")
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
