//! torchvision's automatic augmentation policies on the device: TrivialAugmentWide (Müller & Hutter 2021) and
//! RandAugment (Cubuk et al. 2020). Their fourteen operations are computed as torchvision's tensor functions compute
//! them on uint8 images (the same float32 arithmetic, truncations and roundings, nearest-neighbour sampling, zero
//! fill), so one operation at one magnitude gives torchvision's pixels. Each image of a batch draws its own
//! operations, magnitudes and signs from the batch seed; the images that drew one operation go through it together.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::draw::{Draw, SplitMix};
use crate::error::{Error, Result};
use crate::host::host_bytes;
use crate::transfer::to_device;

/// One image operation, named as in torchvision's augmentation spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    Identity,
    /// Shear along x by `atan(magnitude)`, about the top-left corner.
    ShearX,
    ShearY,
    /// Shift by `magnitude` pixels, truncated to whole pixels.
    TranslateX,
    TranslateY,
    /// Rotate by `magnitude` degrees counter-clockwise about the centre.
    Rotate,
    /// Blend with black, factor `1 + magnitude`.
    Brightness,
    /// Blend with the grey image (saturation), factor `1 + magnitude`.
    Color,
    /// Blend with the grey image's mean, factor `1 + magnitude`.
    Contrast,
    /// Blend with a 3×3 smoothed image, factor `1 + magnitude`.
    Sharpness,
    /// Keep `magnitude` bits of each value.
    Posterize,
    /// Invert the values at or above `magnitude`.
    Solarize,
    /// Stretch each channel to 0–255.
    AutoContrast,
    /// Equalize each channel's histogram.
    Equalize,
}

impl Operation {
    /// Both policies' operations, in torchvision's order.
    pub const ALL: [Operation; 14] = [
        Operation::Identity,
        Operation::ShearX,
        Operation::ShearY,
        Operation::TranslateX,
        Operation::TranslateY,
        Operation::Rotate,
        Operation::Brightness,
        Operation::Color,
        Operation::Contrast,
        Operation::Sharpness,
        Operation::Posterize,
        Operation::Solarize,
        Operation::AutoContrast,
        Operation::Equalize,
    ];

    /// The operation named `name` (`shearX`, `autoContrast`, …).
    pub fn parse(name: &str) -> Result<Operation> {
        serde_json::from_value(serde_json::Value::String(name.to_owned())).map_err(|_| {
            let names: Vec<String> = Operation::ALL.iter().map(|op| format!("{:?}", op.name())).collect();
            Error::option("operation", format!("one of {}", names.join(", ")), format!("{name:?}"))
        })
    }

    /// Its name as options and the binding spell it.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Whether a policy applies the magnitude with a random sign.
    fn signed(self) -> bool {
        use Operation::*;
        matches!(
            self,
            ShearX | ShearY | TranslateX | TranslateY | Rotate | Brightness | Color | Contrast | Sharpness
        )
    }
}

/// Which policy draws the operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyName {
    TrivialAugmentWide,
    RandAugment,
}

/// A policy with its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// One operation per image at a random one of `bins` magnitudes (torchvision's `TrivialAugmentWide`).
    TrivialAugmentWide { bins: i64 },
    /// `ops` operations per image in a row, each at magnitude bin `magnitude` of `bins` (torchvision's `RandAugment`).
    RandAugment { ops: i64, magnitude: i64, bins: i64 },
}

impl Policy {
    pub fn validate(&self) -> Result<()> {
        let bins = self.bins();
        if bins < 2 {
            return Err(Error::option("augment.autoAugment.magnitudeBins", "at least 2", bins));
        }
        if let Policy::RandAugment { ops, magnitude, .. } = *self {
            if !(1..=16).contains(&ops) {
                return Err(Error::option("augment.autoAugment.numOps", "1 to 16", ops));
            }
            if !(0..bins).contains(&magnitude) {
                let expected = format!("a bin in 0..{bins} (magnitudeBins)");
                return Err(Error::option("augment.autoAugment.magnitude", expected, magnitude));
            }
        }
        Ok(())
    }

    /// How many magnitudes each operation's range is cut into.
    fn bins(&self) -> i64 {
        match *self {
            Policy::TrivialAugmentWide { bins } | Policy::RandAugment { bins, .. } => bins,
        }
    }

