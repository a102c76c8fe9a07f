// Remembered precision probes. A probe costs ten training steps (20–40 s for a pretrained network at 224 pixels on 2
// cores, a tenth of a short fine-tuning run), and its answer depends on the CPU, the network, the batch and the
// device only; so train() probes once per such combination and reads the timings after that. The file is small JSON
// in the cache root, written atomically; one that cannot be read or written costs a probe, never a run.
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { cacheRoot } from '../data/cache-dir.ts'
import { writeFileAtomic } from '../util/atomic-write.ts'

/** What a probe's timings depend on. */
export interface ProbeKey {
  /** The network's spec. */
  spec: unknown
  /** Parameters that train in the probed steps (a frozen body makes a different step). */
  trainable: number
  /** Images per probed step. */
  images: number
  device: string
  /** The CPU's model name and its native-bf16 flags. */
  cpu: string
}

/** A probe's medians in milliseconds, and when it ran. */
export interface RememberedProbe {
  fp32: number
  bf16: number
  /** An evaluation of the probed images, where it was probed. */
  evalFp32?: number
  evalBf16?: number
  at: string
}

const FILE_NAME = 'precision-probes.json'

/** The memo's path: in `cacheDir` when given (train()'s option), else in the cache root. */
export function probeMemoFile(cacheDir: string | null | undefined): string {
  return path.join(cacheDir ? path.resolve(cacheDir) : cacheRoot(), FILE_NAME)
}

/** The CPU as the key names it: model name and the bf16 flags that decide whether a probe runs at all. */
export function cpuIdentity(flags: readonly string[]): string {
  return `${os.cpus()[0]?.model ?? 'unknown'} [${flags.join(' ')}] x${os.cpus().length}`
}

function keyOf(key: ProbeKey): string {
  return crypto.createHash('sha256').update(JSON.stringify(key)).digest('hex').slice(0, 24)
}

function readMemo(file: string): Record<string, RememberedProbe> {
  try {
    const memo = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown
    return memo && typeof memo === 'object' && !Array.isArray(memo) ? (memo as Record<string, RememberedProbe>) : {}
  } catch {
    return {}
  }
}

/** The timings a probe of `key` measured before, if any. */
export function recallProbe(file: string, key: ProbeKey): RememberedProbe | undefined {
  const found = readMemo(file)[keyOf(key)]
  return found && Number.isFinite(found.fp32) && Number.isFinite(found.bf16) && typeof found.at === 'string' ? found : undefined
}

/** Records a probe's timings under `key` (best effort: a read-only cache only means probing again next time). */
export async function rememberProbe(file: string, key: ProbeKey, probe: Omit<RememberedProbe, 'at'>): Promise<void> {
  const memo = readMemo(file)
  memo[keyOf(key)] = { ...probe, at: new Date().toISOString() }
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true })
    await writeFileAtomic(file, `${JSON.stringify(memo, null, 1)}\n`)
  } catch {}
}
