// The learning-rate finder: the sweep's arithmetic, findLearningRate() and `lr: 'find'` on real CIFAR-10 images, the
// model left bit for bit as it was, and `convkit lr-find`.
import test from 'ava'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  InputError,
  Model,
  SmoothedLoss,
  TensorDataset,
  findLearningRate,
  readImageFolder,
  referenceCnn,
  suggestLearningRate,
  sweepLearningRate,
  sweepRates,
  train,
} from '../ts/index.ts'
import type { HistoryFile, LrSweep } from '../ts/index.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const dirs = cifarSubset()
const sets = Promise.all([readImageFolder(dirs.train), readImageFolder(dirs.test)])
const tmp = tempDirs('lr-find')
/** Small and fast: 600 training images in batches of 32 on the CPU, 100 test images. */
const quick = { device: 'cpu', precision: 'fp32', batchSize: 32, limitTrain: 600, limitTest: 100, quiet: true } as const

async function data() {
  const [trainSet, testSet] = await sets
  return { train: trainSet, test: testSet }
}

/** Each tensor's bytes and the header's metadata of a safetensors file, by name. */
function safetensors(file: string): { tensors: Map<string, Buffer>; metadata: unknown } {
  const bytes = fs.readFileSync(file)
  const headerLength = Number(bytes.readBigUInt64LE(0))
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { data_offsets: [number, number] }>
  const body = bytes.subarray(8 + headerLength)
  const tensors = new Map<string, Buffer>()
  for (const [name, entry] of Object.entries(header)) {
    if (name !== '__metadata__') tensors.set(name, body.subarray(entry.data_offsets[0], entry.data_offsets[1]))
  }
  return { tensors, metadata: header.__metadata__ }
}

function sameTensors(t: import('ava').ExecutionContext, a: string, b: string): void {
  const x = safetensors(a)
  const y = safetensors(b)
  t.deepEqual([...x.tensors.keys()].sort(), [...y.tensors.keys()].sort(), path.basename(a))
  const differing = [...x.tensors].filter(([name, bytes]) => !bytes.equals(y.tensors.get(name)!)).map(([name]) => name)
  t.deepEqual(differing, [], `${path.basename(a)}: tensors that differ`)
}

test('the rates grow exponentially from the first to the last', (t) => {
  const rates = sweepRates(1e-7, 10, 9)
  t.is(rates[0], 1e-7)
  t.true(Math.abs(rates[8]! / 10 - 1) < 1e-12)
  for (let i = 1; i < rates.length; i++) t.true(Math.abs(rates[i]! / rates[i - 1]! / 10 - 1) < 1e-9)
})

test('the smoothed loss is a bias-corrected moving average', (t) => {
  const s = new SmoothedLoss()
  // Bias correction: the first value is the loss itself, not 2 % of it; a constant stays constant.
  t.true(Math.abs(s.add(2) - 2) < 1e-12)
  for (let i = 0; i < 20; i++) t.true(Math.abs(s.add(2) - 2) < 1e-12)
  t.is(s.divergence(2), null)
  t.regex(s.divergence(8.5)!, /over 4× the best/)
  t.regex(s.divergence(Number.NaN)!, /not finite/)
})

test('the suggestion is a tenth of the rate where the smoothed loss is lowest', (t) => {
  // A flat start, a long descent (with a bump of noise), then a climb: fastai's picture of a range test.
  const rates = sweepRates(1e-6, 1, 100)
  const curve = rates.map((_, i) => (i < 20 ? 2.3 : i < 70 ? 2.3 - (i - 20) * 0.02 + (i === 40 ? 0.05 : 0) : 1.35 + (i - 70) * 0.1))
  const s = suggestLearningRate(rates, curve)
  t.is(s.rule, 'minimum')
  // The lowest point is the foot of the descent (69); a tenth of its rate is 16.5 batches back (10 ** (6 / 99) a batch).
  t.is(s.minimum, 69)
  t.true(Math.abs(s.lr / (rates[69]! / 10) - 1) < 1e-12)
  t.true(s.index === 52 || s.index === 53, `marked at ${s.index}`)
  t.regex(s.reason, /^minimum: a tenth of 1\.5e-2/)
  // A NaN ends the curve the rule reads.
  const broken = suggestLearningRate(rates, [...curve.slice(0, 50), Number.NaN, ...curve.slice(51)])
  t.is(broken.minimum, 49)
  // A loss that only rose: the first rate, not a tenth of it.
  const rising = suggestLearningRate(
    rates,
    curve.map((_, i) => 2 + i),
  )
  t.is(rising.lr, rates[0]!)
  t.regex(rising.reason, /never fell/)
  const none = suggestLearningRate([], [])
  t.is(none.rule, 'none')
  t.true(Number.isNaN(none.lr))
})

