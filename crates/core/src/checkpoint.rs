//! Checkpoints as safetensors: the weights under PyTorch's names, with the spec and the caller's
//! metadata in the header; optimizer state in a file of its own beside them. Writes are atomic.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, View};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::model::Network;
use crate::optimizer::{Optimizer, OptimizerConfig};
use crate::spec::ModelSpec;

/// Header keys the core owns; everything else in the metadata is the caller's.
pub const SPEC_KEY: &str = "convkit.spec";
pub const FORMAT_KEY: &str = "convkit.format";
const OPTIMIZER_KEY: &str = "convkit.optimizer";
const STEP_KEY: &str = "convkit.step";
const FORMAT_VERSION: &str = "1";

struct HostTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &HostTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn to_host(t: &Tensor) -> Result<HostTensor> {
    let dtype = match t.kind() {
        Kind::Float => Dtype::F32,
        Kind::Int64 => Dtype::I64,
        Kind::Double => Dtype::F64,
        other => {
            return Err(Error::option(
                "tensor dtype",
                "float32, float64 or int64",
                format!("{other:?}"),
            ))
        }
    };
    let t = t.f_to_device(Device::Cpu)?.f_contiguous()?;
    let mut bytes = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
    t.f_copy_data_u8(&mut bytes, t.numel())?;
    Ok(HostTensor {
        dtype,
        shape: t.size().iter().map(|&d| d as usize).collect(),
        bytes,
    })
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, then renames it over `path`:
/// a crash leaves the old file or the new one, never a truncated one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating the folder of", path, e))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{file_name}.tmp-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("writing", path, e)
    })
}

fn save_tensors<'a>(
    path: &Path,
    tensors: impl Iterator<Item = &'a (String, Tensor)>,
    metadata: HashMap<String, String>,
) -> Result<()> {
    let host: Vec<(String, HostTensor)> = tensors
        .map(|(n, t)| Ok((n.clone(), to_host(t)?)))
        .collect::<Result<_>>()?;
    let bytes = safetensors::serialize(host.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
        .map_err(|e| Error::io("serializing", path, std::io::Error::other(e.to_string())))?;
    write_atomic(path, &bytes)
}

/// The tensors and header of a safetensors file, checked as it is read.
pub struct LoadedFile {
    pub tensors: HashMap<String, Tensor>,
    pub metadata: HashMap<String, String>,
}

/// Reads a safetensors file onto `device`. Only tensor data is read: nothing in the file is executed.
pub fn read_safetensors(path: &Path, device: Device) -> Result<LoadedFile> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    let corrupt = |reason: String| Error::CorruptCheckpoint {
        path: path.to_owned(),
        reason,
    };
    let (_, header) =
        SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(format!("bad safetensors header ({e})")))?;
    let parsed = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(format!("bad safetensors data ({e})")))?;
    let mut tensors = HashMap::new();
    for (name, view) in parsed.tensors() {
        let kind = match view.dtype() {
            Dtype::F32 => Kind::Float,
            Dtype::F64 => Kind::Double,
            Dtype::I64 => Kind::Int64,
            Dtype::F16 => Kind::Half,
            Dtype::BF16 => Kind::BFloat16,
            other => return Err(corrupt(format!("tensor {name:?} has unsupported dtype {other:?}"))),
        };
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let t = Tensor::f_from_data_size(view.data(), &shape, kind)?;
        // Half-precision weights (as PyTorch users sometimes save them) are widened to the model's float32.
        let t = if matches!(kind, Kind::Half | Kind::BFloat16) {
            t.f_to_kind(Kind::Float)?
        } else {
            t
        };
        tensors.insert(name, t.f_to_device(device)?);
    }
    Ok(LoadedFile {
        tensors,
        metadata: header.metadata().clone().unwrap_or_default(),
    })
}

