// Streaming from tar shards against the resident path: writes CIFAR-10's 50 000 training JPEGs four times into
// shards (200 000 samples, in a temporary folder) and trains one epoch of the reference CNN from them in a process of
// its own, for its peak RSS; compares images/s with the resident path on the 50 000 images in alternating segments
// within one process, so that a machine whose speed swings with other work slows both sides alike.
//
// npm run bench:stream -- [--copies 4] [--per-shard 10000] [--batch 128] [--decode-threads N] [--train <class folder>] [--keep]
import { fork } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Model, TensorDataset, extractArchive, readImageFolder, referenceCnn, runtimeInfo } from '../ts/index.ts'
import { openShards } from '../ts/data/shards/shard-stream.ts'
import { trainEpochOnShards } from '../ts/data/shards/stream-train.ts'
import { writeShards } from '../ts/data/shards/write-shards.ts'
import { deriveSeed, range, shuffle } from '../ts/data/split.ts'
import { formatBytes } from '../ts/util/progress.ts'
import { CIFAR_ARCHIVE } from '../__test__/helpers/cifar-subset.ts'

type Job =
  | { kind: 'resident'; train: string; batch: number }
  | { kind: 'paired'; train: string; pattern: string; batch: number; decodeThreads?: number; segment: number }
  | { kind: 'stream'; pattern: string; batch: number; decodeThreads?: number; train: boolean }

interface Measured {
  images: number
  seconds: number
  imagesPerSecond: number
  /** Seconds before the first step: decoding the folder (resident) or opening the shards (stream). */
  setupSeconds: number
  maxRssBytes: number
  vmHwmBytes: number
  /** CPU seconds (user + system, all threads) of the epoch: steadier than wall time on a shared machine. */
  cpuSeconds: number
  loss?: number
}

/** CPU seconds used by this process since `from`. */
function cpuSince(from: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(from)
  return (d.user + d.system) / 1e6
}

function peakRss(): { maxRssBytes: number; vmHwmBytes: number } {
  const status = fs.readFileSync('/proc/self/status', 'utf8')
  const hwm = /VmHWM:\s+(\d+) kB/.exec(status)
  return { maxRssBytes: process.resourceUsage().maxRSS * 1024, vmHwmBytes: hwm ? Number(hwm[1]) * 1024 : Number.NaN }
}

interface Paired {
  batches: number
  resident: { images: number; seconds: number }
  stream: { images: number; seconds: number }
  /** Stream over resident images/s, per pair of segments. */
  ratios: number[]
}

/**
 * Both paths in one process, in alternating segments of `segment` batches (one model each), over one epoch each:
 * on a machine whose speed swings with other work, each pair of segments runs under the same conditions.
 */
async function runPaired(job: Extract<Job, { kind: 'paired' }>): Promise<Paired> {
  const set = await readImageFolder(job.train)
  const data = await TensorDataset.create(set, { device: 'cpu' })
  const residentModel = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', seed: 0 })
  const streamModel = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', seed: 0 })
  const order = shuffle(range(data.length), deriveSeed(0, 1))
  const stream = await openShards(job.pattern, { batchSize: job.batch, seed: 0, epoch: 1, decodeThreads: job.decodeThreads })
  const batches = stream[Symbol.asyncIterator]()
  // Warm both models up (first-step allocations, kernel choices) outside the timed segments.
  const per = set.shape[0] * set.shape[1] * set.shape[2]
  for (let k = 0; k < 3; k++) {
    const warm = order.subarray(order.length - (k + 1) * job.batch, order.length - k * job.batch)
    await residentModel.trainBatch(data, warm)
    await streamModel.trainBatchPixels(set.pixels.subarray(0, job.batch * per), set.labels.subarray(0, job.batch), set.shape)
  }
  const out: Paired = { batches: 0, resident: { images: 0, seconds: 0 }, stream: { images: 0, seconds: 0 }, ratios: [] }
  let b = 0
  for (let done = false; !done; ) {
    let t0 = performance.now()
    let images = 0
    for (let k = 0; k < job.segment && b * job.batch < order.length; k++, b++) {
      images += (await residentModel.trainBatch(data, order.subarray(b * job.batch, (b + 1) * job.batch))).count
    }
    const residentSeconds = (performance.now() - t0) / 1000
    out.resident.images += images
    out.resident.seconds += residentSeconds
    const residentRate = images / residentSeconds
    t0 = performance.now()
    images = 0
    for (let k = 0; k < job.segment; k++) {
      const next = await batches.next()
      if (next.done) {
        done = true
        break
      }
      images += (await streamModel.trainBatchPixels(next.value.pixels, next.value.labels, next.value.shape)).count
    }
    const streamSeconds = (performance.now() - t0) / 1000
    out.stream.images += images
    out.stream.seconds += streamSeconds
    if (images > 0 && residentRate > 0) out.ratios.push(images / streamSeconds / residentRate)
  }
  out.batches = b
  await stream.close()
  return out
}

