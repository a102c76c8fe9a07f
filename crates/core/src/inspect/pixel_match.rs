//! Whether two images are the same picture: the correlation of their fine detail at the best of small shifts.
//!
//! Embeddings (and coarse layouts) rank a copy that was re-encoded, shifted by a pixel or two and brightened about as
//! close as a look-alike of the same class (bench/RESULTS.md). The detail of a picture survives those changes: each
//! image's luma, area-averaged to 32×32, minus its 5×5 local mean, correlated with the other's at every shift of up
//! to 2 pixels (the best one counts), over all but a 2-pixel border. Correlation ignores brightness and contrast; the
//! local mean removes gradients and flat backgrounds that unrelated photos share.

use std::thread;

use crate::error::{Error, Result};

/// Side of the plane images are compared at.
pub const MATCH_SIDE: usize = 32;
/// Largest shift, in plane pixels, tried in each direction.
const MAX_SHIFT: isize = 2;
/// Rows and columns left out at each edge: shifts and the local mean's reflection make them unreliable.
const BORDER: isize = 2;
/// Side of the local mean taken away.
const BOX: isize = 5;
const PLANE: usize = MATCH_SIDE * MATCH_SIDE;

/// `count` images of `channels × height × width` bytes each, channel-major.
#[derive(Debug, Clone, Copy)]
pub struct ImageBytes<'a> {
    pub pixels: &'a [u8],
    pub count: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl<'a> ImageBytes<'a> {
    fn check(&self, what: &str) -> Result<()> {
        let size = self.channels * self.height * self.width;
        if !matches!(self.channels, 1 | 3)
            || self.height == 0
            || self.width == 0
            || self.pixels.len() != self.count * size
        {
            return Err(Error::BadShape {
                what: what.into(),
                expected: format!(
                    "{} images of 1 or 3 channels of {}×{} bytes",
                    self.count, self.height, self.width
                ),
                got: format!("{} channels, {} bytes", self.channels, self.pixels.len()),
            });
        }
        Ok(())
    }

    fn image(&self, i: usize) -> &'a [u8] {
        let size = self.channels * self.height * self.width;
        &self.pixels[i * size..(i + 1) * size]
    }
}

/// An image's detail plane (luma at 32×32 minus its 5×5 local mean) and the running sums of it and its square, whose
/// rectangles give any window's sum in four reads.
struct Detail {
    plane: [f32; PLANE],
    /// `(MATCH_SIDE + 1)²` prefix sums of the plane and of its square, in f64: sums of squares over a thousand values.
    sums: Vec<f64>,
    squares: Vec<f64>,
}

fn reflect(i: isize, n: isize) -> usize {
    // scipy's "reflect": … c b a | a b c … — the edge pixel repeats.
    let r = if i < 0 {
        -i - 1
    } else if i >= n {
        2 * n - i - 1
    } else {
        i
    };
    r.clamp(0, n - 1) as usize
}