test('findLearningRate sweeps the rates, records the losses and suggests a rate on the descending part', async (t) => {
  const out = tmp()
  const sweep = await findLearningRate({ data: await data(), ...quick, startLr: 1e-6, endLr: 10, steps: 48, out, seed: 1 })
  const n = sweep.rates.length
  t.true(n > 10 && n <= 48)
  t.is(sweep.losses.length, n)
  t.is(sweep.smoothed.length, n)
  t.is(sweep.rates[0], 1e-6)
  const factor = (10 / 1e-6) ** (1 / 47)
  for (let i = 1; i < n; i++) t.true(Math.abs(sweep.rates[i]! / sweep.rates[i - 1]! / factor - 1) < 1e-9)
  // A fresh ten-class network starts at about chance's loss, ln 10 = 2.30.
  t.true(Math.abs(sweep.losses[0]! - Math.log(10)) < 0.3, `first loss ${sweep.losses[0]}`)
  const { lr, index, minimum } = sweep.suggestion
  t.true(lr > 1e-6 && lr < 10, `suggested ${lr}`)
  // A tenth of the rate at the smoothed loss's lowest point, marked at the batch nearest it, before that point.
  const lowest = sweep.smoothed.indexOf(Math.min(...sweep.smoothed))
  t.is(minimum, lowest)
  t.true(Math.abs(lr / (sweep.rates[lowest]! / 10) - 1) < 1e-12)
  t.true(Math.abs(Math.log(sweep.rates[index]! / lr)) <= Math.log(factor) / 2 + 1e-9)
  t.true(index < lowest, `suggestion at ${index}, lowest smoothed loss at ${lowest}`)
  t.true(sweep.smoothed[index]! <= sweep.smoothed[0]! + 0.01)
  t.is(sweep.trainableParams, sweep.paramCount)

  const written = JSON.parse(fs.readFileSync(path.join(out, 'lr-find.json'), 'utf8')) as LrSweep
  t.deepEqual(written.rates, sweep.rates)
  t.deepEqual(written.losses, sweep.losses)
  t.deepEqual(written.smoothed, sweep.smoothed)
  t.deepEqual(written.suggestion, sweep.suggestion)
  t.is(sweep.files.json, path.join(out, 'lr-find.json'))
  t.deepEqual([...fs.readFileSync(path.join(out, 'lr-find.png')).subarray(1, 4)], [...Buffer.from('PNG')])
  t.regex(fs.readFileSync(path.join(out, 'lr-find.svg'), 'utf8'), /^<svg[\s\S]*suggested/)
})

test('the sweep stops once the smoothed loss diverges', async (t) => {
  // SGD at rates up to 100 blows the loss up well before the last batch.
  const sweep = await findLearningRate({ data: await data(), ...quick, optimizer: 'sgd', startLr: 1e-4, endLr: 100, steps: 40, out: tmp() })
  t.true(sweep.stoppedEarly)
  t.true(sweep.rates.length < 40, `${sweep.rates.length} batches`)
  t.regex(sweep.stopReason!, /over 4× the best|not finite/)
  const last = sweep.smoothed.at(-1)!
  t.true(!Number.isFinite(last) || last > 4 * Math.min(...sweep.smoothed.slice(0, -1)))
  t.true(sweep.suggestion.lr < sweep.rates.at(-1)!)
})

test('the sweep trains a copy: the model keeps its weights and optimizer state bit for bit', async (t) => {
  const { train: set } = await data()
  const dataset = await TensorDataset.create(set, { device: 'cpu' })
  const model = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', seed: 5, optimizer: { type: 'sgd', lr: 0.01, momentum: 0.9 } })
  // A few steps first, so that there is momentum to keep.
  for (let b = 0; b < 3; b++)
    await model.trainBatch(
      dataset,
      Array.from({ length: 32 }, (_, i) => b * 32 + i),
    )
  const dir = tmp()
  await model.save(path.join(dir, 'before.safetensors'))
  const steps = model.optimizerStep
  const sweep = await sweepLearningRate(model, dataset, { batchSize: 32, steps: 12, startLr: 1e-3, endLr: 1, quiet: true })
  t.is(sweep.rates.length, 12)
  await model.save(path.join(dir, 'after.safetensors'))
  sameTensors(t, path.join(dir, 'before.safetensors'), path.join(dir, 'after.safetensors'))
  sameTensors(t, path.join(dir, 'before.optim.safetensors'), path.join(dir, 'after.optim.safetensors'))
  t.is(model.optimizerStep, steps)
  t.is(model.learningRate, 0.01)
})

