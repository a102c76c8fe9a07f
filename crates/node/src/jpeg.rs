//! Decoding image folders off the JS thread: the core's JPEG fast path (`convkit_core::jpeg::decode_all`, over files
//! or buffers in memory) as napi tasks.

use convkit_core::jpeg::{decode_all, Concatenated};
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
        Ok(decode_all(
            self.files.as_slice(),
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
        let images = Concatenated {
            data: &self.data,
            ends: &self.ends,
        };
        Ok(decode_all(&images, self.size, self.channels, self.threads))
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