    /// The magnitudes `op` can take under this policy for `[height, width]` images, as torchvision's
    /// `_augmentation_space` builds them (float32 linspaces); empty for operations without a magnitude.
    fn magnitudes(&self, op: Operation, size: [i64; 2]) -> Result<Vec<f64>> {
        use Operation::*;
        let wide = matches!(self, Policy::TrivialAugmentWide { .. });
        let bins = self.bins();
        let linspace = |end: f64, start: f64| -> Result<Vec<f64>> {
            let t = Tensor::f_linspace(start, end, bins, (Kind::Float, Device::Cpu))?;
            Ok(Vec::<f32>::try_from(t)?.into_iter().map(f64::from).collect())
        };
        let (shear, rotate, blend) = if wide { (0.99, 135.0, 0.99) } else { (0.3, 30.0, 0.9) };
        Ok(match op {
            Identity | AutoContrast | Equalize => Vec::new(),
            ShearX | ShearY => linspace(shear, 0.0)?,
            TranslateX | TranslateY => {
                let side = if op == TranslateX { size[1] } else { size[0] };
                linspace(if wide { 32.0 } else { 150.0 / 331.0 * side as f64 }, 0.0)?
            }
            Rotate => linspace(rotate, 0.0)?,
            Brightness | Color | Contrast | Sharpness => linspace(blend, 0.0)?,
            Posterize => {
                // `8 - (arange(bins) / ((bins - 1) / k)).round()`, in float32 as torch divides an integer tensor.
                let divisor = ((bins - 1) as f64 / if wide { 6.0 } else { 4.0 }) as f32;
                (0..bins)
                    .map(|i| 8.0 - f64::from((i as f32 / divisor).round_ties_even()))
                    .collect()
            }
            Solarize => linspace(0.0, 255.0)?,
        })
    }
}

/// An automatic augmentation policy, applied to the uint8 images after crops and flips, before normalization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoAugment {
    pub policy: Policy,
}

/// Applies `aug`'s policy to a uint8 batch `[N, C, H, W]` with this batch's draws.
pub fn auto_augment(batch: &Tensor, aug: &AutoAugment, draw: &Draw) -> Result<Tensor> {
    let [n, _, h, w] = dims(batch)?;
    let tables = Operation::ALL
        .iter()
        .map(|&op| aug.policy.magnitudes(op, [h, w]))
        .collect::<Result<Vec<_>>>()?;
    let rounds = match aug.policy {
        Policy::TrivialAugmentWide { .. } => 1,
        Policy::RandAugment { ops, .. } => ops,
    };
    let mut rng = SplitMix(draw.batch_seed ^ 0xA070_A06E);
    let mut x = batch.shallow_clone();
    for _ in 0..rounds {
        // Each image's operation (an index into ALL) and magnitude this round.
        let mut drawn = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let k = rng.below(Operation::ALL.len() as u64) as usize;
            let (op, table) = (Operation::ALL[k], &tables[k]);
            let mut magnitude = match aug.policy {
                _ if table.is_empty() => 0.0,
                Policy::TrivialAugmentWide { .. } => table[rng.below(table.len() as u64) as usize],
                Policy::RandAugment { magnitude, .. } => table[magnitude as usize],
            };
            if op.signed() && rng.below(2) == 1 {
                magnitude = -magnitude;
            }
            drawn.push((k, magnitude));
        }
        for (k, &op) in Operation::ALL.iter().enumerate() {
            let (images, magnitudes): (Vec<i64>, Vec<f64>) = (0..n)
                .zip(&drawn)
                .filter(|(_, d)| d.0 == k)
                .map(|(i, d)| (i, d.1))
                .unzip();
            if images.is_empty() || op == Operation::Identity {
                continue;
            }
            let index = to_device(Tensor::f_from_slice(&images)?, x.device())?;
            let out = apply(op, &x.f_index_select(0, &index)?, &magnitudes)?;
            x = x.f_index_copy(0, &index, &out)?;
        }
    }
    Ok(x)
}

/// `op` at `magnitude` on every image of a uint8 batch `[N, C, H, W]`, as torchvision's `_apply_op` does it.
pub fn apply_operation(batch: &Tensor, op: Operation, magnitude: f64) -> Result<Tensor> {
    use Operation::*;
    let ok = magnitude.is_finite()
        && match op {
            Brightness | Color | Contrast | Sharpness => magnitude >= -1.0,
            Posterize => (0.0..9.0).contains(&magnitude),
            Solarize => magnitude <= 255.0,
            _ => true,
        };
    if !ok {
        let expected = match op {
            Posterize => "bits from 0 to 8",
            Solarize => "a threshold at most 255",
            _ => "a finite magnitude, at least -1 for a blend (its factor is 1 + magnitude)",
        };
        return Err(Error::option("magnitude", expected, magnitude));
    }
    let [n, ..] = dims(batch)?;
    apply(op, batch, &vec![magnitude; n as usize])
}

