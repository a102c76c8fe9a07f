// Data-parallel training steps on this machine: the reference CNN on CIFAR-10 images, 2 Gloo ranks on 127.0.0.1 (one
// intra-op thread each, as the launcher sets) against one process with the same global batch (all cores). Prints, per
// step: the native step time, the time spent averaging the gradients (packing, all-reduce, unpacking) and its share of
// the step, how much of that was waiting for the slower rank, and images/s of both runs.
//
// With BENCH_SYNC_BN=1 it instead times the 2 ranks on a small batch-norm network (three conv → batchnorm → relu
// stages), first with per-rank statistics and then with synchronized batch norm, and prints what syncing costs.
//
// usage: npx tsx bench/distributed.ts [steps] [global batch]      (defaults: 60 steps, batch 128)
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Model, ProcessGroup, TensorDataset, readImageFolder, referenceCnn, type StepResult } from '../ts/index.ts'
import { freePort } from '../ts/distributed/launcher.ts'
import { cifarSubset } from '../__test__/helpers/cifar-subset.ts'

const STEPS = Number(process.argv[2] ?? 60)
const BATCH = Number(process.argv[3] ?? 128)
if (!(STEPS > 0 && BATCH > 0 && BATCH % 2 === 0)) throw new Error('usage: npx tsx bench/distributed.ts [steps] [even global batch]')
const WARMUP = 5
const WORLD = 2

interface RankResult {
  rank: number
  /** Per timed step: native step seconds, gradient-averaging seconds, and when (ms, this machine's clock) it ended. */
  seconds: number[]
  allreduce: number[]
  wall: number
}

/** Global step i's images: a fixed pseudo-random order, cut into global batches; rank r takes positions r, r + W, … */
function batch(n: number, step: number, rank: number, world: number): Int32Array {
  const per = BATCH / world
  return Int32Array.from({ length: per }, (_, j) => ((step * BATCH + rank + j * world) * 7919) % n)
}

async function steps(model: Model, data: TensorDataset, rank: number, world: number): Promise<RankResult> {
  for (let i = 0; i < WARMUP; i++) await model.trainBatch(data, batch(data.length, i, rank, world))
  const out: RankResult = { rank, seconds: [], allreduce: [], wall: 0 }
  const started = performance.now()
  for (let i = 0; i < STEPS; i++) {
    const s: StepResult = await model.trainBatch(data, batch(data.length, WARMUP + i, rank, world))
    out.seconds.push(s.seconds)
    out.allreduce.push(s.allreduceSeconds)
  }
  out.wall = (performance.now() - started) / 1000
  return out
}

async function load(): Promise<TensorDataset> {
  return TensorDataset.create(await readImageFolder(cifarSubset().train), { device: 'cpu' })
}

/** Three conv → batch norm → relu → max pool stages: what synchronized batch norm is timed on. */
const BATCHNORM_NET = {
  inputShape: [3, 32, 32] as [number, number, number],
  layers: [32, 64, 128]
    .flatMap((c) => [
      { type: 'conv2d', outChannels: c, kernelSize: 3, padding: 1, bias: false },
      { type: 'batchnorm2d' },
      { type: 'relu' },
      { type: 'maxpool2d', kernelSize: 2 },
    ])
    .concat([{ type: 'adaptiveavgpool2d' }, { type: 'flatten' }, { type: 'linear', outFeatures: 10 }] as never[]),
}

/** Per-rank statistics, then synchronized: the same steps on the same data, so the difference is the syncing. */
async function syncBatchNormRankMain(): Promise<void> {
  const group = await ProcessGroup.init()
  const data = await load()
  const results: Record<string, RankResult> = {}
  for (const syncBatchNorm of [false, true]) {
    const model = Model.create(BATCHNORM_NET as never, { device: 'cpu', seed: 0 })
    await model.broadcastWeights(group)
    model.attachProcessGroup(group, { syncBatchNorm })
    await group.barrier()
    results[syncBatchNorm ? 'synced' : 'perRank'] = await steps(model, data, group.rank, group.worldSize)
  }
  await group.barrier()
  group.destroy()
  console.log(JSON.stringify(results))
}

async function rankMain(): Promise<void> {
  if (process.env.BENCH_SYNC_BN) return syncBatchNormRankMain()
  const group = await ProcessGroup.init()
  const data = await load()
  const model = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', seed: 0 })
  await model.broadcastWeights(group)
  model.attachProcessGroup(group)
  await group.barrier()
  const result = await steps(model, data, group.rank, group.worldSize)
  await group.barrier()
  group.destroy()
  console.log(JSON.stringify(result))
}

