//! Augmentation on the device, batch by batch: random crops from zero- or reflect-padded images, random or
//! alternating flips, random-resized crops, cutout, random erasing and mixing (the automatic policies are in
//! `auto_augment`). Every draw comes from a seed, so a run repeats (and resumes) exactly; all images of a batch
//! are cropped and flipped with two gathers or one `grid_sample`.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::auto_augment::AutoAugment;
use crate::draw::{Draw, SplitMix};
use crate::error::{Error, Result};
use crate::transfer::to_device;

/// How the border is filled for random crops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PadMode {
    #[default]
    Zeros,
    /// Mirror the image at its edge (without repeating the edge pixel), as `F.pad(mode='reflect')`.
    Reflect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flip {
    #[default]
    None,
    /// Each image flipped left-right with probability 1/2, drawn anew each time.
    Random,
    /// Each image gets one random flip for the whole run, inverted every other epoch, so consecutive epochs see
    /// both orientations (airbench's alternating flip).
    Alternating,
}

/// Random-resized crop: a box of `scale` of the area and `ratio` aspect, resized to the model's input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResizedCrop {
    pub scale: [f64; 2],
    pub ratio: [f64; 2],
}

/// What a training batch goes through. The default does nothing.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Augment {
    /// Random crop back to the input size from this much padding on each side (0: none).
    pub crop_padding: i64,
    pub pad_mode: PadMode,
    pub flip: Flip,
    /// The side of a square zeroed (after normalization: the mean) at a random place in each image; 0 for none.
    pub cutout: i64,
    pub resized_crop: Option<ResizedCrop>,
    /// TrivialAugmentWide or RandAugment on the uint8 pixels after crops and flips, before normalization.
    pub auto_augment: Option<AutoAugment>,
    pub random_erasing: Option<RandomErasing>,
    pub mix: Option<Mix>,
}

/// Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) as timm's `Mixup` in its batch mode: with probability
/// `probability` a batch is mixed with itself reversed, by one λ drawn from Beta(α, α): blended (mixup) or with a box
/// of area 1 − λ pasted in (CutMix, λ then corrected to the box's clipped area), `switch_probability` choosing CutMix
/// where both are on. The targets mix alike: λ of the image's and 1 − λ of its partner's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mix {
    /// Mixup's α; 0 turns mixup off.
    pub mixup_alpha: f64,
    /// CutMix's α; 0 turns CutMix off.
    pub cutmix_alpha: f64,
    pub probability: f64,
    pub switch_probability: f64,
}

/// Random erasing (Zhong et al. 2020) as torchvision's `RandomErasing(p, scale, ratio, value=0)`: with probability
/// `probability` per image, a box of `scale` of the area and `ratio` aspect (height over width; ten tries for one that
/// fits, else none) set to 0 after normalization, the mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomErasing {
    pub probability: f64,
    pub scale: [f64; 2],
    pub ratio: [f64; 2],
}

impl Augment {
    pub fn validate(&self) -> Result<()> {
        if self.crop_padding < 0 || self.cutout < 0 {
            return Err(Error::option(
                "augment",
                "cropPadding and cutout >= 0",
                self.crop_padding.min(self.cutout),
            ));
        }
        if let Some(m) = self.mix {
            let ok = m.mixup_alpha >= 0.0
                && m.cutmix_alpha >= 0.0
                && m.mixup_alpha.is_finite()
                && m.cutmix_alpha.is_finite()
                && (0.0..=1.0).contains(&m.probability)
                && (0.0..=1.0).contains(&m.switch_probability);
            if !ok {
                return Err(Error::option(
                    "augment.mix",
                    "mixupAlpha and cutmixAlpha finite and >= 0, probability and switchProbability in [0, 1]",
                    format!("{m:?}"),
                ));
            }
        }
        if let Some(re) = self.random_erasing {
            let ok = (0.0..=1.0).contains(&re.probability)
                && positive_range(re.scale)
                && re.scale[1] < 1.0
                && positive_range(re.ratio);
            if !ok {
                return Err(Error::option(
                    "augment.randomErasing",
                    "probability in [0, 1], 0 < scale[0] <= scale[1] < 1 and 0 < ratio[0] <= ratio[1]",
                    format!(
                        "probability {}, scale {:?}, ratio {:?}",
                        re.probability, re.scale, re.ratio
                    ),
                ));
            }
        }
        if let Some(aa) = self.auto_augment {
            aa.policy.validate()?;
        }
        if let Some(rc) = self.resized_crop {
            let ok = positive_range(rc.scale) && rc.scale[1] <= 1.0 && positive_range(rc.ratio);
            if !ok {
                return Err(Error::option(
                    "augment.resizedCrop",
                    "0 < scale[0] <= scale[1] <= 1 and 0 < ratio[0] <= ratio[1]",
                    format!("scale {:?}, ratio {:?}", rc.scale, rc.ratio),
                ));
            }
        }
        Ok(())
    }

