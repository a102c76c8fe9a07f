// Data-parallel training with 2 CPU ranks over Gloo on 127.0.0.1, each a real process: parity with one process of
// the same global batch, one history.json, a killed rank as a named error, and the CLI's --nproc-per-node launcher
// (interrupt, resume, a worker's death).
import test from 'ava'
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { train, writeShards, type HistoryFile } from '../ts/index.ts'
import { resolveDistributed } from '../ts/distributed/env.ts'
import { freePort, withoutFlag } from '../ts/distributed/launcher.ts'
import { evaluationShare, shardIndices } from '../ts/distributed/sampler.ts'
import { readSafetensors } from '../ts/weights/safetensors-file.ts'
import { torchTensorValues } from '../ts/weights/torch-checkpoint.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const rankScript = path.join(repo, '__test__', 'fixtures', 'distributed-rank.ts')
const trainScript = path.join(repo, 'scripts', 'train.ts')
const root = path.dirname(cifarSubset().train)
const tmp = tempDirs('dist')

/** A child process with its output collected, and a promise of how it ended (and when). */
interface Proc {
  child: ChildProcess
  out: () => string
  err: () => string
  ended: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>
}

function run(args: string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn(process.execPath, ['--import=tsx', ...args], {
    cwd: repo,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout!.on('data', (d) => (out += d))
  child.stderr!.on('data', (d) => (err += d))
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, at: performance.now() })),
  )
  return { child, out: () => out, err: () => err, ended }
}

/** Two ranks of the fixture, with torchrun's variables (one intra-op thread each, as the launcher would set). */
async function twoRanks(options: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): Promise<Proc[]> {
  const port = String(await freePort())
  return [0, 1].map((rank) =>
    run([rankScript], {
      ...env,
      MASTER_ADDR: '127.0.0.1',
      MASTER_PORT: port,
      WORLD_SIZE: '2',
      RANK: String(rank),
      LOCAL_RANK: String(rank),
      OMP_NUM_THREADS: '1',
      CONVKIT_TEST_TRAIN: JSON.stringify(options),
    }),
  )
}