fn detail(image: &[u8], channels: usize, height: usize, width: usize) -> Detail {
    // Luma, area-averaged: each source pixel into the cell it falls in; cells no pixel falls in (images under 32
    // pixels) take the nearest one.
    let mut total = [0f64; PLANE];
    let mut counts = [0u32; PLANE];
    let weights: &[f64] = if channels == 3 { &[0.299, 0.587, 0.114] } else { &[1.0] };
    let luma = |y: usize, x: usize| -> f64 {
        weights
            .iter()
            .enumerate()
            .map(|(c, w)| w * f64::from(image[(c * height + y) * width + x]))
            .sum()
    };
    for y in 0..height {
        let row = y * MATCH_SIDE / height * MATCH_SIDE;
        for x in 0..width {
            let cell = row + x * MATCH_SIDE / width;
            total[cell] += luma(y, x);
            counts[cell] += 1;
        }
    }
    let mut gray = [0f64; PLANE];
    for (cell, value) in gray.iter_mut().enumerate() {
        *value = if counts[cell] > 0 {
            total[cell] / f64::from(counts[cell])
        } else {
            luma(
                (cell / MATCH_SIDE) * height / MATCH_SIDE,
                (cell % MATCH_SIDE) * width / MATCH_SIDE,
            )
        };
    }
    // Minus the 5×5 local mean, separably: rows, then columns.
    let n = MATCH_SIDE as isize;
    let half = BOX / 2;
    let mut across = [0f64; PLANE];
    for y in 0..MATCH_SIDE {
        for x in 0..n {
            across[y * MATCH_SIDE + x as usize] = (x - half..=x + half)
                .map(|j| gray[y * MATCH_SIDE + reflect(j, n)])
                .sum();
        }
    }
    let mut plane = [0f32; PLANE];
    for y in 0..n {
        for x in 0..MATCH_SIDE {
            let local: f64 = (y - half..=y + half)
                .map(|i| across[reflect(i, n) * MATCH_SIDE + x])
                .sum();
            let at = y as usize * MATCH_SIDE + x;
            plane[at] = (gray[at] - local / (BOX * BOX) as f64) as f32;
        }
    }
    let stride = MATCH_SIDE + 1;
    let mut sums = vec![0f64; stride * stride];
    let mut squares = vec![0f64; stride * stride];
    for y in 0..MATCH_SIDE {
        for x in 0..MATCH_SIDE {
            let v = f64::from(plane[y * MATCH_SIDE + x]);
            let (at, up, left, diagonal) = (
                (y + 1) * stride + x + 1,
                y * stride + x + 1,
                (y + 1) * stride + x,
                y * stride + x,
            );
            sums[at] = v + sums[up] + sums[left] - sums[diagonal];
            squares[at] = v * v + squares[up] + squares[left] - squares[diagonal];
        }
    }
    Detail { plane, sums, squares }
}

/// Sum over rows `y0..y1` and columns `x0..x1` of a prefix-sum table.
fn window(table: &[f64], y0: usize, y1: usize, x0: usize, x1: usize) -> f64 {
    let stride = MATCH_SIDE + 1;
    table[y1 * stride + x1] - table[y0 * stride + x1] - table[y1 * stride + x0] + table[y0 * stride + x0]
}

/// The Pearson correlation of two detail planes at the best shift of up to 2 pixels, over all but the border.
fn best_correlation(a: &Detail, b: &Detail) -> f32 {
    let n = MATCH_SIDE as isize;
    let mut best = -1f64;
    for dy in -MAX_SHIFT..=MAX_SHIFT {
        for dx in -MAX_SHIFT..=MAX_SHIFT {
            // a's window, and b's: a's pixel (y, x) meets b's (y - dy, x - dx).
            let (ay0, ay1) = ((dy.max(0) + BORDER) as usize, (n + dy.min(0) - BORDER) as usize);
            let (ax0, ax1) = ((dx.max(0) + BORDER) as usize, (n + dx.min(0) - BORDER) as usize);
            let (by0, bx0) = ((ay0 as isize - dy) as usize, (ax0 as isize - dx) as usize);
            let (rows, cols) = (ay1 - ay0, ax1 - ax0);
            let mut dot = 0f32;
            for r in 0..rows {
                let pa = &a.plane[(ay0 + r) * MATCH_SIDE + ax0..][..cols];
                let pb = &b.plane[(by0 + r) * MATCH_SIDE + bx0..][..cols];
                dot += pa.iter().zip(pb).map(|(u, v)| u * v).sum::<f32>();
            }
            let count = (rows * cols) as f64;
            let (sa, sb) = (
                window(&a.sums, ay0, ay1, ax0, ax1),
                window(&b.sums, by0, by0 + rows, bx0, bx0 + cols),
            );
            let qa = window(&a.squares, ay0, ay1, ax0, ax1) - sa * sa / count;
            let qb = window(&b.squares, by0, by0 + rows, bx0, bx0 + cols) - sb * sb / count;
            let denominator = (qa * qb).sqrt();
            if denominator > 1e-9 {
                best = best.max((f64::from(dot) - sa * sb / count) / denominator);
            }
        }
    }
    best as f32
}

