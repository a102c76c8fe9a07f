//! A fast path for the commonest image folder: baseline JPEGs already at the size the model wants.
//!
//! sharp spends most of a small image's time setting up a libvips pipeline (about 0.9 ms a 32×32 JPEG here);
//! mozjpeg, the decoder inside sharp's own libvips, decodes one in about 17 µs. It runs with the same settings
//! (islow IDCT, fancy upsampling), so its pixels are sharp's, byte for byte; `__test__/image-folder.spec.ts`
//! checks that. Anything else (another format or size, an ICC profile, CMYK, a file not ending in EOI, a
//! decoder error) is handed back as a fallback index for sharp to decode or to report in its own words.

use std::panic::{catch_unwind, AssertUnwindSafe};

use mozjpeg::{ColorSpace, Decompress, Marker};

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

/// Decodes one encoded image into `out` (`channels × height × width`); false when this path does not take it.
pub fn decode_bytes(data: &[u8], size: [usize; 2], channels: usize, out: &mut [u8]) -> bool {
    // libjpeg reports errors by unwinding; a file it rejects goes to sharp, which names the problem.
    matches!(
        catch_unwind(AssertUnwindSafe(|| decode_into(data, size, channels, out))),
        Ok(Ok(true))
    )
}

/// Where the encoded images of one batch come from: each yields image `i`'s bytes, or `None` when it cannot be read
/// (that image falls back). Implemented for file paths and for buffers in memory.
pub trait EncodedImages: Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn bytes(&self, i: usize) -> Option<std::borrow::Cow<'_, [u8]>>;
}

/// Image files, by path; one that cannot be read falls back.
impl<S: AsRef<str> + Sync> EncodedImages for [S] {
    fn len(&self) -> usize {
        <[S]>::len(self)
    }
    fn bytes(&self, i: usize) -> Option<std::borrow::Cow<'_, [u8]>> {
        std::fs::read(self[i].as_ref()).ok().map(std::borrow::Cow::Owned)
    }
}

/// Encoded images in memory, back to back: image `i` ends at `ends[i]`.
pub struct Concatenated<'a> {
    pub data: &'a [u8],
    pub ends: &'a [usize],
}

impl EncodedImages for Concatenated<'_> {
    fn len(&self) -> usize {
        self.ends.len()
    }
    fn bytes(&self, i: usize) -> Option<std::borrow::Cow<'_, [u8]>> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(std::borrow::Cow::Borrowed(&self.data[start..self.ends[i]]))
    }
}

/// Decodes the `images` that are JPEGs of exactly `size` (`[height, width]`) into one channel-first buffer, on
/// `threads` threads. Returns the pixels (zeros where an image was not decoded) and the indices of those images.
pub fn decode_all<I: EncodedImages + ?Sized>(
    images: &I,
    size: [usize; 2],
    channels: usize,
    threads: usize,
) -> (Vec<u8>, Vec<u32>) {
    let count = images.len();
    let per_image = channels * size[0] * size[1];
    let mut pixels = vec![0u8; count * per_image];
    // One contiguous share of the images and of the output per thread; each returns its own fallbacks.
    let share = count.div_ceil(threads.clamp(1, 64)).max(1);
    let fallback = std::thread::scope(|scope| {
        let workers: Vec<_> = pixels
            .chunks_mut((share * per_image).max(1))
            .take(count.div_ceil(share))
            .enumerate()
            .map(|(k, out)| {
                scope.spawn(move || {
                    let mut missed = Vec::new();
                    for (j, slot) in out.chunks_mut(per_image.max(1)).enumerate() {
                        let i = k * share + j;
                        if i >= count {
                            break;
                        }
                        let decoded = images
                            .bytes(i)
                            .is_some_and(|data| decode_bytes(&data, size, channels, slot));
                        if !decoded {
                            slot.fill(0);
                            missed.push(i as u32);
                        }
                    }
                    missed
                })
            })
            .collect();
        // A worker cannot panic (decode_bytes catches libjpeg's unwinding), so join only fails if that changes.
        workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
    });
    (pixels, fallback)
}