/// `[N, C, H, W]` of a uint8 batch of 1- or 3-channel images (what torchvision's operations take).
fn dims(batch: &Tensor) -> Result<[i64; 4]> {
    let size = batch.size();
    match <[i64; 4]>::try_from(size.as_slice()) {
        Ok(d) if batch.kind() == Kind::Uint8 && (d[1] == 1 || d[1] == 3) => Ok(d),
        _ => Err(Error::BadShape {
            what: "automatic augmentation".into(),
            expected: "uint8 images [N, 1 or 3, H, W]".into(),
            got: format!("{:?} {size:?}", batch.kind()),
        }),
    }
}

/// One value per image as an `[N, 1, 1, 1]` tensor on `device`, to broadcast over each image.
fn per_image<T: tch::kind::Element + Copy>(values: impl IntoIterator<Item = T>, device: Device) -> Result<Tensor> {
    let v: Vec<T> = values.into_iter().collect();
    to_device(Tensor::f_from_slice(&v)?.f_view([-1, 1, 1, 1])?, device)
}

/// `op` on each image of `x` at its own magnitude.
fn apply(op: Operation, x: &Tensor, magnitudes: &[f64]) -> Result<Tensor> {
    use Operation::*;
    let [_, c, h, w] = dims(x)?;
    let device = x.device();
    let blend_with = |other: &Tensor| blend(x, other, magnitudes.iter().map(|m| 1.0 + m));
    match op {
        Identity => Ok(x.shallow_clone()),
        ShearX | ShearY | TranslateX | TranslateY | Rotate => {
            let matrices: Vec<[f64; 6]> = magnitudes.iter().map(|&m| geometry(op, m, [h, w])).collect();
            warp(x, &matrices)
        }
        Brightness => blend_with(&x.f_zeros_like()?),
        Color if c == 1 => Ok(x.shallow_clone()),
        Color => blend_with(&grey(x)?.f_expand_as(x)?),
        Contrast => {
            let mean = grey(x)?
                .f_to_kind(Kind::Float)?
                .f_mean_dim(&[1i64, 2, 3][..], true, None)?;
            blend_with(&mean)
        }
        Sharpness if h <= 2 || w <= 2 => Ok(x.shallow_clone()),
        Sharpness => blend_with(&smoothed(x)?),
        Posterize => {
            // torchvision's `img & -2^(8 - bits)`, the int mask cast to uint8.
            let masks = per_image(magnitudes.iter().map(|&b| (-(1i64 << (8 - b as i64))) as u8), device)?;
            Ok(x.f_bitwise_and_tensor(&masks)?)
        }
        Solarize => {
            let thresholds = per_image(magnitudes.iter().map(|&m| m as f32), device)?;
            let above = x.f_to_kind(Kind::Float)?.f_ge_tensor(&thresholds)?;
            Ok(x.f_bitwise_not()?.f_where_self(&above, x)?)
        }
        AutoContrast => auto_contrast(x),
        Equalize => equalize(x),
    }
}

/// torchvision's `_blend`: `(r · x + (1 − r) · other)` in float32, clamped to 0–255 and truncated to uint8.
fn blend(x: &Tensor, other: &Tensor, ratios: impl Iterator<Item = f64> + Clone) -> Result<Tensor> {
    let device = x.device();
    let r = per_image(ratios.clone().map(|r| r as f32), device)?;
    let rest = per_image(ratios.map(|r| (1.0 - r) as f32), device)?;
    let mixed = x
        .f_to_kind(Kind::Float)?
        .f_mul(&r)?
        .f_add(&other.f_to_kind(Kind::Float)?.f_mul(&rest)?)?;
    Ok(mixed.f_clamp(0.0, 255.0)?.f_to_kind(Kind::Uint8)?)
}

/// torchvision's `rgb_to_grayscale` of uint8 images: `[N, 1, H, W]`, the weighted sum truncated to uint8.
fn grey(x: &Tensor) -> Result<Tensor> {
    if x.size()[1] == 1 {
        return Ok(x.shallow_clone());
    }
    let channel = |i: i64, weight: f64| x.f_select(1, i)?.f_mul_scalar(weight);
    let sum = channel(0, 0.2989)?
        .f_add(&channel(1, 0.587)?)?
        .f_add(&channel(2, 0.114)?)?;
    Ok(sum.f_to_kind(Kind::Uint8)?.f_unsqueeze(1)?)
}

