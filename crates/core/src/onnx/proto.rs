//! ONNX's message types (`ModelProto`, `GraphProto`, `NodeProto`, `TensorProto`, …), generated at build time by
//! prost-build from ONNX's own `proto/onnx.proto` (see `build.rs`). Nobody edits them.

// Generated code: its names and shapes follow onnx.proto, not this crate's lints.
#![allow(clippy::all, clippy::pedantic, missing_docs)]

include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
