//! A labelled image set kept resident as uint8 on the model's device; batches are gathered, cropped,
//! augmented and normalized there. Images may be stored larger than the model's input (a margin for random
//! crops): evaluation then takes the centre, training a random crop or a random-resized crop.

use tch::{Device, Kind, Tensor};

use crate::augment::{crop_flip, cutout, mix_batch, random_erasing, resized_crop, to_bytes, to_float, Augment};
use crate::auto_augment::auto_augment;
use crate::draw::Draw;
use crate::error::{Error, Result};

/// Per-channel normalization: `x = (pixel / 255 - mean) / std`.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalization {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Normalization {
    pub fn validate(&self, channels: i64) -> Result<()> {
        let c = channels as usize;
        if self.mean.len() != c || self.std.len() != c {
            return Err(Error::option(
                "normalization",
                format!("mean and std with {c} value(s), one per channel"),
                format!("{} mean and {} std", self.mean.len(), self.std.len()),
            ));
        }
        if let Some(s) = self.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(Error::option("normalization.std", "finite values > 0", s));
        }
        Ok(())
    }

    /// Scale and shift as `[1, C, 1, 1]` tensors, so normalizing is one fused multiply-add.
    fn affine(&self, device: Device) -> Result<(Tensor, Tensor)> {
        let c = self.mean.len() as i64;
        let scale: Vec<f32> = self.std.iter().map(|s| (1.0 / (255.0 * s)) as f32).collect();
        let shift: Vec<f32> = self.mean.iter().zip(&self.std).map(|(m, s)| (-m / s) as f32).collect();
        let to =
            |v: &[f32]| -> Result<Tensor> { Ok(Tensor::f_from_slice(v)?.f_view([1, c, 1, 1])?.f_to_device(device)?) };
        Ok((to(&scale)?, to(&shift)?))
    }

    /// Normalizes pixels `[N, C, H, W]` (uint8, or floats on the 0–255 scale) into floats.
    pub fn apply(&self, pixels: &Tensor) -> Result<Tensor> {
        let (scale, shift) = self.affine(pixels.device())?;
        Ok(pixels.f_to_kind(Kind::Float)?.f_mul(&scale)?.f_add(&shift)?)
    }
}

/// Checks labels against the class count before they reach libtorch, which would abort on them.
pub fn check_labels(labels: &[i64], classes: i64, what: &str) -> Result<()> {
    if let Some((position, &label)) = labels.iter().enumerate().find(|(_, &l)| l < 0 || l >= classes) {
        return Err(Error::LabelOutOfRange {
            what: what.to_owned(),
            label,
            position,
            classes,
        });
    }
    Ok(())
}

/// Images `[N, C, H, W]` as uint8 and their labels, on one device.
#[derive(Debug)]
pub struct Dataset {
    pub images: Tensor,
    /// One class index per image (for multi-label data, its first label: what stratified splits go by).
    pub labels: Tensor,
    /// Multi-label data: `[N, classes]` floats, 1 where the image has that label, 0 elsewhere; batches then carry
    /// these rows as their targets (binary cross-entropy) instead of `labels`.
    pub targets: Option<Tensor>,
    pub shape: [i64; 3],
    pub classes: i64,
    pub normalization: Normalization,
    scale: Tensor,
    shift: Tensor,
}

impl Dataset {
    /// Copies `pixels` (N·C·H·W bytes, channel-first) and `labels` onto `device`, once.
    pub fn new(
        pixels: &[u8],
        labels: &[i64],
        shape: [i64; 3],
        classes: i64,
        normalization: Normalization,
        device: Device,
    ) -> Result<Self> {
        if shape.iter().any(|&d| d <= 0) {
            return Err(Error::option(
                "shape",
                "[channels, height, width] of positive sizes",
                format!("{shape:?}"),
            ));
        }
        if classes <= 0 {
            return Err(Error::option("classes", "a count > 0", classes));
        }
        let per_image: i64 = shape.iter().product();
        let n = labels.len() as i64;
        if pixels.len() as i64 != n * per_image {
            return Err(Error::BadShape {
                what: "dataset pixels".into(),
                expected: format!("{n} labels × {per_image} bytes ({shape:?}) = {} bytes", n * per_image),
                got: format!("{} bytes", pixels.len()),
            });
        }
        check_labels(labels, classes, "dataset labels")?;
        normalization.validate(shape[0])?;
        let images = Tensor::f_from_slice(pixels)?
            .f_view([n, shape[0], shape[1], shape[2]])?
            .f_to_device(device)?;
        let labels = Tensor::f_from_slice(labels)?.f_to_device(device)?;
        let (scale, shift) = normalization.affine(device)?;
        Ok(Dataset {
            images,
            labels,
            targets: None,
            shape,
            classes,
            normalization,
            scale,
            shift,
        })
    }