async function runJob(job: Job): Promise<Measured | Paired> {
  if (job.kind === 'paired') return runPaired(job)
  const started = performance.now()
  if (job.kind === 'resident') {
    // What train() does with data that fits: decode once, copy to the device, then index into it every step.
    const set = await readImageFolder(job.train)
    const data = await TensorDataset.create(set, { device: 'cpu' })
    const model = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', seed: 0 })
    const setupSeconds = (performance.now() - started) / 1000
    const order = shuffle(range(data.length), deriveSeed(0, 1))
    const t0 = performance.now()
    const cpu0 = process.cpuUsage()
    let lossSum = 0
    for (let b = 0; b < order.length; b += job.batch) {
      const step = await model.trainBatch(data, order.subarray(b, b + job.batch))
      lossSum += step.loss * step.count
    }
    const seconds = (performance.now() - t0) / 1000
    return {
      images: order.length,
      seconds,
      imagesPerSecond: order.length / seconds,
      setupSeconds,
      cpuSeconds: cpuSince(cpu0),
      loss: lossSum / order.length,
      ...peakRss(),
    }
  }
  if (!job.train) {
    // The pipeline alone: read, shuffle, decode, with nothing consuming the batches.
    const stream = await openShards(job.pattern, { batchSize: job.batch, seed: 0, epoch: 1, decodeThreads: job.decodeThreads })
    const setupSeconds = (performance.now() - started) / 1000
    const t0 = performance.now()
    const cpu0 = process.cpuUsage()
    let images = 0
    for await (const b of stream) images += b.count
    const seconds = (performance.now() - t0) / 1000
    return { images, seconds, imagesPerSecond: images / seconds, setupSeconds, cpuSeconds: cpuSince(cpu0), ...peakRss() }
  }
  const model = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', seed: 0 })
  const setupSeconds = (performance.now() - started) / 1000
  const cpu0 = process.cpuUsage()
  const r = await trainEpochOnShards(model, job.pattern, { epoch: 1, batchSize: job.batch, seed: 0, decodeThreads: job.decodeThreads })
  return {
    images: r.images,
    seconds: r.seconds,
    imagesPerSecond: r.imagesPerSecond,
    setupSeconds,
    cpuSeconds: cpuSince(cpu0),
    loss: r.metrics.loss,
    ...peakRss(),
  }
}

function inChild(job: Extract<Job, { kind: 'paired' }>): Promise<Paired>
function inChild(job: Exclude<Job, { kind: 'paired' }>): Promise<Measured>
function inChild(job: Job): Promise<Measured | Paired> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), ['--child', JSON.stringify(job)], {
      execArgv: process.execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    let result: Measured | Paired | undefined
    child.on('message', (m: Measured | Paired) => (result = m))
    child.on('error', reject)
    child.on('close', (code) => (result ? resolve(result) : reject(new Error(`${job.kind} child exited with ${code}`))))
  })
}

/** `copies` hard links (copies where links fail) of every image of `train`, as `<class>/<k>-<file>`. */
function multiply(train: string, into: string, copies: number): number {
  let n = 0
  for (const cls of fs.readdirSync(train).sort()) {
    fs.mkdirSync(path.join(into, cls), { recursive: true })
    for (const file of fs.readdirSync(path.join(train, cls))) {
      for (let k = 0; k < copies; k++) {
        const src = path.join(train, cls, file)
        const dst = path.join(into, cls, `${k}-${file}`)
        try {
          fs.linkSync(src, dst)
        } catch {
          fs.copyFileSync(src, dst)
        }
        n++
      }
    }
  }
  return n
}

