// precision: 'auto' (the default): bf16 where the CPU computes it natively and a short probe finds it clearly faster,
// fp32 elsewhere.
import fs from 'node:fs'
import type { TensorDataset } from '../data/tensor-dataset.ts'
import type { ModelSpec } from '../model/layers.ts'
import { Model, type Precision } from '../model/model.ts'
import type { Tta } from '../model/model-options.ts'
import { releaseCachedBlocks } from '../util/memory.ts'
import { cpuIdentity, recallProbe, rememberProbe, type ProbeKey } from './precision-memo.ts'

/** The CPU flags that mean native bfloat16 arithmetic (AVX512-BF16 dot products, AMX tiles). */
const BF16_FLAGS = ['avx512_bf16', 'amx_bf16']

/** Which native-bf16 flags `/proc/cpuinfo` lists (none where it cannot be read). */
export function cpuBf16Flags(cpuinfo?: string): string[] {
  let text = cpuinfo
  if (text === undefined) {
    try {
      text = fs.readFileSync('/proc/cpuinfo', 'utf8')
    } catch {
      return []
    }
  }
  const flags = new Set(/^flags\s*:(.*)$/m.exec(text)?.[1]?.trim().split(/\s+/) ?? [])
  return BF16_FLAGS.filter((f) => flags.has(f))
}

/** Where set to `fp32` or `bf16`, `'auto'` takes it without probing (the test suite pins it so runs compare). */
export const AUTO_PRECISION_ENV = 'CONVKIT_AUTO_PRECISION'
/** bf16 is chosen when its probed step takes under this fraction of fp32's. */
const BF16_MARGIN = 0.9
/** How far from the margin a probe's ratio must be to be remembered (see choosePrecision). */
const CLEAR_BY = 0.1

export interface PrecisionChoice {
  precision: Precision
  /** Why, in a sentence the run prints and history.json records. */
  reason: string
  /** Median milliseconds of a training step (and of an evaluation) in each precision, when probed. */
  probe?: ProbeTimings
}

/** How many timed steps each precision gets, alternating which goes first. */
const PROBE_ROUNDS = 4

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/**
 * Median milliseconds of `step` in each precision. Both precisions are warmed up before any step is timed (a first
 * step builds kernels and allocates, and timing one precision's warm-up against the other's steady state decides
 * nothing), then they alternate, each going first in every other round, so that drift in the machine's load falls
 * on both alike.
 */
export async function probePrecisions(
  step: (precision: Precision) => Promise<void>,
  rounds = PROBE_ROUNDS,
): Promise<{ fp32: number; bf16: number }> {
  await step('fp32')
  await step('bf16')
  const times: Record<Precision, number[]> = { fp32: [], bf16: [] }
  for (let round = 0; round < rounds; round++) {
    for (const precision of round % 2 === 0 ? (['fp32', 'bf16'] as const) : (['bf16', 'fp32'] as const)) {
      const start = performance.now()
      await step(precision)
      times[precision].push(performance.now() - start)
    }
  }
  return { fp32: median(times.fp32), bf16: median(times.bf16) }
}

/**
 * Milliseconds per probed batch in each precision: a training step (`fp32`, `bf16`) and, where probed, an evaluation
 * of the same images (`evalFp32`, `evalBf16`).
 */
export interface ProbeTimings {
  fp32: number
  bf16: number
  evalFp32?: number
  evalBf16?: number
}

/**
 * The images a run pushes through training steps and through evaluation (validation, test, a full train pass), and
 * the test-time augmentation it evaluates them with: what the probe's per-batch timings are weighed by. On a CPU the
 * two can disagree: a fine-tune whose frozen body skips most of the backward pass trains no faster in bf16, yet
 * evaluates 10 000 test images nearly twice as fast.
 */
export interface Workload {
  trainImages: number
  evalImages: number
  /** The run's, which the probed evaluation uses too. */
  tta: Tta
}

/** The run's estimated seconds in each precision, where the probe and the workload allow it. */
function estimate(probe: ProbeTimings, images: number, workload?: Workload): { fp32: number; bf16: number } | undefined {
  if (!workload || probe.evalFp32 === undefined || probe.evalBf16 === undefined) return undefined
  const seconds = (train: number, evaluate: number) => (workload.trainImages * train + workload.evalImages * evaluate) / images / 1000
  return { fp32: seconds(probe.fp32, probe.evalFp32), bf16: seconds(probe.bf16, probe.evalBf16) }
}

/** Seconds to two significant digits below 10 (a short run's estimate), whole above. */
function seconds(value: number): string {
  return value >= 10 ? value.toFixed(0) : value.toPrecision(2)
}

/**
 * bf16 when it is clearly faster (under 0.9× fp32's time): for the run's workload where it and evaluation timings are
 * given, else per training step. `where` says why bf16 was considered at all.
 */