    /// Makes the data multi-label: `targets` holds `N × classes` bytes, 1 where an image has a label, else 0.
    pub fn set_targets(&mut self, targets: &[u8]) -> Result<()> {
        let (n, classes) = (self.len(), self.classes);
        if targets.len() as i64 != n * classes {
            return Err(Error::BadShape {
                what: "dataset targets".into(),
                expected: format!("{n} images × {classes} classes = {} bytes", n * classes),
                got: format!("{} bytes", targets.len()),
            });
        }
        if let Some(at) = targets.iter().position(|&t| t > 1) {
            return Err(Error::BadShape {
                what: format!(
                    "dataset targets (image {}, class {})",
                    at as i64 / classes,
                    at as i64 % classes
                ),
                expected: "0 or 1".into(),
                got: targets[at].to_string(),
            });
        }
        let t = Tensor::f_from_slice(targets)?
            .f_view([n, classes])?
            .f_to_kind(Kind::Float)?;
        self.targets = Some(t.f_to_device(self.device())?);
        Ok(())
    }

    /// Whether batches carry multi-hot targets (see [`Dataset::set_targets`]).
    pub fn multi_label(&self) -> bool {
        self.targets.is_some()
    }

    pub fn len(&self) -> i64 {
        self.labels.size()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn device(&self) -> Device {
        self.images.device()
    }

    /// Checks indices and turns them into an index tensor on the dataset's device.
    pub fn index_tensor(&self, indices: &[i64]) -> Result<Tensor> {
        let n = self.len();
        if let Some((at, bad)) = indices.iter().enumerate().find(|(_, &i)| i < 0 || i >= n) {
            return Err(Error::BadShape {
                what: format!("batch indices[{at}]"),
                expected: format!("an index in 0..{n}"),
                got: bad.to_string(),
            });
        }
        crate::transfer::to_device(Tensor::f_from_slice(indices)?, self.device())
    }

    /// The images at `indices` as normalized floats of `out` (`[height, width]`) and their labels (multi-hot rows for
    /// multi-label data): the centre
    /// of each image when no augmentation is given, else cropped, flipped and cut out as `augment` says, with
    /// the draws of `draw`.
    pub fn batch(
        &self,
        indices: &[i64],
        out: [i64; 2],
        augment: Option<(&Augment, &Draw)>,
    ) -> Result<(Tensor, Tensor)> {
        let index = self.index_tensor(indices)?;
        let raw = self.images.f_index_select(0, &index)?;
        let labels = match &self.targets {
            Some(targets) => targets.f_index_select(0, &index)?,
            None => self.labels.f_index_select(0, &index)?,
        };
        let default = Augment::default();
        let (aug, draw) = match augment {
            Some((a, d)) => (a, Some(d)),
            None => (&default, None),
        };
        // Pixels on the 0–255 scale: uint8, or floats where a resized crop interpolated them.
        let pixels = match (aug.resized_crop.as_ref(), draw) {
            (Some(rc), Some(d)) => resized_crop(&to_float(&raw)?, indices, out, rc, aug.flip, d)?,
            _ => {
                let same =
                    out == [self.shape[1], self.shape[2]] && aug.crop_padding == 0 && aug.flip == Default::default();
                if same || draw.is_none() && out == [self.shape[1], self.shape[2]] {
                    raw
                } else {
                    crop_flip(&raw, indices, out, aug, draw)?
                }
            }
        };
        let pixels = match (draw, aug.auto_augment.as_ref()) {
            // torchvision's operations work on uint8 images, as a resized crop gives them there.
            (Some(d), Some(aa)) => auto_augment(&to_bytes(&pixels)?, aa, d)?,
            _ => pixels,
        };
        let x = pixels.f_to_kind(Kind::Float)?.f_mul(&self.scale)?.f_add(&self.shift)?;
        let x = match draw {
            Some(d) if aug.cutout > 0 => cutout(&x, aug.cutout, d)?,
            _ => x,
        };
        let x = match (draw, aug.random_erasing.as_ref()) {
            (Some(d), Some(re)) if re.probability > 0.0 => random_erasing(&x, re, d)?,
            _ => x,
        };
        match (draw, aug.mix.as_ref()) {
            // Mixed batches carry soft targets `[N, classes]`: one-hot rows (multi-hot for multi-label data) mixed.
            (Some(d), Some(mix)) => {
                let rows = if self.multi_label() {
                    labels
                } else {
                    labels.f_one_hot(self.classes)?.f_to_kind(Kind::Float)?
                };
                mix_batch(&x, &rows, mix, d)
            }
            _ => Ok((x, labels)),
        }
    }
}
