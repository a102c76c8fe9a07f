//! A fast path for the commonest image folder: baseline JPEGs already at the size the model wants.
//!
//! sharp spends most of a small image's time setting up a libvips pipeline (about 0.9 ms a 32×32 JPEG here);
//! mozjpeg, the decoder inside sharp's own libvips, decodes one in about 17 µs. It runs with the same settings
//! (islow IDCT, fancy upsampling), so its pixels are sharp's, byte for byte; `__test__/image-folder.spec.ts`
//! checks that. Anything else (another format or size, an ICC profile, CMYK, a file not ending in EOI, a
//! decoder error) is handed back as a fallback index for sharp to decode or to report in its own words.

use std::panic::{catch_unwind, AssertUnwindSafe};

use mozjpeg::{ColorSpace, Decompress, Marker};
use napi::bindgen_prelude::{AsyncTask, Uint8Array};
use napi::{Env, Task};
use napi_derive::napi;

/// What one batch of files decoded to.
#[napi(object)]
pub struct JpegBatch {
    /// `files.length × channels × height × width` bytes, channel-first; zero where `fallback` lists the file.
    pub pixels: Uint8Array,
    /// Indices of the files this path did not decode, in order.
    pub fallback: Vec<u32>,
}

pub struct DecodeJpegs {
    files: Vec<String>,
    size: [usize; 2],
    channels: usize,
    threads: usize,
}

/// ICC profiles can make libvips convert colours, so such files go to sharp.
const SAVED_MARKERS: &[Marker] = &[Marker::APP(2)];

/// Decodes `data` into `out` (C×H×W) when it is a JPEG this path reproduces exactly; `false` otherwise.
fn decode_into(data: &[u8], [height, width]: [usize; 2], channels: usize, out: &mut [u8]) -> std::io::Result<bool> {
    if !data.starts_with(&[0xFF, 0xD8, 0xFF]) || !data.ends_with(&[0xFF, 0xD9]) {
        return Ok(false);
    }
    let jpeg = Decompress::with_markers(SAVED_MARKERS).from_mem(data)?;
    if jpeg.width() != width || jpeg.height() != height || jpeg.markers().any(|m| m.data.starts_with(b"ICC_PROFILE\0"))
    {
        return Ok(false);
    }
    let plane = height * width;
    match (jpeg.color_space(), channels) {
        (ColorSpace::JCS_YCbCr, 3) => {
            let mut started = jpeg.rgb()?;
            let rgb: Vec<[u8; 3]> = started.read_scanlines()?;
            started.finish()?;
            if rgb.len() != plane {
                return Ok(false);
            }
            for (i, px) in rgb.iter().enumerate() {
                out[i] = px[0];
                out[plane + i] = px[1];
                out[2 * plane + i] = px[2];
            }
        }
        (ColorSpace::JCS_GRAYSCALE, 1) => {
            let mut started = jpeg.grayscale()?;
            let gray: Vec<u8> = started.read_scanlines()?;
            started.finish()?;
            if gray.len() != plane {
                return Ok(false);
            }
            out[..plane].copy_from_slice(&gray);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn decode_file(path: &str, size: [usize; 2], channels: usize, out: &mut [u8]) -> bool {
    let Ok(data) = std::fs::read(path) else {
        return false;
    };
    // libjpeg reports errors by unwinding; a file it rejects goes to sharp, which names the problem.
    matches!(
        catch_unwind(AssertUnwindSafe(|| decode_into(&data, size, channels, out))),
        Ok(Ok(true))
    )
}

impl Task for DecodeJpegs {
    type Output = (Vec<u8>, Vec<u32>);
    type JsValue = JpegBatch;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let per_image = self.channels * self.size[0] * self.size[1];
        let mut pixels = vec![0u8; self.files.len() * per_image];
        // One contiguous share of the files and of the output per thread; each returns its own fallbacks.
        let share = self.files.len().div_ceil(self.threads.clamp(1, 64)).max(1);
        let (files, size, channels) = (&self.files, self.size, self.channels);
        let fallback = std::thread::scope(|scope| {
            let workers: Vec<_> = files
                .chunks(share)
                .zip(pixels.chunks_mut((share * per_image).max(1)))
                .enumerate()
                .map(|(k, (paths, out))| {
                    scope.spawn(move || {
                        let mut missed = Vec::new();
                        for (j, (path, slot)) in paths.iter().zip(out.chunks_mut(per_image.max(1))).enumerate() {
                            if !decode_file(path, size, channels, slot) {
                                slot.fill(0);
                                missed.push((k * share + j) as u32);
                            }
                        }
                        missed
                    })
                })
                .collect();
            // A worker cannot panic (decode_file catches libjpeg's unwinding), so join only fails if that changes.
            workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
        });
        Ok((pixels, fallback))
    }

    fn resolve(&mut self, _env: Env, (pixels, fallback): Self::Output) -> napi::Result<JpegBatch> {
        Ok(JpegBatch {
            pixels: pixels.into(),
            fallback,
        })
    }
}

/// Decodes JPEG files that are already `height × width` into channel-first pixels on `threads` threads, off
/// the JS thread and off the libtorch thread; the rest come back as `fallback` for sharp.
#[napi(ts_return_type = "Promise<JpegBatch>")]
pub fn decode_jpeg_files(
    files: Vec<String>,
    height: u32,
    width: u32,
    channels: u32,
    threads: u32,
) -> AsyncTask<DecodeJpegs> {
    AsyncTask::new(DecodeJpegs {
        files,
        size: [height as usize, width as usize],
        channels: channels as usize,
        threads: threads as usize,
    })
}