/** Resolves once `text()` matches `pattern` (polling), or rejects after `ms`. */
async function waitFor(text: () => string, pattern: RegExp, ms = 60_000): Promise<void> {
  const until = performance.now() + ms
  while (!pattern.test(text())) {
    if (performance.now() > until) throw new Error(`timed out waiting for ${pattern}; got:\n${text()}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

function keysOf(history: HistoryFile): unknown {
  const e = history.epochs[0]!
  return {
    top: Object.keys(history).sort(),
    epoch: Object.keys(e).sort(),
    train: Object.keys(e.train).sort(),
    test: Object.keys(e.test!).sort(),
    config: Object.keys(history.config).sort(),
  }
}

test('each rank takes DistributedSampler’s share: padded by wrapping, interleaved, disjoint, equal in size', (t) => {
  // torch.utils.data.DistributedSampler(range(10), num_replicas=3, shuffle=False) gives these.
  const order = Int32Array.from({ length: 10 }, (_, i) => i)
  t.deepEqual(
    [0, 1, 2].map((r) => Array.from(shardIndices(order, r, 3))),
    [
      [0, 3, 6, 9],
      [1, 4, 7, 0],
      [2, 5, 8, 1],
    ],
  )
  t.deepEqual(
    [0, 1, 2].map((r) => Array.from(shardIndices(order, r, 3, true))),
    [
      [0, 3, 6],
      [1, 4, 7],
      [2, 5, 8],
    ],
  )
  // Evaluation shares are contiguous and unpadded: together they hold every image once.
  t.deepEqual(
    [0, 1, 2].flatMap((r) => Array.from(evaluationShare(order, r, 3))),
    Array.from(order),
  )
})

test('torchrun’s variables fill the distributed options; a missing one is named', (t) => {
  const env = { MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29500', RANK: '1', WORLD_SIZE: '2', LOCAL_RANK: '1' }
  t.like(resolveDistributed({}, env), {
    rank: 1,
    worldSize: 2,
    localRank: 1,
    masterAddr: '127.0.0.1',
    masterPort: 29500,
    backend: 'gloo',
    timeout: 20,
    glooHostname: '127.0.0.1',
  })
  t.like(resolveDistributed({ rank: 0, timeout: 5 }, env), { rank: 0, timeout: 5 })
  t.throws(() => resolveDistributed({}, { ...env, MASTER_PORT: undefined }), {
    message: /distributed\.masterPort: not given and MASTER_PORT is not set/,
  })
  t.throws(() => resolveDistributed({}, { ...env, RANK: '2' }), {
    message: /distributed\.rank \(from RANK\): expected an integer in 0\.\.1, got "2"/,
  })
  t.deepEqual(withoutFlag(['--epochs', '2', '--nproc-per-node', '2', '--nproc-per-node=3', '--quiet'], 'nproc-per-node'), [
    '--epochs',
    '2',
    '--quiet',
  ])
})

test.serial('2 ranks of batch 32 end with the weights of one process of batch 64, and only rank 0 writes the run', async (t) => {
  const [one, two, other] = [tmp(), tmp(), tmp()]
  fs.rmSync(other, { recursive: true })
  // SGD: its update is linear in the gradient, so summing 2 × 32 per-image gradients instead of 64 changes the weights
  // only by float rounding. (Adam divides by √v, which magnifies that rounding on near-zero gradients to ~1e-5 in one
  // step; the Rust test checks Adam over 3 steps.)
  const base = {
    data: root,
    epochs: 1,
    optimizer: 'sgd',
    lr: 0.01,
    limitTrain: 512,
    limitTest: 200,
    valSplit: 0,
    device: 'cpu',
    seed: 1,
    report: false,
    quiet: true,
  }
  const ranks = await twoRanks({ ...base, batchSize: 32, outByRank: [two, other] })
  const single = await train({ ...base, batchSize: 64, out: one } as Parameters<typeof train>[0])
  const ends = await Promise.all(ranks.map((r) => r.ended))
  ends.forEach((e, rank) => t.is(e.code, 0, ranks[rank]!.err()))
  // 512 images, 8 steps of 64 images in both runs.
  t.is(ranks[0]!.out().match(/^STEP /gm)?.length, 8)
  const reported = JSON.parse(ranks[0]!.out().trim().split('\n').at(-1)!) as {
    result: { distributed: { worldSize: number; steps: number; allreduceSecondsPerStep: number } }
  }
  t.like(reported.result.distributed, { worldSize: 2, steps: 8 })
  t.true(reported.result.distributed.allreduceSecondsPerStep > 0)

  const [a, b] = await Promise.all([
    readSafetensors(path.join(one, 'last.safetensors')),
    readSafetensors(path.join(two, 'last.safetensors')),
  ])
  t.deepEqual(
    b.map((x) => x.name),
    a.map((x) => x.name),
  )
  let worst = 0
  let moved = 0
  for (const [i, tensor] of a.entries()) {
    const x = torchTensorValues(tensor)
    const y = torchTensorValues(b[i]!)
    for (let j = 0; j < x.length; j++) worst = Math.max(worst, Math.abs(Number(x[j]) - Number(y[j])))
  }
  for (const v of torchTensorValues(a.find((x) => x.name === 'fc2.bias')!)) moved = Math.max(moved, Math.abs(Number(v)))
  t.true(worst < 1e-5, `largest difference ${worst}`)
  t.true(moved > 1e-3, 'the steps moved the weights')

  // One history.json, by rank 0, in the single-process shape; metrics over all 512 images, as one process counts.
  t.false(fs.existsSync(other), 'rank 1 wrote nothing')
  const h1 = single.history
  const h2 = JSON.parse(fs.readFileSync(path.join(two, 'history.json'), 'utf8')) as HistoryFile
  t.deepEqual(keysOf(h2), keysOf(h1))
  t.deepEqual({ ...h2.config, batchSize: 64 }, h1.config as Record<string, unknown>)
  const [e1, e2] = [h1.epochs[0]!, h2.epochs[0]!]
  t.is(e2.train.top1, e1.train.top1)
  t.true(Math.abs(e2.train.loss - e1.train.loss) < 1e-5)
  t.deepEqual(e2.test!.confusion, e1.test!.confusion)
  t.true(Math.abs(e2.test!.loss - e1.test!.loss) < 1e-5)
})

test.serial(
  'with syncBatchNorm, 2 ranks of batch 16 end with the weights and batch norm statistics of one process of batch 32',
  async (t) => {
    const [one, two] = [tmp(), tmp()]
    // Batch norms that learn, with and without affine parameters: per-rank statistics (DDP's default) would leave
    // rank 0 with running means and variances of half the batch, and weights trained against them.
    const model = {
      inputShape: [3, 32, 32],
      layers: [
        { type: 'conv2d', outChannels: 8, kernelSize: 3, padding: 1, bias: false },
        { type: 'batchnorm2d' },
        { type: 'relu' },
        { type: 'maxpool2d', kernelSize: 2 },
        { type: 'conv2d', outChannels: 16, kernelSize: 3, stride: 2, padding: 1 },
        { type: 'batchnorm2d', affine: false },
        { type: 'relu' },
        { type: 'adaptiveavgpool2d' },
        { type: 'flatten' },
        { type: 'linear', outFeatures: 10 },
      ],
    }
    const base = {
      data: root,
      model,
      epochs: 1,
      optimizer: 'sgd',
      lr: 0.05,
      momentum: 0.9,
      limitTrain: 256,
      limitTest: 100,
      valSplit: 0,
      device: 'cpu',
      seed: 2,
      report: false,
      quiet: true,
      syncBatchNorm: true,
    }
    const ranks = await twoRanks({ ...base, batchSize: 16, out: two })
    const single = await train({ ...base, batchSize: 32, out: one } as Parameters<typeof train>[0])
    const ends = await Promise.all(ranks.map((r) => r.ended))
    ends.forEach((e, rank) => t.is(e.code, 0, ranks[rank]!.err()))
    const [a, b] = await Promise.all([
      readSafetensors(path.join(one, 'last.safetensors')),
      readSafetensors(path.join(two, 'last.safetensors')),
    ])
    t.deepEqual(
      b.map((x) => x.name),
      a.map((x) => x.name),
    )
    const worst = (name: RegExp): number => {
      let w = 0
      for (const [i, tensor] of a.entries()) {
        if (!name.test(tensor.name)) continue
        const [x, y] = [torchTensorValues(tensor), torchTensorValues(b[i]!)]
        for (let j = 0; j < x.length; j++) w = Math.max(w, Math.abs(Number(x[j]) - Number(y[j])))
      }
      return w
    }
    t.log(
      `largest differences: running statistics ${worst(/running_(mean|var)$/).toExponential(1)}, weights ${worst(/(weight|bias)$/).toExponential(1)}`,
    )
    // Not the 1e-5 of the test above: libtorch's channels_last batch norm statistics (what one process uses too) are
    // accurate to about 3e-6 relative, and 8 SGD steps with momentum grow the two runs' different roundings to ~3e-5.
    // Per-rank statistics differ by ~1e-2 in both (the Rust test checks 1e-5 on the contiguous layout).
    t.true(worst(/running_(mean|var)$/) < 2e-5, `running statistics differ by ${worst(/running_(mean|var)$/)}`)
    t.true(worst(/(weight|bias)$/) < 2e-4, `weights differ by ${worst(/(weight|bias)$/)}`)
    let moved = 0
    for (const v of torchTensorValues(a.find((x) => x.name.endsWith('running_mean'))!)) moved = Math.max(moved, Math.abs(Number(v)))
    t.true(moved > 1e-3, 'the running means moved off zero')
    const history = JSON.parse(fs.readFileSync(path.join(two, 'history.json'), 'utf8')) as HistoryFile
    t.is((history.config as { syncBatchNorm?: boolean }).syncBatchNorm, true)
  },
)

test.serial('a rank killed with SIGKILL makes the other exit with an error naming both, well within 30 s', async (t) => {
  const ranks = await twoRanks({
    data: root,
    epochs: 50,
    batchSize: 16,
    limitTrain: 512,
    limitTest: 100,
    device: 'cpu',
    report: false,
    quiet: true,
    out: tmp(),
  })
  await waitFor(ranks[1]!.out, /^STEP 3$/m)
  const killed = performance.now()
  ranks[1]!.child.kill('SIGKILL')
  const end = await ranks[0]!.ended
  t.is(end.code, 1)
  t.regex(
    ranks[0]!.err(),
    /DistributedError \[DISTRIBUTED_ERROR\]: .*rank 0 of 2: all-reduce of the gradients failed \(lost rank 1: it died or stopped answering\)/,
  )
  t.true(end.at - killed < 30_000, `${end.at - killed} ms`)
  t.log(`rank 0 exited ${(end.at - killed).toFixed(0)} ms after rank 1 was killed`)
})

test.serial('a rank that hangs (SIGSTOP) is an error on the other after the collective timeout', async (t) => {
  const ranks = await twoRanks(
    { data: root, epochs: 50, batchSize: 16, limitTrain: 512, limitTest: 100, device: 'cpu', report: false, quiet: true, out: tmp() },
    { CONVKIT_DIST_TIMEOUT: '5' },
  )
  await waitFor(ranks[1]!.out, /^STEP 3$/m)
  const stopped = performance.now()
  ranks[1]!.child.kill('SIGSTOP')
  const end = await ranks[0]!.ended
  ranks[1]!.child.kill('SIGKILL')
  t.is(end.code, 1)
  t.regex(ranks[0]!.err(), /rank 0 of 2: all-reduce of the gradients failed \(lost rank 1: it died or stopped answering\): .*[Tt]imed out/)
  // The 5 s timeout bounds each receive of the collective, so it ends after about that long.
  t.true(end.at - stopped < 30_000, `${end.at - stopped} ms`)
  t.log(`rank 0 exited ${(end.at - stopped).toFixed(0)} ms after rank 1 stopped`)
})

test.serial('the CLI with --nproc-per-node 2: Ctrl-C stops both ranks, --resume continues, a killed worker is named', async (t) => {
  const out = tmp()
  const args = [
    trainScript,
    '--nproc-per-node',
    '2',
    '--data',
    root,
    '--limit-train',
    '400',
    '--limit-test',
    '100',
    '--batch-size',
    '25',
    '--device',
    'cpu',
  ]
  const first = run([...args, '--epochs', '30', '--out', out], {})
  // The first table row means epoch 1 is done and saved; interrupt during epoch 2.
  await waitFor(first.out, /^\s+1\*? /m)
  first.child.kill('SIGINT')
  const stopped = await first.ended
  t.is(stopped.code, 130, first.err())
  t.regex(first.err(), /resume with: npm run train -- --nproc-per-node 2 --resume /)
  const history = () => JSON.parse(fs.readFileSync(path.join(out, 'history.json'), 'utf8')) as HistoryFile
  const done = history().epochs.length
  t.true(done >= 1)

  const resumed = run([trainScript, '--nproc-per-node', '2', '--resume', out, '--epochs', String(done + 1), '--quiet'], {})
  t.is((await resumed.ended).code, 0, resumed.err())
  t.deepEqual(
    history().epochs.map((e) => e.epoch),
    Array.from({ length: done + 1 }, (_, i) => i + 1),
  )
  t.true(fs.existsSync(path.join(out, 'report.html')))

  const doomed = run([...args, '--epochs', '50', '--out', tmp(), '--no-report'], {})
  await waitFor(doomed.err, /rank 1: pid (\d+)/)
  const pid = Number(/rank 1: pid (\d+)/.exec(doomed.err())![1])
  await waitFor(doomed.out, /^\s+1\*? /m)
  const killed = performance.now()
  process.kill(pid, 'SIGKILL')
  const end = await doomed.ended
  t.is(end.code, 1)
  t.regex(doomed.err(), new RegExp(`convkit: rank 1 \\(pid ${pid}\\) was killed by SIGKILL; the run failed`))
  t.regex(doomed.err(), /rank 0 of 2: .* failed \(lost rank 1/)
  t.true(end.at - killed < 30_000, `${end.at - killed} ms`)
  t.log(`the launcher exited ${(end.at - killed).toFixed(0)} ms after rank 1 was killed`)
})

test.serial('2 ranks stream disjoint shards in step: the same number of steps each, one history of both', async (t) => {
  const shards = await writeShards(path.join(root, 'train'), path.join(tmp(), 'train-%06d.tar'), { perShard: 250, seed: 2, quiet: true })
  const out = tmp()
  // 8 shards of 250: each rank streams 4 of them an epoch (a different 4 each epoch), 32 batches of 32.
  const ranks = await twoRanks({
    data: shards.pattern,
    stream: 'always',
    testData: path.join(root, 'test'),
    valSplit: 0,
    limitTest: 200,
    epochs: 2,
    batchSize: 32,
    device: 'cpu',
    seed: 3,
    report: false,
    quiet: true,
    out,
  })
  const ends = await Promise.all(ranks.map((r) => r.ended))
  ends.forEach((e, rank) => t.is(e.code, 0, ranks[rank]!.err()))
  t.deepEqual(
    ranks.map((r) => r.out().match(/^STEP /gm)?.length),
    [64, 64],
  )
  const history = JSON.parse(fs.readFileSync(path.join(out, 'history.json'), 'utf8')) as HistoryFile
  t.deepEqual(
    history.epochs.map((e) => e.epoch),
    [1, 2],
  )
  t.true(history.epochs[1]!.train.loss < history.epochs[0]!.train.loss, 'the second epoch trained to a lower loss')
  t.true(history.epochs[1]!.test!.top1 > 20, `test top-1 ${history.epochs[1]!.test!.top1}% (chance 10 %)`)
})