/** One rank's share of the work with no group: the step time a rank would have without communication. */
async function aloneMain(): Promise<void> {
  const data = await load()
  console.log(JSON.stringify(await steps(Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', seed: 0 }), data, 0, WORLD)))
}

function child<T = RankResult>(env: NodeJS.ProcessEnv, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const proc = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), String(STEPS), String(BATCH)], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    proc.stdout.on('data', (d) => (out += d))
    proc.on('exit', (code) =>
      code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1)!) as T) : reject(new Error(`${what} exited with ${code}`)),
    )
  })
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
const ms = (s: number) => `${(1000 * s).toFixed(1)} ms`

function rankEnv(port: string, rank: number): NodeJS.ProcessEnv {
  return {
    MASTER_ADDR: '127.0.0.1',
    MASTER_PORT: port,
    WORLD_SIZE: String(WORLD),
    RANK: String(rank),
    LOCAL_RANK: String(rank),
    OMP_NUM_THREADS: '1',
  }
}

async function syncBatchNormMain(): Promise<void> {
  const port = String(await freePort())
  const ranks = await Promise.all(
    Array.from({ length: WORLD }, (_, rank) => child<Record<'perRank' | 'synced', RankResult>>(rankEnv(port, rank), `rank ${rank}`)),
  )
  console.log(`3 conv → batchnorm stages, global batch ${BATCH} on ${WORLD} ranks, ${STEPS} timed steps`)
  for (const kind of ['perRank', 'synced'] as const) {
    const step = mean(ranks.map((r) => mean(r[kind].seconds)))
    const images = (STEPS * BATCH) / Math.max(...ranks.map((r) => r[kind].wall))
    console.log(
      `${kind === 'synced' ? 'synchronized batch norm' : 'per-rank batch norm   '}: ${ms(step)} per step, ${images.toFixed(0)} images/s`,
    )
  }
  const ratio = mean(ranks.map((r) => mean(r.synced.seconds))) / mean(ranks.map((r) => mean(r.perRank.seconds)))
  console.log(`synchronized / per-rank step time: ${ratio.toFixed(3)}`)
}

async function main(): Promise<void> {
  if (process.env.BENCH_SYNC_BN) return syncBatchNormMain()
  const data = await load()
  const single = await steps(Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', seed: 0 }), data, 0, 1)
  const alone = await child({ BENCH_ROLE: 'alone', OMP_NUM_THREADS: '1' }, 'the lone rank')
  const port = String(await freePort())
  const ranks = await Promise.all(Array.from({ length: WORLD }, (_, rank) => child(rankEnv(port, rank), `rank ${rank}`)))
  console.log(`reference CNN (2.12 M parameters, 8.5 MB of fp32 gradients), global batch ${BATCH}, ${STEPS} timed steps`)
  console.log(
    `one process (${BATCH} images/step, all cores): ${ms(mean(single.seconds))} per step, ${((STEPS * BATCH) / single.wall).toFixed(0)} images/s`,
  )
  console.log(`one rank's share alone (${BATCH / WORLD} images/step, 1 thread, no group): ${ms(mean(alone.seconds))} per step`)
  for (const r of ranks) {
    const share = mean(r.allreduce) / mean(r.seconds)
    console.log(
      `rank ${r.rank} (${BATCH / WORLD} images/step, 1 thread): ${ms(mean(r.seconds))} per step; averaging gradients ${ms(mean(r.allreduce))} (${(100 * share).toFixed(1)} % of the step)`,
    )
  }
  // The rank that reaches the all-reduce last waits for no one: its time is the transfer itself; the other rank's
  // extra time is waiting for it.
  const transfer = ranks[0]!.allreduce.map((a, i) => Math.min(a, ranks[1]!.allreduce[i]!))
  const waiting = ranks[0]!.allreduce.map((a, i) => Math.abs(a - ranks[1]!.allreduce[i]!))
  const step = mean(ranks.map((r) => mean(r.seconds)))
  console.log(
    `per step: the all-reduce itself ${ms(mean(transfer))} (median ${ms([...transfer].sort((a, b) => a - b)[transfer.length >> 1]!)}), ${((100 * mean(transfer)) / step).toFixed(1)} % of the step; waiting for the slower rank ${ms(mean(waiting))}`,
  )
  const images = (STEPS * BATCH) / Math.max(...ranks.map((r) => r.wall))
  console.log(
    `2 ranks: ${images.toFixed(0)} images/s (${((100 * images) / ((STEPS * BATCH) / single.wall)).toFixed(0)} % of one process on the same cores)`,
  )
}

if (process.env.RANK !== undefined) await rankMain()
else if (process.env.BENCH_ROLE === 'alone') await aloneMain()
else await main()
