// Child-process side of parallel decoding: decodes the files it is sent and streams their pixels back in chunks.
import { decodeInto, type DecodeOptions } from './decode-image.ts'

/** What the parent sends: one job per process. */
export interface DecodeJob {
  /** Paths, or encoded images (entries of an archive). */
  files: (string | Uint8Array)[]
  options: DecodeOptions
  /** Images per message back; small enough to bound memory, large enough to keep messages few. */
  chunk: number
}

/** What the child sends back: pixels for `count` images from `start`, the failures among them, and finally `done`. */
export type DecodeReply = { start: number; count: number; pixels: Uint8Array; failed: { index: number; reason: string }[] } | { done: true }

function send(message: DecodeReply): Promise<void> {
  return new Promise((resolve, reject) => process.send!(message, undefined, {}, (err) => (err ? reject(err) : resolve())))
}

async function run(job: DecodeJob): Promise<void> {
  const [h, w] = job.options.size
  const perImage = job.options.channels * h * w
  for (let start = 0; start < job.files.length; start += job.chunk) {
    const count = Math.min(job.chunk, job.files.length - start)
    const pixels = new Uint8Array(count * perImage)
    const failed: { index: number; reason: string }[] = []
    let next = 0
    // A few decodes in flight keep libvips busy while JavaScript handles the previous result.
    const worker = async () => {
      for (let i = next++; i < count; i = next++) {
        try {
          const input = job.files[start + i]!
          // The IPC channel delivers Buffers as plain Uint8Arrays; sharp wants a Buffer.
          await decodeInto(
            typeof input === 'string' ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength),
            job.options,
            pixels,
            i * perImage,
          )
        } catch (err) {
          failed.push({ index: start + i, reason: (err as Error).message })
        }
      }
    }
    await Promise.all([worker(), worker(), worker(), worker()])
    await send({ start, count, pixels, failed })
  }
  await send({ done: true })
  process.disconnect()
}

if (process.send) {
  process.once('message', (job: DecodeJob) => {
    run(job).catch((err: Error) => {
      process.stderr.write(`convkit decode worker: ${err.stack ?? err.message}\n`)
      process.exit(1)
    })
  })
}