/// torchvision's `_blurred_degenerate_image`: the inside smoothed by [[1,1,1],[1,5,1],[1,1,1]] / 13 and rounded, the
/// border as it was.
fn smoothed(x: &Tensor) -> Result<Tensor> {
    let [_, c, h, w] = dims(x)?;
    let mut kernel = [1f32; 9];
    kernel[4] = 5.0;
    let total: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / total).collect();
    let kernel =
        to_device(Tensor::f_from_slice(&kernel)?.f_view([1, 1, 3, 3])?, x.device())?.f_expand([c, 1, 3, 3], false)?;
    let inner = x
        .f_to_kind(Kind::Float)?
        .f_conv2d(&kernel, None::<Tensor>, [1, 1], [0, 0], [1, 1], c)?
        .f_round()?
        .f_to_kind(Kind::Uint8)?;
    let out = x.f_detach_copy()?;
    out.f_narrow(2, 1, h - 2)?.f_narrow(3, 1, w - 2)?.f_copy_(&inner)?;
    Ok(out)
}

/// torchvision's `autocontrast`: each channel stretched from its min–max to 0–255 (left as it is when flat).
fn auto_contrast(x: &Tensor) -> Result<Tensor> {
    let low = x.f_amin(&[2i64, 3][..], true)?.f_to_kind(Kind::Float)?;
    let high = x.f_amax(&[2i64, 3][..], true)?.f_to_kind(Kind::Float)?;
    // `255 / (max − min)`: Python's number-over-tensor is torch's `reciprocal() * 255`, rounded as that rounds.
    let scale = high.f_sub(&low)?.f_reciprocal()?.f_mul_scalar(255.0)?;
    let flat = scale.f_isfinite()?.f_logical_not()?;
    let low = low.f_masked_fill(&flat, 0.0)?;
    let scale = scale.f_masked_fill(&flat, 1.0)?;
    let out = x.f_to_kind(Kind::Float)?.f_sub(&low)?.f_mul(&scale)?;
    Ok(out.f_clamp(0.0, 255.0)?.f_to_kind(Kind::Uint8)?)
}

/// torchvision's `equalize`: each channel's values mapped through the lookup table its histogram gives; a channel
/// with a single value, or too few pixels besides its brightest, is left as it is.
fn equalize(x: &Tensor) -> Result<Tensor> {
    let [n, c, h, w] = dims(x)?;
    let values = x.f_reshape([n * c, h * w])?.f_to_kind(Kind::Int64)?;
    let ones = values.f_ones_like()?;
    let hist = Tensor::f_zeros([n * c, 256], (Kind::Int64, x.device()))?.f_scatter_add(1, &values, &ones)?;
    // The count of every non-empty bin but the last is every pixel but those at the channel's maximum.
    let brightest = hist.f_gather(1, &values.f_amax(&[1i64][..], true)?, false)?;
    let step = brightest.f_neg()?.f_add_scalar(h * w)?.f_floor_divide_scalar(255)?;
    let unchanged = step.f_eq(0)?;
    let step = step.f_clamp_min(1)?;
    let lut = hist
        .f_cumsum(1, Kind::Int64)?
        .f_add(&step.f_floor_divide_scalar(2)?)?
        .f_floor_divide(&step)?;
    // Shifted one bin right, as `pad(lut, [1, 0])[:-1]`.
    let lut = Tensor::f_cat(&[lut.f_zeros_like()?.f_narrow(1, 0, 1)?, lut.f_narrow(1, 0, 255)?], 1)?.f_clamp(0, 255)?;
    let mapped = values.f_where_self(&unchanged, &lut.f_gather(1, &values, false)?)?;
    Ok(mapped.f_to_kind(Kind::Uint8)?.f_view([n, c, h, w])?)
}

/// `math.degrees` and `math.radians` as CPython computes them, so the matrices match torchvision's to the bit.
fn degrees(radians: f64) -> f64 {
    radians * (180.0 / std::f64::consts::PI)
}

fn radians(degrees: f64) -> f64 {
    degrees * (std::f64::consts::PI / 180.0)
}

