//! Checkpoints as safetensors: the weights under PyTorch's names, with the spec and the caller's
//! metadata in the header; optimizer state in a file of its own beside them. Writes are atomic.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, View};
use tch::{Device, Kind, Tensor};

use crate::atomic_file::write_atomic;
use crate::averaging::Averager;
use crate::error::{Error, Result};
use crate::model::Network;
use crate::optimizer::{Optimizer, OptimizerConfig, ParamGroup};
use crate::spec::ModelSpec;
use crate::trainer::Trainer;

/// Header keys the core owns (all in [`crate::metadata`]); everything else in the metadata is the caller's.
pub const SPEC_KEY: &str = crate::metadata::SPEC;
pub const FORMAT_KEY: &str = crate::metadata::FORMAT;
const OPTIMIZER_KEY: &str = "convkit.optimizer";
const GROUPS_KEY: &str = "convkit.paramGroups";
const LR_KEY: &str = "convkit.lr";
const STEP_KEY: &str = "convkit.step";
/// Suffix of the averaged copy of a tensor (EMA or Lookahead) in the optimizer file.
const AVERAGE_SUFFIX: &str = "average";
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
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
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

fn save_tensors<'a>(
    path: &Path,
    tensors: impl Iterator<Item = (&'a str, &'a Tensor)>,
    metadata: HashMap<String, String>,
) -> Result<()> {
    let host: Vec<(String, HostTensor)> = tensors
        .map(|(n, t)| Ok((n.to_owned(), to_host(t)?)))
        .collect::<Result<_>>()?;
    let bytes = safetensors::serialize(host.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
        .map_err(|e| Error::io("serializing", path, std::io::Error::other(e.to_string())))?;
    write_atomic(path, &bytes)
}

/// A tensor from raw little-endian bytes of `dtype` (safetensors' and numpy's names: `F32`/`float32`, …);
/// half precisions are widened to float32, as a model's weights are.
pub fn tensor_from_bytes(dtype: &str, shape: &[i64], bytes: &[u8], device: Device) -> Result<Tensor> {
    let kind = match dtype.to_ascii_lowercase().as_str() {
        "f32" | "float32" => Kind::Float,
        "f64" | "float64" => Kind::Double,
        "f16" | "float16" => Kind::Half,
        "bf16" | "bfloat16" => Kind::BFloat16,
        "i64" | "int64" => Kind::Int64,
        "i32" | "int32" => Kind::Int,
        "u8" | "uint8" => Kind::Uint8,
        "i8" | "int8" => Kind::Int8,
        "bool" => Kind::Bool,
        other => {
            return Err(Error::option(
                "tensor dtype",
                "float32, float64, float16, bfloat16, int64, int32, uint8, int8 or bool",
                other,
            ))
        }
    };
    let numel: i64 = shape.iter().product();
    if numel < 0 || bytes.len() != numel as usize * kind.elt_size_in_bytes() {
        return Err(Error::BadShape {
            what: format!("{dtype} tensor of shape {shape:?}"),
            expected: format!("{} bytes", numel.max(0) as usize * kind.elt_size_in_bytes()),
            got: format!("{} bytes", bytes.len()),
        });
    }
    let t = Tensor::f_from_data_size(bytes, shape, kind)?;
    let t = if matches!(kind, Kind::Half | Kind::BFloat16) {
        t.f_to_kind(Kind::Float)?
    } else {
        t
    };
    Ok(t.f_to_device(device)?)
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
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        // Half-precision weights (as PyTorch users sometimes save them) are widened to the model's float32.
        let t = tensor_from_bytes(&format!("{:?}", view.dtype()), &shape, view.data(), device)
            .map_err(|e| corrupt(format!("tensor {name:?}: {e}")))?;
        tensors.insert(name, t);
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

/// The names of the tensors an averager follows, in its order: parameters, then floating buffers.
fn averaged_names(net: &Network) -> Vec<String> {
    net.params
        .iter()
        .map(|p| p.name.clone())
        .chain(
            net.buffers
                .iter()
                .filter(|b| b.tensor.is_floating_point())
                .map(|b| b.name.clone()),
        )
        .collect()
}

/// Writes the optimizer's state, its step, groups and learning rate, and the averaged weights when averaging.
pub fn save_optimizer(trainer: &Trainer, path: &Path) -> Result<()> {
    let opt = &trainer.optimizer;
    let mut metadata = HashMap::new();
    metadata.insert(
        OPTIMIZER_KEY.into(),
        serde_json::to_string(&opt.config).expect("config serializes"),
    );
    metadata.insert(
        GROUPS_KEY.into(),
        serde_json::to_string(&opt.groups).expect("groups serialize"),
    );
    metadata.insert(LR_KEY.into(), opt.lr.to_string());
    metadata.insert(STEP_KEY.into(), opt.step.to_string());
    metadata.insert(FORMAT_KEY.into(), FORMAT_VERSION.into());
    let averaged: Vec<(String, &Tensor)> = match &trainer.averager {
        Some(avg) => averaged_names(&trainer.net)
            .into_iter()
            .map(|n| format!("{n}.{AVERAGE_SUFFIX}"))
            .zip(avg.average.iter())
            .collect(),
        None => Vec::new(),
    };
    let state = opt.state.iter().map(|(k, t)| (k.as_str(), t));
    save_tensors(
        path,
        state.chain(averaged.iter().map(|(k, t)| (k.as_str(), *t))),
        metadata,
    )
}

/// Restores optimizer state for `net`, checking each state tensor against the parameter it belongs to.
/// Returns the optimizer and, when the file holds averaged weights, those in the averager's order.
pub fn load_optimizer(net: &Network, path: &Path) -> Result<(Optimizer, Option<Vec<Tensor>>)> {
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
    let groups: Vec<ParamGroup> = match file.metadata.get(GROUPS_KEY) {
        Some(j) => serde_json::from_str(j).map_err(|e| corrupt(format!("{GROUPS_KEY:?}: {e}")))?,
        None => Vec::new(),
    };
    let step = file
        .metadata
        .get(STEP_KEY)
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| corrupt(format!("no integer {STEP_KEY:?} in its header")))?;
    let mut optimizer = Optimizer::new(config, groups)?;
    optimizer.step = step;
    if let Some(lr) = file.metadata.get(LR_KEY).and_then(|s| s.parse::<f64>().ok()) {
        optimizer.set_lr(lr)?;
    }
    let aligned = |key: &str, t: &Tensor, like: &Tensor| -> Result<Tensor> {
        if t.size() != like.size() {
            return Err(Error::CheckpointMismatch {
                path: path.to_owned(),
                reason: format!(
                    "{key:?} has shape {:?}, the model's tensor has {:?}",
                    t.size(),
                    like.size()
                ),
            });
        }
        // Keep the parameter's memory layout so the update stays elementwise-aligned.
        let mut laid = like.f_zeros_like()?.f_detach()?;
        laid.f_copy_(t)?;
        Ok(laid)
    };
    for p in &net.params {
        for suffix in optimizer.state_suffixes() {
            let key = format!("{}.{suffix}", p.name);
            if let Some(t) = file.tensors.get(&key) {
                let laid = aligned(&key, t, &p.tensor)?;
                optimizer.state.insert(key, laid);
            }
        }
    }
    let names = averaged_names(net);
    let likes: Vec<&Tensor> = net
        .params
        .iter()
        .map(|p| &p.tensor)
        .chain(net.buffers.iter().map(|b| &b.tensor).filter(|t| t.is_floating_point()))
        .collect();
    let average = if file.tensors.contains_key(&format!("{}.{AVERAGE_SUFFIX}", names[0])) {
        let mut out = Vec::with_capacity(names.len());
        for (name, like) in names.iter().zip(likes) {
            let key = format!("{name}.{AVERAGE_SUFFIX}");
            let t = file
                .tensors
                .get(&key)
                .ok_or_else(|| corrupt(format!("averaged tensor {key:?} is missing")))?;
            out.push(aligned(&key, t, like)?);
        }
        Some(out)
    } else {
        None
    };
    Ok((optimizer, average))
}

/// A trainer read back from a checkpoint: the trainer, the checkpoint's header, and averaged weights if it had any.
pub type LoadedTrainer = (Trainer, HashMap<String, String>, Option<Vec<Tensor>>);

/// Saves a trainer's network (and, with `with_optimizer`, its optimizer and averaging state beside it).
pub fn save_trainer(
    trainer: &Trainer,
    path: &Path,
    metadata: HashMap<String, String>,
    with_optimizer: bool,
) -> Result<()> {
    save_network(&trainer.net, path, metadata)?;
    if with_optimizer {
        save_optimizer(trainer, &optimizer_path(path))?;
    }
    Ok(())
}

/// The optimizer-file policy: a checkpoint loaded to train on restores its optimizer state from the
/// `.optim.safetensors` file beside it when there is one (a resumed run), and starts a default Adam otherwise
/// (fine-tuning a checkpoint). Averaged weights come back into `averager` when given.
pub fn load_trainer(path: &Path, device: Device) -> Result<LoadedTrainer> {
    let (net, metadata) = load_network(path, device)?;
    let opt_path = optimizer_path(path);
    let (optimizer, average) = if opt_path.exists() {
        load_optimizer(&net, &opt_path)?
    } else {
        (Optimizer::new(OptimizerConfig::default(), Vec::new())?, None)
    };
    Ok((
        Trainer {
            net,
            optimizer,
            loss: Default::default(),
            averager: None::<Averager>,
            grad_sync: None,
            // Like the loss, a training setting the caller sets again: a checkpoint keeps weights and optimizer state.
            grad_clip_norm: None,
            micro_batch: Default::default(),
        },
        metadata,
        average,
    ))
}
