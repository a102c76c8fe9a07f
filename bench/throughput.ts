// Training-step, evaluation and prediction throughput: ConvKit from TypeScript against PyTorch's own on the same
// images, in memory, on this machine, in this run. Prints images/s and the ratios; absolute numbers vary by machine.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { native } from '../ts/binding.ts'
import { Model, TensorDataset, readImageFolder, referenceCnn, runtimeInfo, train, type Precision } from '../ts/index.ts'
import { cifarSubset } from '../__test__/helpers/cifar-subset.ts'
import { zooStepBench } from './zoo-step.ts'

const here = path.dirname(fileURLToPath(import.meta.url))
const STEPS = Number(process.env.BENCH_STEPS ?? 40)
const WARMUP = 5
const BATCH = 128
const EVAL_BATCH = 512
const python = process.env.PYTHON ?? 'python3'

function order(n: number): Int32Array {
  const o = Int32Array.from({ length: n }, (_, i) => i)
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[o[i], o[j]] = [o[j]!, o[i]!]
  }
  return o
}

async function convkitTrain(data: TensorDataset, channelsLast: boolean, precision: Precision = 'fp32'): Promise<number> {
  const model = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', seed: 0, channelsLast, precision })
  const idx = order(data.length)
  const batchAt = (i: number) => idx.subarray((i * BATCH) % (data.length - BATCH)).subarray(0, BATCH)
  for (let i = 0; i < WARMUP; i++) await model.trainBatch(data, batchAt(i))
  const start = performance.now()
  for (let i = 0; i < STEPS; i++) await model.trainBatch(data, batchAt(WARMUP + i))
  return (STEPS * BATCH) / ((performance.now() - start) / 1000)
}

async function convkitTrainFloats(pixels: Float32Array, labels: Int32Array): Promise<number> {
  const model = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', seed: 0 })
  const per = 3 * 32 * 32
  const n = labels.length
  const batchAt = (i: number) => {
    const s = (i * BATCH) % (n - BATCH)
    return [pixels.subarray(s * per, (s + BATCH) * per), labels.subarray(s, s + BATCH)] as const
  }
  for (let i = 0; i < WARMUP; i++) await model.trainBatchFloats(...batchAt(i))
  const start = performance.now()
  for (let i = 0; i < STEPS; i++) await model.trainBatchFloats(...batchAt(WARMUP + i))
  return (STEPS * BATCH) / ((performance.now() - start) / 1000)
}

async function convkitEval(data: TensorDataset): Promise<number> {
  const model = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', seed: 0 })
  const count = Math.max(4, Math.floor(STEPS / 4)) * EVAL_BATCH
  const indices = Int32Array.from({ length: count }, (_, i) => i % data.length)
  await model.evaluate(data, { indices: indices.subarray(0, EVAL_BATCH), batchSize: EVAL_BATCH })
  const start = performance.now()
  await model.evaluate(data, { indices, batchSize: EVAL_BATCH })
  return count / ((performance.now() - start) / 1000)
}

/** Batched prediction from uint8 pixels (normalized natively), and single-image latency from pixels and from a file. */
async function convkitPredict(set: { pixels: Uint8Array; files?: string[] }): Promise<{ batch: number; singleMs: number; fileMs: number }> {
  const model = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', seed: 0 })
  const per = 3 * 32 * 32
  const batch = set.pixels.subarray(0, EVAL_BATCH * per)
  await model.predictPixels(batch, EVAL_BATCH)
  const rounds = Math.max(4, Math.floor(STEPS / 4))
  let start = performance.now()
  for (let i = 0; i < rounds; i++) await model.predictPixels(batch, EVAL_BATCH)
  const batchRate = (rounds * EVAL_BATCH) / ((performance.now() - start) / 1000)
  const one = set.pixels.subarray(0, per)
  const times: number[] = []
  for (let i = 0; i < 50; i++) {
    start = performance.now()
    await model.predictPixels(one, 1)
    times.push(performance.now() - start)
  }
  const fileTimes: number[] = []
  for (const file of (set.files ?? []).slice(0, 30)) {
    start = performance.now()
    await model.predict([file])
    fileTimes.push(performance.now() - start)
  }
  return { batch: batchRate, singleMs: median(times), fileMs: fileTimes.length ? median(fileTimes) : Number.NaN }
}

interface TorchResult {
  torch: string
  threads: number
  train: Record<'contiguous' | 'channels_last', number>
  eval: Record<'contiguous' | 'channels_last', number>
}