/// torchvision's `_get_inverse_affine_matrix` at scale 1: output pixel → input pixel, in coordinates centred on the
/// image, about `center`, as `[a, b, c, d, e, f]`.
fn inverse_affine(center: [f64; 2], angle: f64, translate: [f64; 2], shear: [f64; 2]) -> [f64; 6] {
    let (rot, sx, sy) = (radians(angle), radians(shear[0]), radians(shear[1]));
    let [cx, cy] = center;
    let [tx, ty] = translate;
    let a = (rot - sy).cos() / sy.cos();
    let b = -(rot - sy).cos() * sx.tan() / sy.cos() - rot.sin();
    let c = (rot - sy).sin() / sy.cos();
    let d = -(rot - sy).sin() * sx.tan() / sy.cos() + rot.cos();
    let mut m = [d, -b, 0.0, -c, a, 0.0];
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
    m[2] += cx;
    m[5] += cy;
    m
}

/// The inverse matrix of a geometric operation at `magnitude` on `[h, w]` images, as `_apply_op` calls `F.affine`
/// and `F.rotate`: shears about the top-left corner, translations by whole pixels, rotations about the centre.
fn geometry(op: Operation, magnitude: f64, [h, w]: [i64; 2]) -> [f64; 6] {
    let corner = [-(w as f64 * 0.5), -(h as f64 * 0.5)];
    let shear = degrees(magnitude.atan());
    match op {
        Operation::ShearX => inverse_affine(corner, 0.0, [0.0, 0.0], [shear, 0.0]),
        Operation::ShearY => inverse_affine(corner, 0.0, [0.0, 0.0], [0.0, shear]),
        Operation::TranslateX => inverse_affine([0.0, 0.0], 0.0, [magnitude.trunc(), 0.0], [0.0, 0.0]),
        Operation::TranslateY => inverse_affine([0.0, 0.0], 0.0, [0.0, magnitude.trunc()], [0.0, 0.0]),
        _ => inverse_affine([0.0, 0.0], -magnitude, [0.0, 0.0], [0.0, 0.0]),
    }
}

/// Resamples each image through its inverse matrix by nearest neighbour, zero outside, as torchvision's
/// `_gen_affine_grid` and `_apply_grid_transform` do: the grid in pixel units about the centre, multiplied by
/// the matrix, then scaled to grid_sample's [-1, 1].
fn warp(x: &Tensor, matrices: &[[f64; 6]]) -> Result<Tensor> {
    let [n, _, h, w] = dims(x)?;
    let device = x.device();
    let options = (Kind::Float, device);
    let xs = Tensor::f_linspace(-(w as f64) * 0.5 + 0.5, w as f64 * 0.5 + 0.5 - 1.0, w, options)?;
    let ys = Tensor::f_linspace(-(h as f64) * 0.5 + 0.5, h as f64 * 0.5 + 0.5 - 1.0, h, options)?;
    let base = Tensor::f_stack(
        &[
            xs.f_view([1, w])?.f_expand([h, w], false)?,
            ys.f_view([h, 1])?.f_expand([h, w], false)?,
            Tensor::f_ones([h, w], options)?,
        ],
        2,
    )?
    .f_view([1, h * w, 3])?
    .f_expand([n, h * w, 3], false)?;
    let theta: Vec<f32> = matrices.iter().flat_map(|m| m.map(|v| v as f32)).collect();
    let theta = to_device(Tensor::f_from_slice(&theta)?.f_view([n, 2, 3])?, device)?;
    let half = to_device(Tensor::f_from_slice(&[0.5 * w as f32, 0.5 * h as f32])?, device)?;
    let grid = base
        .f_bmm(&theta.f_transpose(1, 2)?.f_div(&half)?)?
        .f_view([n, h, w, 2])?;
    // Nearest (1) with zero padding (0), corners not aligned.
    let out = x.f_to_kind(Kind::Float)?.f_grid_sampler(&grid, 1, 0, false)?;
    Ok(out.f_round()?.f_to_kind(Kind::Uint8)?)
}

/// [`apply_operation`] on images held as bytes (`N·C·H·W`, channel-first, each image `shape`), run on `device`.
pub fn apply_operation_to_bytes(
    pixels: &[u8],
    shape: [i64; 3],
    op: Operation,
    magnitude: f64,
    device: Device,
) -> Result<Vec<u8>> {
    let image: i64 = shape.iter().product();
    if image <= 0 || pixels.len() as i64 % image != 0 {
        return Err(Error::BadShape {
            what: "pixels".into(),
            expected: format!("a multiple of {image} bytes (images of {shape:?})"),
            got: format!("{} bytes", pixels.len()),
        });
    }
    let n = pixels.len() as i64 / image;
    let batch = to_device(
        Tensor::f_from_slice(pixels)?.f_view([n, shape[0], shape[1], shape[2]])?,
        device,
    )?;
    host_bytes(&apply_operation(&batch, op, magnitude)?)
}