/// For each query and each of its `k` neighbours (`neighbours`, `queries × k` indices into the keys, as
/// [`super::nearest_neighbours`] gives them), how alike their pictures are: the correlation of their detail at the
/// best shift, in [-1, 1] (-1 also for an image without detail, a flat one). `keys` of `None` are the queries
/// themselves. Spread over the machine's cores.
pub fn pixel_match(queries: ImageBytes, keys: Option<ImageBytes>, neighbours: &[i64], k: usize) -> Result<Vec<f32>> {
    queries.check("queries")?;
    let keys = keys.unwrap_or(queries);
    keys.check("keys")?;
    if neighbours.len() != queries.count * k {
        return Err(Error::BadShape {
            what: "neighbours".into(),
            expected: format!("{} queries × {k} indices", queries.count),
            got: format!("{} indices", neighbours.len()),
        });
    }
    if let Some(&bad) = neighbours.iter().find(|&&j| j < 0 || j as usize >= keys.count) {
        return Err(Error::option(
            "neighbours",
            format!("indices in 0..{}", keys.count),
            bad,
        ));
    }
    let mut out = vec![0f32; neighbours.len()];
    if k == 0 {
        return Ok(out);
    }
    let threads = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(queries.count.max(1));
    let per_thread = queries.count.div_ceil(threads).max(1);
    thread::scope(|scope| {
        for (chunk, results) in out.chunks_mut(per_thread * k).enumerate() {
            scope.spawn(move || {
                for (row, result) in results.chunks_mut(k).enumerate() {
                    let i = chunk * per_thread + row;
                    let query = detail(queries.image(i), queries.channels, queries.height, queries.width);
                    for (r, value) in result.iter_mut().enumerate() {
                        let key = keys.image(neighbours[i * k + r] as usize);
                        *value = best_correlation(&query, &detail(key, keys.channels, keys.height, keys.width));
                    }
                }
            });
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIDE: usize = 64;

    /// A 3-channel 64×64 image of random 8-pixel blocks, seeded.
    fn texture(seed: u64) -> Vec<u8> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 200) as u8
        };
        let blocks: Vec<u8> = (0..3 * 8 * 8).map(|_| next()).collect();
        (0..3 * SIDE * SIDE)
            .map(|i| {
                let (c, y, x) = (i / (SIDE * SIDE), i / SIDE % SIDE, i % SIDE);
                blocks[c * 64 + y / 8 * 8 + x / 8] + (i % 7) as u8
            })
            .collect()
    }

    fn shifted_brighter(image: &[u8], dy: usize, dx: usize) -> Vec<u8> {
        let mut out = image.to_vec();
        for c in 0..3 {
            for y in 0..SIDE {
                for x in 0..SIDE {
                    let v = f64::from(image[(c * SIDE + y.saturating_sub(dy)) * SIDE + x.saturating_sub(dx)]);
                    out[(c * SIDE + y) * SIDE + x] = (v * 1.2).min(255.0) as u8;
                }
            }
        }
        out
    }

    #[test]
    fn a_shifted_brighter_copy_matches_and_another_picture_does_not() {
        let original = texture(1);
        // 4 and 2 pixels here, 2 and 1 at the 32-pixel plane.
        let pixels = [original.clone(), shifted_brighter(&original, 4, 2), texture(2)].concat();
        let images = ImageBytes {
            pixels: &pixels,
            count: 3,
            channels: 3,
            height: SIDE,
            width: SIDE,
        };
        let matches = pixel_match(images, None, &[1, 2, 0, 2, 0, 1], 2).unwrap();
        assert!(matches[0] > 0.9, "copy: {matches:?}");
        assert!((matches[0] - matches[2]).abs() < 1e-4, "symmetric: {matches:?}");
        assert!(matches[1] < 0.5, "other picture: {matches:?}");
        assert!(pixel_match(images, None, &[3, 0], 1).is_err());
        assert!(pixel_match(images, None, &[1], 1).is_err());
    }
}