function pytorch(set: { pixels: Uint8Array; labels: Int32Array }, extra: string[] = []): TorchResult | string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'convkit-bench-'))
  const px = path.join(dir, 'pixels.u8')
  const lb = path.join(dir, 'labels.i32')
  fs.writeFileSync(px, set.pixels)
  fs.writeFileSync(lb, Buffer.from(set.labels.buffer, set.labels.byteOffset, set.labels.byteLength))
  const run = spawnSync(
    python,
    [
      path.join(here, 'pytorch_step.py'),
      '--pixels',
      px,
      '--labels',
      lb,
      '--steps',
      String(STEPS),
      '--warmup',
      String(WARMUP),
      '--batch',
      String(BATCH),
      '--eval-batch',
      String(EVAL_BATCH),
      ...extra,
    ],
    { encoding: 'utf8' },
  )
  fs.rmSync(dir, { recursive: true, force: true })
  if (run.status !== 0)
    return `PyTorch part skipped: ${python} failed (${(run.stderr || run.error?.message || '').trim().split('\n').at(-1)}). Set PYTHON to a python with torch 2.11.`
  return JSON.parse(run.stdout) as TorchResult
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
/** One training epoch over the image folder, end to end from TypeScript (decoded cache, shuffling, steps). */
async function convkitEpoch(trainDir: string): Promise<number> {
  const run = await train({
    data: path.dirname(trainDir),
    epochs: 1,
    valSplit: 0,
    monitor: 'test_loss',
    device: 'cpu',
    quiet: true,
    report: false,
    out: fs.mkdtempSync(path.join(os.tmpdir(), 'convkit-bench-run-')),
  })
  fs.rmSync(run.runDir, { recursive: true, force: true })
  return run.history.epochs[0]!.imagesPerSecond
}

/** The seed's pipeline for one epoch on the same folder: JPEG decode, ToTensor and Normalize per image in a DataLoader. */
function seedEpoch(trainDir: string): number | string {
  const run = spawnSync(python, [path.join(here, 'seed_pipeline.py'), '--root', trainDir], { encoding: 'utf8' })
  if (run.status !== 0)
    return `seed pipeline skipped: ${(run.stderr || run.error?.message || '').trim().split('\n').at(-1)} (needs torchvision)`
  return (JSON.parse(run.stdout) as { images_per_second: number }).images_per_second
}

/** Microseconds for one asynchronous native call that does nothing: the overhead every batch pays. */
async function callOverheadUs(): Promise<number> {
  for (let i = 0; i < 100; i++) await native.ping()
  const n = 2000
  const start = performance.now()
  for (let i = 0; i < n; i++) await native.ping()
  return ((performance.now() - start) * 1000) / n
}

const fmt = (v: number) => `${v.toFixed(0).padStart(7)} img/s`
const ratio = (a: number, b: number) => `${(a / b).toFixed(3)}×`

const info = runtimeInfo()
console.log(
  `ConvKit bench: libtorch ${info.torchVersion}, ${info.threads} threads, ${os.cpus()[0]?.model ?? 'cpu'}; ${STEPS} timed steps of batch ${BATCH}`,
)
const set = await readImageFolder(cifarSubset().train)
const data = await TensorDataset.create(set, { device: 'cpu' })
const floats = new Float32Array(set.pixels.length)
for (let i = 0; i < floats.length; i++) floats[i] = (set.pixels[i]! / 255 - 0.5) / 0.5

// This machine's speed drifts by ±15 % from minute to minute, so the two sides alternate for a few rounds
// and each figure is the median of its rounds.
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const rounds: {
  torch: TorchResult | string
  torchBf16: TorchResult | string
  contiguous: number
  channelsLast: number
  bf16: number
  floats: number
  eval: number
  predict: Awaited<ReturnType<typeof convkitPredict>>
  epoch: number
  seed: number | string
}[] = []
for (let r = 0; r < ROUNDS; r++) {
  rounds.push({
    torch: pytorch(set),
    channelsLast: await convkitTrain(data, true),
    torchBf16: pytorch(set, ['--bf16', '--layouts', 'channels_last']),
    bf16: await convkitTrain(data, true, 'bf16'),
    contiguous: await convkitTrain(data, false),
    floats: await convkitTrainFloats(floats, set.labels),
    eval: await convkitEval(data),
    predict: await convkitPredict(set),
    epoch: await convkitEpoch(cifarSubset().train),
    seed: seedEpoch(cifarSubset().train),
  })
}
const ck = {
  contiguous: median(rounds.map((r) => r.contiguous)),
  channelsLast: median(rounds.map((r) => r.channelsLast)),
  bf16: median(rounds.map((r) => r.bf16)),
  floats: median(rounds.map((r) => r.floats)),
  eval: median(rounds.map((r) => r.eval)),
  predict: median(rounds.map((r) => r.predict.batch)),
  singleMs: median(rounds.map((r) => r.predict.singleMs)),
  fileMs: median(rounds.map((r) => r.predict.fileMs)),
  epoch: median(rounds.map((r) => r.epoch)),
}
const seedRuns = rounds.map((r) => r.seed).filter((v): v is number => typeof v === 'number')
const seed = seedRuns.length > 0 ? median(seedRuns) : (rounds[0]!.seed as string)
const overhead = await callOverheadUs()
const torchRuns = rounds.map((r) => r.torch).filter((t): t is TorchResult => typeof t !== 'string')
const torch: TorchResult | string =
  torchRuns.length === 0
    ? (rounds[0]!.torch as string)
    : {
        ...torchRuns[0]!,
        train: {
          contiguous: median(torchRuns.map((t) => t.train.contiguous)),
          channels_last: median(torchRuns.map((t) => t.train.channels_last)),
        },
        eval: {
          contiguous: median(torchRuns.map((t) => t.eval.contiguous)),
          channels_last: median(torchRuns.map((t) => t.eval.channels_last)),
        },
      }
