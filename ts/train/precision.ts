// precision: 'auto' (the default): bf16 where the CPU computes it natively and a short probe finds it clearly faster,
// fp32 elsewhere.
import fs from 'node:fs'
import type { TensorDataset } from '../data/tensor-dataset.ts'
import type { ModelSpec } from '../model/layers.ts'
import { Model, type Precision } from '../model/model.ts'

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

export interface PrecisionChoice {
  precision: Precision
  /** Why, in a sentence the run prints and history.json records. */
  reason: string
  /** Median milliseconds of a training step in each precision, when probed. */
  probe?: { fp32: number; bf16: number }
}

/**
 * Picks fp32 or bf16 for `spec`: fp32 on a CPU without native bf16; otherwise a few training steps of a throwaway
 * copy of the model on real batches, timed in each precision, and bf16 wins when it is at least 10 % faster.
 */
export async function choosePrecision(
  spec: ModelSpec,
  data: TensorDataset,
  indices: Int32Array,
  batchSize: number,
  device: string,
): Promise<PrecisionChoice> {
  const forced = process.env[AUTO_PRECISION_ENV]
  if (forced === 'fp32' || forced === 'bf16') return { precision: forced, reason: `${forced}: ${AUTO_PRECISION_ENV}=${forced}` }
  const flags = cpuBf16Flags()
  if (device === 'cpu' && flags.length === 0) {
    return { precision: 'fp32', reason: 'fp32: this CPU has no native bf16 (neither avx512_bf16 nor amx_bf16 in /proc/cpuinfo)' }
  }
  const probe = Model.create(spec, { device: device as 'cpu', seed: 0 })
  const batch = indices.subarray(0, Math.min(batchSize, 64, indices.length))
  const time = async (precision: Precision): Promise<number> => {
    probe.setPrecision(precision)
    await probe.trainBatch(data, batch)
    const times: number[] = []
    for (let i = 0; i < 3; i++) {
      const start = performance.now()
      await probe.trainBatch(data, batch)
      times.push(performance.now() - start)
    }
    return times.sort((a, b) => a - b)[1]!
  }
  const fp32 = await time('fp32')
  const bf16 = await time('bf16')
  const where = device === 'cpu' ? `the CPU has ${flags.join(' and ')}` : `on ${device}`
  const timings = `a ${batch.length}-image step took ${bf16.toFixed(0)} ms in bf16 and ${fp32.toFixed(0)} ms in fp32`
  // A clear win only: where the two are close the choice would follow timing noise from run to run.
  return bf16 < BF16_MARGIN * fp32
    ? { precision: 'bf16', reason: `bf16: ${where}, and ${timings}`, probe: { fp32, bf16 } }
    : { precision: 'fp32', reason: `fp32: ${where}, but ${timings}`, probe: { fp32, bf16 } }
}
