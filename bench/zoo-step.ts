// Training-step throughput of zoo networks at fine-tuning size (224×224, batch 32, channels_last, AdamW): ConvKit
// from TypeScript against PyTorch's own (bench/zoo_step.py: torchvision's networks, timm's tf_efficientnet_lite0), in
// fp32 and under bf16, alternating rounds in one run. bench/throughput.ts calls it; alone:
// npx tsx bench/zoo-step.ts          (BENCH_DEVICE=cuda on a GPU, as scripts/gpu-check.sh does; BENCH_ZOO_STEPS=6,
// BENCH_BATCH=32, BENCH_OPTIMIZER=adamw|sgd, BENCH_ARCHS=resnet18,efficientnet_lite0,regnet_y_800mf,efficientnet_v2_s, BENCH_TORCH_SINGLE_TENSOR=1,
// BENCH_CHANNELS_LAST=1|0 to force ConvKit's memory order)
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Model, TensorDataset, type Device, type Precision, type ZooName } from '../ts/index.ts'

const here = path.dirname(fileURLToPath(import.meta.url))
const SIZE = 224
const BATCH = Number(process.env.BENCH_BATCH ?? 32)
/** adamw, or sgd (plain, no momentum): the difference is the optimizer's share of a step. */
const OPTIMIZER = (process.env.BENCH_OPTIMIZER ?? 'adamw') as 'adamw' | 'sgd'
/** ConvKit's memory order: its default (channels_last on the CPU only), or 1/0 to force it. */
const CHANNELS_LAST = process.env.BENCH_CHANNELS_LAST === undefined ? undefined : process.env.BENCH_CHANNELS_LAST === '1'
const ARCHS = (process.env.BENCH_ARCHS ?? 'resnet18,efficientnet_lite0,regnet_y_800mf,efficientnet_v2_s').split(',') as ZooName[]
const STEPS = Number(process.env.BENCH_ZOO_STEPS ?? 6)
const WARMUP = 2
const IMAGES = 256
const DEVICE = (process.env.BENCH_DEVICE ?? 'cpu') as Device
const python = process.env.PYTHON ?? process.env.CONVKIT_PYTHON ?? 'python3'

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

/** Deterministic pseudo-random images: the step's cost does not depend on their content. */
function images(): { pixels: Uint8Array; labels: Int32Array } {
  const pixels = new Uint8Array(IMAGES * 3 * SIZE * SIZE)
  let x = 12345
  for (let i = 0; i < pixels.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    pixels[i] = x >>> 24
  }
  return { pixels, labels: Int32Array.from({ length: IMAGES }, (_, i) => i % 10) }
}

async function convkit(arch: ZooName, data: TensorDataset, precision: Precision): Promise<number> {
  const model = Model.create(arch, {
    classes: 10,
    inputSize: [SIZE, SIZE],
    device: DEVICE,
    seed: 0,
    precision,
    channelsLast: CHANNELS_LAST,
    optimizer: { type: OPTIMIZER, lr: 1e-3 },
  })
  const batch = (i: number) => Int32Array.from({ length: BATCH }, (_, j) => ((i * BATCH) % (IMAGES - BATCH + 1)) + j)
  for (let i = 0; i < WARMUP; i++) await model.trainBatch(data, batch(i))
  const start = performance.now()
  for (let i = 0; i < STEPS; i++) await model.trainBatch(data, batch(WARMUP + i))
  return (STEPS * BATCH) / ((performance.now() - start) / 1000)
}

function pytorch(arch: ZooName, files: { pixels: string; labels: string }, precision: Precision): number | string {
  const run = spawnSync(
    python,
    [
      path.join(here, 'zoo_step.py'),
      '--arch',
      arch,
      '--pixels',
      files.pixels,
      '--labels',
      files.labels,
      '--size',
      String(SIZE),
      '--steps',
      String(STEPS),
      '--warmup',
      String(WARMUP),
      '--batch',
      String(BATCH),
      '--device',
      DEVICE,
      '--optimizer',
      OPTIMIZER,
      ...(process.env.BENCH_TORCH_SINGLE_TENSOR === '1' ? ['--single-tensor'] : []),
      ...(precision === 'bf16' ? ['--bf16'] : []),
    ],
    { encoding: 'utf8' },
  )
  if (run.status !== 0)
    return `PyTorch part skipped: ${(run.stderr || run.error?.message || '').trim().split('\n').at(-1)} (needs torch 2.11, torchvision and timm; set PYTHON)`
  return (JSON.parse(run.stdout) as { images_per_second: number }).images_per_second
}

/** Runs the comparison for each of ARCHS and prints one line per network and precision. */
export async function zooStepBench(rounds = Number(process.env.BENCH_ROUNDS ?? 3)): Promise<void> {
  const set = images()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'convkit-zoo-bench-'))
  const files = { pixels: path.join(dir, 'pixels.u8'), labels: path.join(dir, 'labels.i32') }
  fs.writeFileSync(files.pixels, set.pixels)
  fs.writeFileSync(files.labels, Buffer.from(set.labels.buffer))
  const data = await TensorDataset.create(
    { pixels: set.pixels, labels: set.labels, shape: [3, SIZE, SIZE], classes: Array.from({ length: 10 }, (_, i) => String(i)) },
    { device: DEVICE },
  )
  console.log(
    `\nzoo networks at ${SIZE}×${SIZE}, batch ${BATCH}, channels_last, ${OPTIMIZER}, on ${DEVICE}: training step, medians of ${rounds} alternating rounds`,
  )
  try {
    for (const arch of ARCHS) {
      for (const precision of ['fp32', 'bf16'] as const) {
        const ours: number[] = []
        const theirs: number[] = []
        let skipped: string | undefined
        for (let r = 0; r < rounds; r++) {
          const t = pytorch(arch, files, precision)
          if (typeof t === 'string') skipped = t
          else theirs.push(t)
          ours.push(await convkit(arch, data, precision))
        }
        const o = median(ours)
        const line = `  ${arch.padEnd(20)} ${precision}  convkit ${o.toFixed(1).padStart(6)} img/s`
        console.log(
          theirs.length > 0
            ? `${line}   pytorch ${median(theirs).toFixed(1).padStart(6)} img/s   ratio ${(o / median(theirs)).toFixed(3)}×`
            : `${line}   ${skipped}`,
        )
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await zooStepBench()
