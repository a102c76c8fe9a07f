//! A labelled image set kept resident as uint8 on the model's device; batches are gathered and normalized there.

use tch::{Device, Kind, Tensor};

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

    /// Normalizes uint8 pixels `[N, C, H, W]` into floats.
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
    pub labels: Tensor,
    pub shape: [i64; 3],
    pub classes: i64,
    pub normalization: Normalization,
    scale: Tensor,
    shift: Tensor,
}

impl Dataset {
    /// Copies `pixels` (N·C·H·W bytes, channel-first) and `labels` onto `device`.
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
            shape,
            classes,
            normalization,
            scale,
            shift,
        })
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
        Ok(Tensor::f_from_slice(indices)?.f_to_device(self.device())?)
    }

    /// The normalized float images and labels at `index` (a tensor from [`Dataset::index_tensor`]).
    pub fn gather(&self, index: &Tensor) -> Result<(Tensor, Tensor)> {
        self.gather_with(index, None)
    }

    /// Like [`Dataset::gather`], augmenting when `augment` holds a seed: each image is zero-padded by
    /// [`CROP_PADDING`] pixels, cropped back to its size at a random offset, and flipped left-right
    /// with probability 1/2, as torchvision's `RandomCrop(size, padding=4)` and `RandomHorizontalFlip()`.
    /// The draws depend only on the seed, so a run repeats (and resumes) exactly.
    pub fn gather_with(&self, index: &Tensor, augment: Option<u64>) -> Result<(Tensor, Tensor)> {
        let mut x = self.images.f_index_select(0, index)?;
        if let Some(seed) = augment {
            x = random_crop_flip(&x, seed)?;
        }
        let x = x.f_to_kind(Kind::Float)?.f_mul(&self.scale)?.f_add(&self.shift)?;
        Ok((x, self.labels.f_index_select(0, index)?))
    }
}

/// Zero padding around each image before the random crop.
pub const CROP_PADDING: i64 = 4;

/// SplitMix64: a tiny, well-mixed generator, enough for crop offsets and coin flips.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Crops and flips the whole batch with two gathers (rows, then columns) from the zero-padded batch,
/// the offsets and flips drawn per image; the flip is folded into the column index.
fn random_crop_flip(batch: &Tensor, seed: u64) -> Result<Tensor> {
    let [n, c, h, w] = <[i64; 4]>::try_from(batch.size()).expect("a batch is 4-d");
    let p = CROP_PADDING;
    let padded = batch.f_constant_pad_nd([p, p, p, p])?;
    let mut rng = SplitMix(seed);
    let mut rows = Vec::with_capacity((n * h) as usize);
    let mut cols = Vec::with_capacity((n * w) as usize);
    for _ in 0..n {
        let dy = rng.below(2 * p as u64 + 1) as i64;
        let dx = rng.below(2 * p as u64 + 1) as i64;
        let flip = rng.below(2) == 1;
        rows.extend((0..h).map(|r| dy + r));
        cols.extend((0..w).map(|x| dx + if flip { w - 1 - x } else { x }));
    }
    let device = batch.device();
    let rows = Tensor::f_from_slice(&rows)?
        .f_view([n, 1, h, 1])?
        .f_to_device(device)?
        .f_expand([n, c, h, w + 2 * p], false)?;
    let cols = Tensor::f_from_slice(&cols)?
        .f_view([n, 1, 1, w])?
        .f_to_device(device)?
        .f_expand([n, c, h, w], false)?;
    Ok(padded.f_gather(2, &rows, false)?.f_gather(3, &cols, false)?)
}