test("lr: 'find' picks the rate, records it, trains at it, and a resumed run keeps it", async (t) => {
  const base = { data: await data(), ...quick, epochs: 1, seed: 4, report: false }
  const found = tmp()
  const result = await train({ ...base, lr: 'find', lrFind: { startLr: 1e-5, steps: 24 }, out: found })
  const history = JSON.parse(fs.readFileSync(path.join(found, 'history.json'), 'utf8')) as HistoryFile
  const lr = history.chosen!.lr!
  t.is(history.config.lr, 'find')
  t.deepEqual(history.config.lrFind, { startLr: 1e-5, endLr: 10, steps: 24 })
  t.regex(history.chosen!.lrReason!, /^minimum: .* a sweep of 1e-5–10 over 24 batches/)
  const sweep = JSON.parse(fs.readFileSync(path.join(found, 'lr-find.json'), 'utf8')) as LrSweep
  t.is(sweep.suggestion.lr, lr)
  t.true(lr > 1e-5 && lr < 10)
  t.is(result.history.epochs[0]!.lr, lr)

  // The same run at that rate, given: the same weights bit for bit, so the sweep left the model (and the optimizer)
  // exactly as the run prepared it.
  const given = tmp()
  await train({ ...base, lr, out: given })
  sameTensors(t, path.join(found, 'last.safetensors'), path.join(given, 'last.safetensors'))
  sameTensors(t, path.join(found, 'last.optim.safetensors'), path.join(given, 'last.optim.safetensors'))

  const swept = fs.statSync(path.join(found, 'lr-find.json')).mtimeMs
  const resumed = await train({ data: base.data, resume: found, epochs: 2, quiet: true, report: false })
  t.is(resumed.history.chosen!.lr, lr)
  t.is(resumed.history.epochs[1]!.lr, lr)
  t.is(fs.statSync(path.join(found, 'lr-find.json')).mtimeMs, swept, 'no second sweep')
})

test('a fine-tuning run sweeps in the state its last epoch trains in', async (t) => {
  // One epoch with the body frozen: the classifier alone, fc2 of the reference CNN (512 × 10 weights and 10 biases).
  const frozen = await findLearningRate({ data: await data(), ...quick, freezeEpochs: 1, epochs: 1, steps: 8, out: tmp() })
  t.is(frozen.trainableParams, 5130)
  t.true(frozen.paramCount > 2_000_000)
  // Three epochs: the body trains from epoch 2 on, and so in the sweep.
  const unfrozen = await findLearningRate({ data: await data(), ...quick, freezeEpochs: 1, epochs: 3, steps: 8, out: tmp() })
  t.is(unfrozen.trainableParams, unfrozen.paramCount)
})

test('bad sweep options are InputErrors naming the option, before any data is read', async (t) => {
  const data = 'no-such-folder'
  const startAbove = await t.throwsAsync(findLearningRate({ data, startLr: 1, endLr: 0.1 }), { instanceOf: InputError })
  t.regex(startAbove.message, /option startLr: expected a rate below endLr/)
  const noSteps = await t.throwsAsync(findLearningRate({ data, steps: 0 }), { instanceOf: InputError })
  t.regex(noSteps.message, /option steps: expected an integer >= 2, got 0/)
  const nested = await t.throwsAsync(train({ data, lr: 'find', lrFind: { steps: 0 } }), { instanceOf: InputError })
  t.regex(nested.message, /option lrFind\.steps: /)
  const given = await t.throwsAsync(findLearningRate({ data, lr: 0.1 }), { instanceOf: InputError })
  t.regex(given.message, /option lr: findLearningRate sweeps the rate itself/)
  const typo = await t.throwsAsync(train({ data, lr: 'fnd' as 'find' }), { instanceOf: InputError })
  t.regex(typo.message, /option lr: expected a number > 0 or 'find'/)
})

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [path.join(repo, 'bin', 'convkit.js'), ...args], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })))
}

test('convkit lr-find --help lists the sweep flags beside the data and model ones', async (t) => {
  const { code, stdout } = await cli(['lr-find', '--help'])
  t.is(code, 0)
  for (const flag of ['--data', '--model', '--batch-size', '--start-lr', '--end-lr', '--steps', '--out'])
    t.true(stdout.includes(flag), flag)
  t.false(stdout.includes('--epochs'), 'no flags the sweep ignores')
})

test('convkit lr-find --quiet prints the suggested rate and writes the sweep', async (t) => {
  const out = tmp()
  const args = ['lr-find', '--data', path.dirname(dirs.train), '--limit-train', '320', '--limit-test', '50', '--batch-size', '32']
  const { code, stdout, stderr } = await cli([
    ...args,
    ...['--steps', '12', '--device', 'cpu', '--precision', 'fp32', '--cache-dir', tmp(), '--out', out, '--quiet'],
  ])
  t.is(code, 0, stderr)
  const lr = Number(stdout.trim())
  t.true(lr >= 1e-7 && lr <= 10, stdout)
  const sweep = JSON.parse(fs.readFileSync(path.join(out, 'lr-find.json'), 'utf8')) as LrSweep
  t.is(sweep.suggestion.lr, lr)
  t.true(fs.existsSync(path.join(out, 'lr-find.png')))
})