console.log(`medians of ${ROUNDS} alternating rounds`)
console.log('\ntraining step (forward, cross-entropy, backward, Adam)')
console.log(`  convkit, indices into resident data, contiguous     ${fmt(ck.contiguous)}`)
console.log(`  convkit, indices into resident data, channels_last  ${fmt(ck.channelsLast)}`)
console.log(`  convkit, float batch sent from JS each step          ${fmt(ck.floats)}`)
console.log(`  convkit, bf16 (autocast's rule), channels_last      ${fmt(ck.bf16)}    vs fp32 ${ratio(ck.bf16, ck.channelsLast)}`)
console.log(`native-call overhead per batch (empty async call to the libtorch thread): ${overhead.toFixed(1)} µs`)
console.log('one training epoch from the image folder, end to end')
console.log(`  convkit train(), decoded cache                       ${fmt(ck.epoch)}`)
console.log(
  typeof seed === 'number'
    ? `  seed pipeline (ImageFolder, ToTensor, Normalize)    ${fmt(seed)}    ratio ${ratio(ck.epoch, seed)}`
    : `  ${seed}`,
)
console.log('evaluation (forward, loss, top-k, confusion; channels_last)')
console.log(`  convkit                                             ${fmt(ck.eval)}`)
console.log('prediction (forward, softmax, probabilities back to JS)')
console.log(`  convkit, batch ${EVAL_BATCH} of uint8 pixels                  ${fmt(ck.predict)}`)
console.log(`  convkit, one image from pixels                      ${ck.singleMs.toFixed(2).padStart(7)} ms`)
console.log(`  convkit, one image from a JPEG file (decode incl.)  ${ck.fileMs.toFixed(2).padStart(7)} ms`)
if (typeof torch === 'string') {
  console.log(`\n${torch}`)
} else {
  console.log(`pytorch ${torch.torch} (${torch.threads} threads), data preloaded in one tensor`)
  console.log(`  train contiguous                                    ${fmt(torch.train.contiguous)}`)
  console.log(`  train channels_last                                 ${fmt(torch.train.channels_last)}`)
  console.log(`  eval contiguous                                     ${fmt(torch.eval.contiguous)}`)
  console.log(`  eval channels_last                                  ${fmt(torch.eval.channels_last)}`)
  const bestTorch = Math.max(torch.train.contiguous, torch.train.channels_last)
  const bestOurs = Math.max(ck.contiguous, ck.channelsLast)
  console.log('\nratios (convkit / pytorch, same layout)')
  console.log(`  train contiguous      ${ratio(ck.contiguous, torch.train.contiguous)}`)
  console.log(`  train channels_last   ${ratio(ck.channelsLast, torch.train.channels_last)}`)
  console.log(`  train best vs best    ${ratio(bestOurs, bestTorch)}`)
  const bestEval = Math.max(torch.eval.contiguous, torch.eval.channels_last)
  console.log(`  eval (channels_last)  ${ratio(ck.eval, torch.eval.channels_last)}`)
  console.log(`  eval best vs best     ${ratio(ck.eval, bestEval)}`)
  console.log(`  predict vs eval floor ${ratio(ck.predict, bestEval)}`)
}
const torchBf16 = rounds.map((r) => r.torchBf16).filter((t): t is TorchResult => typeof t !== 'string')
if (torchBf16.length > 0) {
  const floor = median(torchBf16.map((t) => t.train.channels_last))
  console.log(`pytorch under bf16 autocast, channels_last: train ${fmt(floor)}; convkit bf16 / pytorch bf16 ${ratio(ck.bf16, floor)}`)
}
await zooStepBench(ROUNDS)
console.log(`\npeak RSS of this process: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`)