/// Saves the network's weights with its spec, plus the caller's `metadata` (classes, normalization,
/// epoch, metrics...) in the safetensors header.
pub fn save_network(net: &Network, path: &Path, mut metadata: HashMap<String, String>) -> Result<()> {
    metadata.insert(SPEC_KEY.into(), net.spec.to_json());
    metadata.insert(FORMAT_KEY.into(), FORMAT_VERSION.into());
    // safetensors' own convention, so that `safetensors.torch.load_file` reads it without a warning.
    metadata.entry("format".into()).or_insert_with(|| "pt".into());
    save_tensors(path, net.named_tensors(), metadata)
}

/// Loads a network saved by [`save_network`]: its spec from the header, then its weights checked against it.
pub fn load_network(path: &Path, device: Device) -> Result<(Network, HashMap<String, String>)> {
    let file = read_safetensors(path, device)?;
    let spec_json = file.metadata.get(SPEC_KEY).ok_or_else(|| Error::CorruptCheckpoint {
        path: path.to_owned(),
        reason: format!(
            "no {SPEC_KEY:?} in its header; build the model from its spec and call loadWeights for a plain state dict"
        ),
    })?;
    let spec = ModelSpec::from_json(spec_json).map_err(|e| Error::CorruptCheckpoint {
        path: path.to_owned(),
        reason: format!("its spec is invalid: {e}"),
    })?;
    let mut net = Network::new(spec, device)?;
    net.load_tensors(file.tensors, path)?;
    Ok((net, file.metadata))
}

/// Loads weights alone (a PyTorch `state_dict` saved with safetensors, say) into a network built from a spec.
pub fn load_weights(net: &mut Network, path: &Path) -> Result<HashMap<String, String>> {
    let file = read_safetensors(path, net.device)?;
    net.load_tensors(file.tensors, path)?;
    Ok(file.metadata)
}

/// Where the optimizer state of a checkpoint lives: `last.safetensors` → `last.optim.safetensors`.
pub fn optimizer_path(checkpoint: &Path) -> PathBuf {
    let stem = checkpoint
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    checkpoint.with_file_name(format!("{stem}.optim.safetensors"))
}

pub fn save_optimizer(opt: &Optimizer, path: &Path) -> Result<()> {
    let mut metadata = HashMap::new();
    metadata.insert(
        OPTIMIZER_KEY.into(),
        serde_json::to_string(&opt.config).expect("config serializes"),
    );
    metadata.insert(STEP_KEY.into(), opt.step.to_string());
    metadata.insert(FORMAT_KEY.into(), FORMAT_VERSION.into());
    save_tensors(path, opt.state.iter(), metadata)
}

/// Restores optimizer state for `net`, checking each state tensor against the parameter it belongs to.
pub fn load_optimizer(net: &Network, path: &Path) -> Result<Optimizer> {
    let file = read_safetensors(path, net.device)?;
    let corrupt = |reason: String| Error::CorruptCheckpoint {
        path: path.to_owned(),
        reason,
    };
    let config = file
        .metadata
        .get(OPTIMIZER_KEY)
        .ok_or_else(|| corrupt(format!("no {OPTIMIZER_KEY:?} in its header")))
        .and_then(|j| OptimizerConfig::from_json(j).map_err(|e| corrupt(e.to_string())))?;
    let step = file
        .metadata
        .get(STEP_KEY)
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| corrupt(format!("no integer {STEP_KEY:?} in its header")))?;
    let mut state = Vec::new();
    for (name, param) in &net.params {
        for suffix in ["exp_avg", "exp_avg_sq", "momentum_buffer"] {
            let key = format!("{name}.{suffix}");
            if let Some(t) = file.tensors.get(&key) {
                if t.size() != param.size() {
                    return Err(Error::CheckpointMismatch {
                        path: path.to_owned(),
                        reason: format!("{key:?} has shape {:?}, the parameter has {:?}", t.size(), param.size()),
                    });
                }
                // Keep the parameter's memory layout so the update stays elementwise-aligned.
                let laid = param.f_zeros_like()?;
                let mut laid_mut = laid.shallow_clone();
                laid_mut.f_copy_(t)?;
                state.push((key, laid));
            }
        }
    }
    Ok(Optimizer { config, step, state })
}
