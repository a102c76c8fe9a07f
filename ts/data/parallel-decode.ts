// Decodes a list of image files in several child processes, because one process cannot keep two cores busy with sharp.
//
// Measured on the shared CIFAR-10 JPEGs (32×32) on 2 cores: one process decodes about 1 400–1 900 images/s whatever
// UV_THREADPOOL_SIZE is, while burning up to 180 % CPU; worker threads share the same libvips and do no better;
// two processes reach about 2 500–3 700 images/s. The per-image cost is libvips pipeline setup, which contends
// inside one process.
import { fork, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { DecodeOptions } from './decode-image.ts'
import type { DecodeJob, DecodeReply } from './decode-worker.ts'

// Beside this file: decode-worker.ts in a checkout, decode-worker.js in the compiled package.
const WORKER = new URL(`./decode-worker${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url)

export interface ParallelDecodeResult {
  /** `files.length × C×H×W` bytes, channel-first; a failed image's bytes are zero. */
  pixels: Uint8Array
  /** Files that could not be decoded, by index into `files`, with the decoder's words. */
  failed: { index: number; reason: string }[]
}

/**
 * Decodes `files` (paths, or encoded images in memory) in `processes` child processes, each taking a contiguous share. The children run this same
 * TypeScript, so they inherit the parent's loader flags (`process.execArgv`: tsx, or Node's type stripping).
 * Rejects if a child cannot start or dies; callers may then decode in-process instead.
 */
export async function decodeInProcesses(
  files: (string | Uint8Array)[],
  options: DecodeOptions,
  processes: number,
  onProgress?: (decoded: number) => void,
): Promise<ParallelDecodeResult> {
  const [h, w] = options.size
  const perImage = options.channels * h * w
  const pixels = new Uint8Array(files.length * perImage)
  const failed: ParallelDecodeResult['failed'] = []
  const children: ChildProcess[] = []
  let decoded = 0
  const share = Math.ceil(files.length / processes)

  const runShare = (from: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const list = files.slice(from, from + share)
      const child = fork(WORKER, [], {
        execArgv: process.execArgv,
        serialization: 'advanced',
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      })
      children.push(child)
      let done = false
      child.on('message', (reply: DecodeReply) => {
        if ('done' in reply) {
          done = true
          return resolve()
        }
        pixels.set(reply.pixels, (from + reply.start) * perImage)
        for (const f of reply.failed) failed.push({ index: from + f.index, reason: f.reason })
        decoded += reply.count
        onProgress?.(decoded)
      })
      child.on('error', reject)
      // 'close', not 'exit': it comes after the IPC channel has delivered every message.
      child.on('close', (code, signal) => {
        if (!done)
          reject(new Error(`decoder process for images ${from}–${from + list.length - 1} exited with ${code ?? signal} before finishing`))
      })
      const job: DecodeJob = { files: list, options, chunk: 500 }
      child.send(job)
    })

  try {
    const starts = Array.from({ length: Math.ceil(files.length / share) }, (_, i) => i * share)
    await Promise.all(starts.map(runShare))
  } finally {
    // On success they have exited already; on failure the others are stopped rather than left decoding.
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill()
  }
  failed.sort((a, b) => a.index - b.index)
  return { pixels, failed }
}