    pub fn is_none(&self) -> bool {
        *self == Augment::default()
    }
}

/// `[low, high]` with 0 < low <= high.
fn positive_range(r: [f64; 2]) -> bool {
    r[0] > 0.0 && r[0] <= r[1]
}

/// The sides of a random box of `scale` of `area` with aspect `ratio` (drawn log-uniformly), as torchvision's
/// `RandomResizedCrop` and `RandomErasing` draw them: `(√(area·aspect), √(area / aspect))`, rounded. Which side is
/// the width is the caller's: the crop's aspect is width over height, erasing's height over width.
fn box_sides(area: f64, scale: [f64; 2], ratio: [f64; 2], rng: &mut SplitMix) -> (i64, i64) {
    let target = area * (scale[0] + (scale[1] - scale[0]) * rng.unit());
    let (log_lo, log_hi) = (ratio[0].ln(), ratio[1].ln());
    let aspect = (log_lo + (log_hi - log_lo) * rng.unit()).exp();
    (
        (target * aspect).sqrt().round() as i64,
        (target / aspect).sqrt().round() as i64,
    )
}

/// Whether image `index` is flipped at `epoch`.
fn flipped(flip: Flip, draw: &Draw, index: i64, rng: &mut SplitMix) -> bool {
    match flip {
        Flip::None => false,
        Flip::Random => rng.below(2) == 1,
        Flip::Alternating => {
            let base = SplitMix(draw.run_seed ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64() & 1 == 1;
            base ^ (draw.epoch % 2 == 1)
        }
    }
}

fn reflect(v: i64, n: i64) -> i64 {
    // One reflection suffices: padding never exceeds the image (checked by the caller).
    if v < 0 {
        -v
    } else if v >= n {
        2 * (n - 1) - v
    } else {
        v
    }
}

fn index_tensor(v: &[i64], shape: [i64; 4], device: Device) -> Result<Tensor> {
    to_device(Tensor::f_from_slice(v)?.f_view(shape)?, device)
}

/// Crops `out` (`[h, w]`) from each image of a uint8 batch `[N, C, H, W]`: at a random offset within `padding`
/// (zeros or reflected) when `random`, else centred; flipped per `flip`. Two gathers, whatever the batch size.
pub fn crop_flip(batch: &Tensor, indices: &[i64], out: [i64; 2], aug: &Augment, draw: Option<&Draw>) -> Result<Tensor> {
    let [n, c, h, w] = <[i64; 4]>::try_from(batch.size()).expect("a batch is 4-d");
    let p = if draw.is_some() { aug.crop_padding } else { 0 };
    if aug.pad_mode == PadMode::Reflect && (p >= h || p >= w) {
        return Err(Error::option(
            "augment.cropPadding",
            format!("less than the image size with reflect padding ({h}×{w})"),
            p,
        ));
    }
    let (ph, pw) = (h + 2 * p, w + 2 * p);
    if out[0] > ph || out[1] > pw {
        return Err(Error::BadShape {
            what: "dataset images".into(),
            expected: format!("at least the model's input {}×{}", out[0], out[1]),
            got: format!("{h}×{w}"),
        });
    }
    let mut rng = SplitMix(draw.map(|d| d.batch_seed).unwrap_or(0));
    let zeros = p > 0 && aug.pad_mode == PadMode::Zeros;
    let (source, source_w) = if zeros {
        (batch.f_constant_pad_nd([p, p, p, p])?, pw)
    } else {
        (batch.shallow_clone(), w)
    };
    let mut rows = Vec::with_capacity((n * out[0]) as usize);
    let mut cols = Vec::with_capacity((n * out[1]) as usize);
    for &index in indices.iter().take(n as usize) {
        let (dy, dx, flip) = match draw {
            Some(d) => (
                rng.below((ph - out[0] + 1) as u64) as i64,
                rng.below((pw - out[1] + 1) as u64) as i64,
                flipped(aug.flip, d, index, &mut rng),
            ),
            None => ((ph - out[0]) / 2, (pw - out[1]) / 2, false),
        };
        // Coordinates in the padded image; reflect padding maps them back into the image instead.
        let map = |v: i64, size: i64| if zeros || p == 0 { v } else { reflect(v - p, size) };
        rows.extend((0..out[0]).map(|r| map(dy + r, h)));
        cols.extend((0..out[1]).map(|x| map(dx + if flip { out[1] - 1 - x } else { x }, w)));
    }
    let device = batch.device();
    let rows = index_tensor(&rows, [n, 1, out[0], 1], device)?.f_expand([n, c, out[0], source_w], false)?;
    let cols = index_tensor(&cols, [n, 1, 1, out[1]], device)?.f_expand([n, c, out[0], out[1]], false)?;
    Ok(source.f_gather(2, &rows, false)?.f_gather(3, &cols, false)?)
}

/// Random-resized crops of a float batch `[N, C, H, W]` to `out`, flipped per `flip`, by bilinear `grid_sample`
/// (torchvision's `RandomResizedCrop` box sampling: ten tries for a box that fits, else the central crop).
pub fn resized_crop(
    batch: &Tensor,
    indices: &[i64],
    out: [i64; 2],
    rc: &ResizedCrop,
    flip: Flip,
    draw: &Draw,
) -> Result<Tensor> {
    let [n, c, h, w] = <[i64; 4]>::try_from(batch.size()).expect("a batch is 4-d");
    let mut rng = SplitMix(draw.batch_seed);
    let area = (h * w) as f64;
    let mut theta = Vec::with_capacity((n * 6) as usize);
    for &index in indices.iter().take(n as usize) {
        let mut chosen = None;
        for _ in 0..10 {
            let (bw, bh) = box_sides(area, rc.scale, rc.ratio, &mut rng);
            if bw > 0 && bh > 0 && bw <= w && bh <= h {
                let top = rng.below((h - bh + 1) as u64) as i64;
                let left = rng.below((w - bw + 1) as u64) as i64;
                chosen = Some((top, left, bh, bw));
                break;
            }
        }
        let (top, left, bh, bw) = chosen.unwrap_or_else(|| {
            // torchvision's fallback: the largest central box within the ratio bounds.
            let in_ratio = w as f64 / h as f64;
            let (bw, bh) = if in_ratio < rc.ratio[0] {
                (w, (w as f64 / rc.ratio[0]).round() as i64)
            } else if in_ratio > rc.ratio[1] {
                ((h as f64 * rc.ratio[1]).round() as i64, h)
            } else {
                (w, h)
            };
            ((h - bh) / 2, (w - bw) / 2, bh, bw)
        });
        let mirror = if flipped(flip, draw, index, &mut rng) {
            -1.0
        } else {
            1.0
        };
        // Output coordinates in [-1, 1] map onto the box, in grid_sample's align_corners=False convention.
        let (sx, sy) = (bw as f64 / w as f64, bh as f64 / h as f64);
        let tx = (2.0 * left as f64 + bw as f64) / w as f64 - 1.0;
        let ty = (2.0 * top as f64 + bh as f64) / h as f64 - 1.0;
        theta.extend_from_slice(&[(sx * mirror) as f32, 0.0, tx as f32, 0.0, sy as f32, ty as f32]);
    }
    let theta = to_device(Tensor::f_from_slice(&theta)?.f_view([n, 2, 3])?, batch.device())?;
    let grid = Tensor::f_affine_grid_generator(&theta, [n, c, out[0], out[1]], false)?;
    Ok(batch.f_grid_sampler(&grid, 0, 0, false)?)
}

/// A box of one image: `[top, left, height, width]`, already within the image.
type Box4 = [i64; 4];

/// Zeroes each image's boxes (none for `None`) in a float batch, in one multiply by a mask.
fn zero_boxes(batch: &Tensor, boxes: &[Option<Box4>]) -> Result<Tensor> {
    let [n, _, h, w] = <[i64; 4]>::try_from(batch.size()).expect("a batch is 4-d");
    let mut mask = vec![1f32; (n * h * w) as usize];
    for (i, b) in boxes.iter().enumerate() {
        let Some([top, left, bh, bw]) = *b else { continue };
        for y in top..top + bh {
            let row = (i as i64 * h + y) * w;
            mask[(row + left) as usize..(row + left + bw) as usize].fill(0.0);
        }
    }
    let mask = to_device(Tensor::f_from_slice(&mask)?.f_view([n, 1, h, w])?, batch.device())?;
    Ok(batch.f_mul(&mask.f_to_kind(batch.kind())?)?)
}

/// Zeroes a `size`×`size` square at a random centre in each image of a float batch (clipped at the borders).
pub fn cutout(batch: &Tensor, size: i64, draw: &Draw) -> Result<Tensor> {
    let [n, _, h, w] = <[i64; 4]>::try_from(batch.size()).expect("a batch is 4-d");
    let mut rng = SplitMix(draw.batch_seed ^ 0xC0_7C07);
    let boxes: Vec<Option<Box4>> = (0..n)
        .map(|_| {
            let (cy, cx) = (rng.below(h as u64) as i64, rng.below(w as u64) as i64);
            let (top, left) = ((cy - size / 2).max(0), (cx - size / 2).max(0));
            let (bottom, right) = ((cy - size / 2 + size).min(h), (cx - size / 2 + size).min(w));
            Some([top, left, bottom - top, right - left])
        })
        .collect();
    zero_boxes(batch, &boxes)
}

/// torchvision's `RandomErasing.get_params` for one `h`×`w` image: ten tries at an area and aspect, the first box
/// that fits strictly inside.
fn erasing_box(re: &RandomErasing, h: i64, w: i64, rng: &mut SplitMix) -> Option<Box4> {
    for _ in 0..10 {
        let (bh, bw) = box_sides((h * w) as f64, re.scale, re.ratio, rng);
        if bh < h && bw < w {
            let top = rng.below((h - bh + 1) as u64) as i64;
            let left = rng.below((w - bw + 1) as u64) as i64;
            return Some([top, left, bh, bw]);
        }
    }
    None
}

/// Random erasing of a normalized float batch (see [`RandomErasing`]), each image drawn on its own.
pub fn random_erasing(batch: &Tensor, re: &RandomErasing, draw: &Draw) -> Result<Tensor> {
    let [n, _, h, w] = <[i64; 4]>::try_from(batch.size()).expect("a batch is 4-d");
    let mut rng = SplitMix(draw.batch_seed ^ 0xE7A5_E000);
    let boxes: Vec<Option<Box4>> = (0..n)
        .map(|_| {
            let erase = rng.unit() < re.probability;
            erase.then(|| erasing_box(re, h, w, &mut rng)).flatten()
        })
        .collect();
    zero_boxes(batch, &boxes)
}

/// Mixes a normalized float batch and its targets (`[N, classes]`: one-hot or multi-hot rows) as `mix` says, with
/// this batch's draws. Returns them as they are when the batch is not mixed.
pub fn mix_batch(x: &Tensor, targets: &Tensor, mix: &Mix, draw: &Draw) -> Result<(Tensor, Tensor)> {
    let mut rng = SplitMix(draw.batch_seed ^ 0x3A1C_5EED);
    let on = mix.mixup_alpha > 0.0 || mix.cutmix_alpha > 0.0;
    if !on || rng.unit() >= mix.probability {
        return Ok((x.shallow_clone(), targets.shallow_clone()));
    }
    let cutmix = match (mix.mixup_alpha > 0.0, mix.cutmix_alpha > 0.0) {
        (true, true) => rng.unit() < mix.switch_probability,
        (false, true) => true,
        _ => false,
    };
    let mut lam = rng.beta(if cutmix { mix.cutmix_alpha } else { mix.mixup_alpha });
    let partner = x.f_flip([0])?;
    let mixed = if cutmix {
        let [_, _, h, w] = <[i64; 4]>::try_from(x.size()).expect("a batch is 4-d");
        // timm's rand_bbox: sides of √(1 − λ) of the image's, centred at random, clipped to the image.
        let cut = (1.0 - lam).sqrt();
        let (ch, cw) = ((h as f64 * cut) as i64, (w as f64 * cut) as i64);
        let (cy, cx) = (rng.below(h as u64) as i64, rng.below(w as u64) as i64);
        let (top, bottom) = ((cy - ch / 2).clamp(0, h), (cy + ch / 2).clamp(0, h));
        let (left, right) = ((cx - cw / 2).clamp(0, w), (cx + cw / 2).clamp(0, w));
        lam = 1.0 - ((bottom - top) * (right - left)) as f64 / (h * w) as f64;
        let mut mask = vec![0f32; (h * w) as usize];
        for y in top..bottom {
            mask[(y * w + left) as usize..(y * w + right) as usize].fill(1.0);
        }
        let mask = to_device(Tensor::f_from_slice(&mask)?.f_view([1, 1, h, w])?, x.device())?.f_to_kind(x.kind())?;
        x.f_mul(&mask.f_neg()?.f_add_scalar(1.0)?)?
            .f_add(&partner.f_mul(&mask)?)?
    } else {
        x.f_mul_scalar(lam)?.f_add(&partner.f_mul_scalar(1.0 - lam)?)?
    };
    let targets = targets
        .f_mul_scalar(lam)?
        .f_add(&targets.f_flip([0])?.f_mul_scalar(1.0 - lam)?)?;
    Ok((mixed, targets))
}

/// A uint8 batch as floats, for the operations that interpolate.
pub fn to_float(batch: &Tensor) -> Result<Tensor> {
    Ok(batch.f_to_kind(Kind::Float)?)
}

/// Pixels on the 0–255 scale as uint8: rounded and clamped where they are floats.
pub fn to_bytes(pixels: &Tensor) -> Result<Tensor> {
    if pixels.kind() == Kind::Uint8 {
        return Ok(pixels.shallow_clone());
    }
    Ok(pixels.f_round()?.f_clamp(0.0, 255.0)?.f_to_kind(Kind::Uint8)?)
}
