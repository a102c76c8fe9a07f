//! A network paired with its optimizer: the training step over one batch.

use tch::{Kind, Reduction, Tensor};

use crate::dataset::{check_labels, Dataset, Normalization};
use crate::error::{Error, Result};
use crate::model::Network;
use crate::optimizer::{Optimizer, OptimizerConfig};

/// What one training step reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutput {
    /// Mean cross-entropy over the batch, before the update.
    pub loss: f64,
    /// How many images the model classified right, before the update.
    pub correct: i64,
    pub count: i64,
}

#[derive(Debug)]
pub struct Trainer {
    pub net: Network,
    pub optimizer: Optimizer,
}

impl Trainer {
    pub fn new(net: Network, optimizer: OptimizerConfig) -> Result<Self> {
        Ok(Trainer {
            net,
            optimizer: Optimizer::new(optimizer)?,
        })
    }

    /// Forward, cross-entropy, backward and an optimizer step on a normalized float batch.
    pub fn step(&mut self, x: &Tensor, y: &Tensor) -> Result<StepOutput> {
        let logits = self.net.forward_t(x, true)?;
        let loss = logits.f_cross_entropy_loss::<Tensor>(y, None, Reduction::Mean, -100, 0.0)?;
        loss.f_backward()?;
        self.optimizer.step(&mut self.net.params)?;
        let correct =
            tch::no_grad(|| -> Result<Tensor> { Ok(logits.f_argmax(1, false)?.f_eq_tensor(y)?.f_sum(Kind::Int64)?) })?;
        Ok(StepOutput {
            loss: loss.f_double_value(&[])?,
            correct: correct.f_int64_value(&[])?,
            count: y.size()[0],
        })
    }

    /// A step on the dataset images at `indices`, augmented (random crop and flip) when `augment` holds a seed.
    pub fn step_indices(&mut self, data: &Dataset, indices: &[i64], augment: Option<u64>) -> Result<StepOutput> {
        self.check_dataset(data)?;
        if indices.is_empty() {
            return Err(Error::BadShape {
                what: "batch indices".into(),
                expected: "at least one index".into(),
                got: "none".into(),
            });
        }
        let (x, y) = data.gather_with(&data.index_tensor(indices)?, augment)?;
        self.step(&x, &y)
    }

    /// A step on already normalized floats `[N, C, H, W]` sent from the caller.
    pub fn step_floats(&mut self, pixels: &[f32], labels: &[i64]) -> Result<StepOutput> {
        let x = floats_to_batch(&self.net, pixels, labels.len(), "batch images")?;
        check_labels(labels, self.net.classes(), "batch labels")?;
        let y = Tensor::f_from_slice(labels)?.f_to_device(self.net.device)?;
        self.step(&x, &y)
    }

    /// Fails unless the dataset's image shape and classes are the ones the network expects.
    pub fn check_dataset(&self, data: &Dataset) -> Result<()> {
        check_dataset(&self.net, data)
    }
}

pub fn check_dataset(net: &Network, data: &Dataset) -> Result<()> {
    if data.shape != net.spec.input_shape {
        return Err(Error::BadShape {
            what: "dataset images".into(),
            expected: format!("{:?} (the model's inputShape)", net.spec.input_shape),
            got: format!("{:?}", data.shape),
        });
    }
    if data.classes > net.classes() {
        return Err(Error::BadShape {
            what: "dataset classes".into(),
            expected: format!("at most {} (the model's outputs)", net.classes()),
            got: data.classes.to_string(),
        });
    }
    if data.device() != net.device {
        return Err(Error::option(
            "dataset device",
            format!("{:?}, the model's", net.device),
            format!("{:?}", data.device()),
        ));
    }
    Ok(())
}

/// Checks that `len` values of `unit` hold `count` images of the network's input shape; returns `[N, C, H, W]`.
fn batch_shape(net: &Network, len: usize, count: usize, unit: &str, what: &str) -> Result<[i64; 4]> {
    let [c, h, w] = net.spec.input_shape;
    let n = count as i64;
    if count == 0 || len as i64 != n * c * h * w {
        return Err(Error::BadShape {
            what: what.into(),
            expected: format!("{n} × {c}×{h}×{w} = {} {unit} (N, C, H, W)", n * c * h * w),
            got: format!("{len} {unit}"),
        });
    }
    Ok([n, c, h, w])
}

/// Checks a flat float buffer against `count` images of the network's input shape and makes a batch of it.
pub fn floats_to_batch(net: &Network, pixels: &[f32], count: usize, what: &str) -> Result<Tensor> {
    let shape = batch_shape(net, pixels.len(), count, "floats", what)?;
    Ok(Tensor::f_from_slice(pixels)?.f_view(shape)?.f_to_device(net.device)?)
}

/// Checks uint8 pixels `[N, C, H, W]` against `count` images of the network's input shape, then normalizes them
/// into a float batch on the network's device.
pub fn pixels_to_batch(net: &Network, pixels: &[u8], count: usize, norm: &Normalization, what: &str) -> Result<Tensor> {
    let shape = batch_shape(net, pixels.len(), count, "bytes", what)?;
    norm.validate(shape[1])?;
    let x = Tensor::f_from_slice(pixels)?.f_view(shape)?.f_to_device(net.device)?;
    norm.apply(&x)
}