export function decidePrecision(probe: ProbeTimings, images: number, where: string, workload?: Workload): PrecisionChoice {
  let timings = `a ${images}-image step took ${probe.bf16.toFixed(0)} ms in bf16 and ${probe.fp32.toFixed(0)} ms in fp32`
  const run = estimate(probe, images, workload)
  if (run && workload) {
    timings +=
      `, their evaluation ${probe.evalBf16!.toFixed(0)} ms and ${probe.evalFp32!.toFixed(0)} ms; for this run's ` +
      `${workload.trainImages.toLocaleString('en')} trained and ${workload.evalImages.toLocaleString('en')} evaluated images, ` +
      `about ${seconds(run.bf16)} s in bf16 and ${seconds(run.fp32)} s in fp32`
  }
  const [bf16, fp32] = run ? [run.bf16, run.fp32] : [probe.bf16, probe.fp32]
  // A clear win only: where the two are close the choice would follow timing noise from run to run.
  return bf16 < BF16_MARGIN * fp32
    ? { precision: 'bf16', reason: `bf16: ${where}, and ${timings}`, probe }
    : { precision: 'fp32', reason: `fp32: ${where}, but ${timings}`, probe }
}

/** Where and how choosePrecision probes. */
export interface PrecisionProbeOptions {
  /** The run's batch size; the probe's steps take up to 64 of it. */
  batchSize: number
  device: string
  /** Where clear timings are remembered (precision-memo.ts). */
  memoFile: string
  /**
   * Puts the throwaway copy in the state the run trains in (frozen layers, batch-norm statistics): a frozen body
   * neither keeps its activations nor computes their gradients, so a probe of the whole network would time other
   * work and hold several times the memory the run needs.
   */
  prepare?: (probe: Model) => void
  /** What the run will train and evaluate: with it, an evaluation is probed too and the choice weighs both. */
  workload?: Workload
}

/**
 * Picks fp32 or bf16 for `spec`: fp32 on a CPU without native bf16; otherwise training steps of a throwaway copy of
 * the model on a real batch, timed in each precision (`probePrecisions`), and bf16 wins when it is at least 10 %
 * faster. Clear timings are remembered in `memoFile` (see precision-memo.ts): the same network, trainable state, batch
 * and CPU later take them from there instead of probing again.
 */
export async function choosePrecision(
  spec: ModelSpec,
  data: TensorDataset,
  indices: Int32Array,
  options: PrecisionProbeOptions,
): Promise<PrecisionChoice> {
  const { batchSize, device, memoFile } = options
  const forced = process.env[AUTO_PRECISION_ENV]
  if (forced === 'fp32' || forced === 'bf16') return { precision: forced, reason: `${forced}: ${AUTO_PRECISION_ENV}=${forced}` }
  const flags = cpuBf16Flags()
  if (device === 'cpu' && flags.length === 0) {
    return { precision: 'fp32', reason: 'fp32: this CPU has no native bf16 (neither avx512_bf16 nor amx_bf16 in /proc/cpuinfo)' }
  }
  const batch = indices.subarray(0, Math.min(batchSize, 64, indices.length))
  const where = device === 'cpu' ? `the CPU has ${flags.join(' and ')}` : `on ${device}`
  const probe = Model.create(spec, { device: device as 'cpu', seed: 0 })
  options.prepare?.(probe)
  const key: ProbeKey = { spec, trainable: probe.trainableParamCount, images: batch.length, device, cpu: cpuIdentity(flags) }
  const { workload } = options
  const remembered = recallProbe(memoFile, key)
  // Timings remembered without an evaluation cannot weigh a workload: such a run probes again.
  if (remembered && (!workload || remembered.evalFp32 !== undefined)) {
    const choice = decidePrecision(remembered, batch.length, where, workload)
    return { ...choice, reason: `${choice.reason} (remembered from a probe of ${remembered.at.slice(0, 10)}, ${memoFile})` }
  }
  const steps = await probePrecisions(async (precision) => {
    probe.setPrecision(precision)
    await probe.trainBatch(data, batch)
  })
  const evaluations = workload
    ? await probePrecisions(async (precision) => {
        probe.setPrecision(precision)
        await probe.evaluate(data, { indices: batch, batchSize: batch.length, tta: workload.tta })
      })
    : undefined
  const timings: ProbeTimings = { ...steps, ...(evaluations ? { evalFp32: evaluations.fp32, evalBf16: evaluations.bf16 } : {}) }
  // Training allocates one precision's activation sizes only: the probe's blocks of both go back.
  releaseCachedBlocks()
  // Only a clear outcome is remembered: near the margin the choice could follow one probe's noise for good, so a close
  // call is measured again by the next run.
  const run = estimate(timings, batch.length, workload)
  const ratio = run ? run.bf16 / run.fp32 : timings.bf16 / timings.fp32
  if (ratio < BF16_MARGIN - CLEAR_BY || ratio > BF16_MARGIN + CLEAR_BY) await rememberProbe(memoFile, key, timings)
  return decidePrecision(timings, batch.length, where, workload)
}