/// Decodes `files` that are JPEGs of exactly `size` (`[height, width]`) into one channel-first buffer, on
/// `threads` threads. Returns the pixels (zeros where a file was not decoded) and the indices of those files.
pub fn decode_files(files: &[String], size: [usize; 2], channels: usize, threads: usize) -> (Vec<u8>, Vec<u32>) {
    decode_all(files, size, channels, threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16×8 baseline JPEG encoded by mozjpeg itself, then decoded back.
    fn encode(width: usize, height: usize, gray: bool) -> Vec<u8> {
        let mut comp = mozjpeg::Compress::new(if gray {
            ColorSpace::JCS_GRAYSCALE
        } else {
            ColorSpace::JCS_RGB
        });
        comp.set_size(width, height);
        comp.set_quality(90.0);
        let mut started = comp.start_compress(Vec::new()).unwrap();
        let channels = if gray { 1 } else { 3 };
        let pixels: Vec<u8> = (0..width * height * channels).map(|i| (i * 37 % 251) as u8).collect();
        started.write_scanlines(&pixels).unwrap();
        started.finish().unwrap()
    }

    #[test]
    fn decodes_jpegs_of_the_wanted_size_and_declines_the_rest() {
        let rgb = encode(16, 8, false);
        let mut out = vec![0u8; 3 * 8 * 16];
        assert!(decode_bytes(&rgb, [8, 16], 3, &mut out));
        assert!(out.iter().any(|&v| v > 0));
        // Another size, another channel count, a truncated file and not a JPEG at all fall back.
        assert!(!decode_bytes(&rgb, [16, 8], 3, &mut out));
        assert!(!decode_bytes(&rgb, [8, 16], 1, &mut [0u8; 8 * 16]));
        assert!(!decode_bytes(&rgb[..rgb.len() / 2], [8, 16], 3, &mut out));
        assert!(!decode_bytes(b"\\x89PNG not a jpeg", [8, 16], 3, &mut out));
        let gray = encode(16, 8, true);
        assert!(decode_bytes(&gray, [8, 16], 1, &mut [0u8; 8 * 16]));
    }

    #[test]
    fn decodes_files_on_several_threads_and_lists_fallbacks() {
        let dir = tempfile::tempdir().unwrap();
        let good = encode(16, 8, false);
        let mut files = Vec::new();
        for i in 0..7 {
            let path = dir.path().join(format!("{i}.jpg"));
            std::fs::write(&path, if i == 3 { b"broken".to_vec() } else { good.clone() }).unwrap();
            files.push(path.to_string_lossy().into_owned());
        }
        files.push(dir.path().join("missing.jpg").to_string_lossy().into_owned());
        let (pixels, fallback) = decode_files(&files, [8, 16], 3, 3);
        assert_eq!(pixels.len(), 8 * 3 * 8 * 16);
        assert_eq!(fallback, vec![3, 7]);
        let per = 3 * 8 * 16;
        assert_eq!(pixels[..per], pixels[per..2 * per]);
        assert!(pixels[3 * per..4 * per].iter().all(|&v| v == 0));
    }

    #[test]
    fn decodes_buffers_in_memory_as_it_decodes_files() {
        let good = encode(16, 8, false);
        let mut data = Vec::new();
        let mut ends = Vec::new();
        for i in 0..5 {
            data.extend_from_slice(if i == 1 { b"broken".as_slice() } else { good.as_slice() });
            ends.push(data.len());
        }
        let (pixels, fallback) = decode_all(
            &Concatenated {
                data: &data,
                ends: &ends,
            },
            [8, 16],
            3,
            2,
        );
        assert_eq!(fallback, vec![1]);
        let per = 3 * 8 * 16;
        assert_eq!(pixels.len(), 5 * per);
        assert_eq!(pixels[..per], pixels[4 * per..]);
        assert!(pixels[per..2 * per].iter().all(|&v| v == 0));
    }
}
