//! Decoding image folders off the JS thread: the core's JPEG fast path (`convkit_core::jpeg`) as a napi task.

use napi::bindgen_prelude::{AsyncTask, Buffer, Uint8Array};
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

impl Task for DecodeJpegs {
    type Output = (Vec<u8>, Vec<u32>);
    type JsValue = JpegBatch;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(convkit_core::jpeg::decode_files(
            &self.files,
            self.size,
            self.channels,
            self.threads,
        ))
    }

    fn resolve(&mut self, _env: Env, (pixels, fallback): Self::Output) -> napi::Result<JpegBatch> {
        // The Vec becomes the ArrayBuffer's memory: no copy on the way to JavaScript.
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

pub struct DecodeJpegBuffers {
    /// Every image's bytes, back to back; image `i` ends at `ends[i]`.
    data: Vec<u8>,
    ends: Vec<usize>,
    size: [usize; 2],
    channels: usize,
    threads: usize,
}

impl Task for DecodeJpegBuffers {
    type Output = (Vec<u8>, Vec<u32>);
    type JsValue = JpegBatch;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let per_image = self.channels * self.size[0] * self.size[1];
        let count = self.ends.len();
        let mut pixels = vec![0u8; count * per_image];
        // As `decode_files` does: one contiguous share of the images and of the output per thread.
        let share = count.div_ceil(self.threads.clamp(1, 64)).max(1);
        let (data, ends, size, channels) = (&self.data, &self.ends, self.size, self.channels);
        let fallback = std::thread::scope(|scope| {
            let workers: Vec<_> = pixels
                .chunks_mut((share * per_image).max(1))
                .enumerate()
                .map(|(k, out)| {
                    scope.spawn(move || {
                        let mut missed = Vec::new();
                        for (j, slot) in out.chunks_mut(per_image.max(1)).enumerate() {
                            let i = k * share + j;
                            let start = if i == 0 { 0 } else { ends[i - 1] };
                            if !convkit_core::jpeg::decode_bytes(&data[start..ends[i]], size, channels, slot) {
                                slot.fill(0);
                                missed.push(i as u32);
                            }
                        }
                        missed
                    })
                })
                .collect();
            // decode_bytes catches libjpeg's unwinding, so a worker cannot panic.
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

/// `decodeJpegFiles` for images already in memory (read from an archive): each buffer holds one encoded image.
/// The bytes are copied once, so the buffers may be reused as soon as this returns.
#[napi(ts_return_type = "Promise<JpegBatch>")]
pub fn decode_jpeg_buffers(
    buffers: Vec<Buffer>,
    height: u32,
    width: u32,
    channels: u32,
    threads: u32,
) -> AsyncTask<DecodeJpegBuffers> {
    let mut data = Vec::with_capacity(buffers.iter().map(|b| b.len()).sum());
    let mut ends = Vec::with_capacity(buffers.len());
    for buffer in &buffers {
        data.extend_from_slice(buffer);
        ends.push(data.len());
    }
    AsyncTask::new(DecodeJpegBuffers {
        data,
        ends,
        size: [height as usize, width as usize],
        channels: channels as usize,
        threads: threads as usize,
    })
}