/** The shared archive's training folder, extracted once into the dataset cache. */
async function cifarTrain(): Promise<string> {
  const root = await extractArchive(CIFAR_ARCHIVE)
  return fs.existsSync(path.join(root, 'train')) ? path.join(root, 'train') : path.join(root, 'cifar10-jpg', 'train')
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      train: { type: 'string' },
      copies: { type: 'string' },
      'per-shard': { type: 'string' },
      batch: { type: 'string' },
      'decode-threads': { type: 'string' },
      keep: { type: 'boolean' },
    },
  })
  const copies = Number(values.copies ?? 4)
  const perShard = Number(values['per-shard'] ?? 10000)
  const batch = Number(values.batch ?? 128)
  const decodeThreads = values['decode-threads'] ? Number(values['decode-threads']) : undefined
  const info = runtimeInfo()
  console.log(
    `ConvKit streaming bench: libtorch ${info.torchVersion}, ${info.threads} threads, ${os.availableParallelism()} cores, ${os.cpus()[0]?.model ?? 'cpu'}`,
  )

  const train = values.train ?? (await cifarTrain())
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'convkit-bench-stream-'))
  try {
    let t = performance.now()
    const many = multiply(train, path.join(scratch, 'images'), copies)
    console.log(
      `${many.toLocaleString('en-US')} images (${copies} × the ${(many / copies).toLocaleString('en-US')} of ${train}) linked in ${((performance.now() - t) / 1000).toFixed(1)} s`,
    )
    t = performance.now()
    const big = await writeShards(path.join(scratch, 'images'), path.join(scratch, 'shards', 'train-%06d.tar'), { perShard })
    const bigBytes = big.files.reduce((s, f) => s + fs.statSync(f).size, 0)
    console.log(
      `wrote ${big.files.length} shards, ${formatBytes(bigBytes)}, in ${((performance.now() - t) / 1000).toFixed(1)} s: ${big.pattern}`,
    )
    const once = await writeShards(train, path.join(scratch, 'shards-1x', 'train-%06d.tar'), { perShard, quiet: true })

    const loadBefore = os.loadavg()
    // The ratio comes from alternating segments in one process; peak RSS from each path in a process of its own.
    const paired = await inChild({ kind: 'paired', train, pattern: once.pattern, batch, decodeThreads, segment: 20 })
    const streamBig = await inChild({ kind: 'stream', pattern: big.pattern, batch, decodeThreads, train: true })
    const resident = await inChild({ kind: 'resident', train, batch })
    const pipeline = await inChild({ kind: 'stream', pattern: once.pattern, batch, decodeThreads, train: false })

    const rate = (x: { images: number; seconds: number }) => x.images / x.seconds
    const sorted = [...paired.ratios].sort((a, b) => a - b)
    const median = sorted[Math.floor(sorted.length / 2)]!
    console.log(
      `\nmachine load average before/after: ${loadBefore.map((l) => l.toFixed(1)).join(' ')} / ${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    )
    console.log(
      `one epoch each of the reference CNN, batch ${batch}, alternating segments of 20 batches in one process (${paired.ratios.length} pairs):`,
    )
    console.log(`  resident (indices into a TensorDataset)          ${rate(paired.resident).toFixed(0).padStart(6)} img/s`)
    console.log(
      `  streamed from shards (trainBatchPixels)          ${rate(paired.stream).toFixed(0).padStart(6)} img/s   ratio ${(rate(paired.stream) / rate(paired.resident)).toFixed(3)}× (median of pairs ${median.toFixed(3)}×, range ${sorted[0]!.toFixed(2)}–${sorted.at(-1)!.toFixed(2)})`,
    )
    const row = (label: string, m: Measured) =>
      `  ${label.padEnd(46)} ${m.images.toLocaleString('en-US').padStart(8)} img ${m.seconds.toFixed(1).padStart(7)} s ${m.imagesPerSecond.toFixed(0).padStart(6)} img/s ${(m.images / m.cpuSeconds).toFixed(0).padStart(6)} img/CPU-s` +
      `  setup ${m.setupSeconds.toFixed(1).padStart(4)} s  peak RSS ${formatBytes(m.maxRssBytes).padStart(8)} (VmHWM ${formatBytes(m.vmHwmBytes)})` +
      (m.loss !== undefined ? `  loss ${m.loss.toFixed(3)}` : '')
    console.log('each in a process of its own:')
    console.log(row(`streamed from shards, ${many.toLocaleString('en-US')} images`, streamBig))
    console.log(row(`resident, ${resident.images.toLocaleString('en-US')} images`, resident))
    console.log(row('read + shuffle + decode only (no training)', pipeline))
    console.log(
      JSON.stringify({
        copies,
        perShard,
        batch,
        decodeThreads: decodeThreads ?? os.availableParallelism(),
        shardBytes: bigBytes,
        paired,
        streamBig,
        resident,
        pipeline,
      }),
    )
  } finally {
    if (values.keep) console.log(`kept ${scratch}`)
    else fs.rmSync(scratch, { recursive: true, force: true })
  }
}

const childAt = process.argv.indexOf('--child')
if (childAt >= 0) {
  runJob(JSON.parse(process.argv[childAt + 1]!) as Job).then(
    (m) => process.send!(m, () => process.exit(0)),
    (err: Error) => {
      console.error(err)
      process.exit(1)
    },
  )
} else {
  await main()
}
