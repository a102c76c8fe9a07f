// train() and the train CLI on real CIFAR-10 images: the run directory's schema, resume, SIGINT, divergence.
import test from 'ava'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { EarlyStopping, InputError, Model, TensorDataset, TrainableSchedule, readImageFolder, referenceCnn, train } from '../ts/index.ts'
import type { Callback, HistoryFile, StepResult } from '../ts/index.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const dirs = cifarSubset()
const root = path.dirname(dirs.train)
const sets = Promise.all([readImageFolder(dirs.train), readImageFolder(dirs.test)])
const tmp = tempDirs('run')

test('a short run writes history.json in the documented shape, the best checkpoint and last, and learns', async (t) => {
  const [trainSet, testSet] = await sets
  const out = tmp()
  const result = await train({ data: { train: trainSet, test: testSet }, epochs: 6, device: 'cpu', out, quiet: true, seed: 3 })
  t.false(fs.existsSync(path.join(out, '.early-stopping-best.safetensors')))
  const history = JSON.parse(fs.readFileSync(path.join(out, 'history.json'), 'utf8')) as HistoryFile
  t.deepEqual(history.classes, trainSet.classes)
  t.is(history.config.batchSize, 128)
  t.is(history.config.monitor, 'val_loss')
  t.is(history.epochs.length, 6)
  const e = history.epochs[5]!
  t.deepEqual(Object.keys(e).sort(), ['epoch', 'imagesPerSecond', 'lr', 'seconds', 'test', 'train', 'val'])
  t.deepEqual(Object.keys(e.train).sort(), ['balancedAccuracy', 'classMetrics', 'loss', 'lossSum', 'macroF1', 'perClass', 'top1', 'top5'])
  t.deepEqual(Object.keys(e.test!).sort(), [
    'balancedAccuracy',
    'classMetrics',
    'confusion',
    'loss',
    'lossSum',
    'macroF1',
    'perClass',
    'top1',
    'top5',
  ])
  t.deepEqual(Object.keys(e.test!.perClass), trainSet.classes)
  t.is(
    e.test!.confusion!.flat().reduce((a, b) => a + b, 0),
    1000,
  )
  // 10 % of 2 000 training images are held out for validation.
  t.is(Math.round(e.val!.lossSum / e.val!.loss), 200)
  t.truthy(history.best)
  t.regex(history.best!.checkpoint, /^epoch_\d+_accuracy_\d+\.\d\d\.safetensors$/)
  t.true(fs.existsSync(path.join(out, history.best!.checkpoint)))
  for (const f of [
    'history.csv',
    'last.safetensors',
    'last.optim.safetensors',
    'samples.png',
    'report.html',
    'plots/top1.png',
    'plots/confusion.svg',
  ]) {
    t.true(fs.existsSync(path.join(out, f)), f)
  }
  t.is(fs.readFileSync(path.join(out, 'history.csv'), 'utf8').trim().split('\n').length, 7)
  t.false(result.stoppedEarly)

  t.true(e.train.loss < history.epochs[0]!.train.loss * 0.8, 'training loss fell')
  // Chance is 10 %; six epochs on 1 800 images reach about 40 %.
  t.true(e.test!.top1 > 35, `test top-1 ${e.test!.top1}`)
  const best = await Model.load(path.join(out, history.best!.checkpoint), { device: 'cpu' })
  const testData = await TensorDataset.create(testSet, { device: 'cpu' })
  const again = await best.evaluate(testData)
  t.is(again.top1, history.epochs[history.best!.epoch - 1]!.test!.top1)
})

test('resuming after k epochs gives the same weights as an uninterrupted run, in bf16 with augmentation', async (t) => {
  const [trainSet, testSet] = await sets
  const base = {
    data: { train: trainSet, test: testSet },
    device: 'cpu' as const,
    quiet: true,
    seed: 11,
    limitTrain: 600,
    limitTest: 200,
    augment: true,
    precision: 'bf16' as const,
    report: false,
  }
  const straight = tmp()
  await train({ ...base, epochs: 3, out: straight })
  const split = tmp()
  await train({ ...base, epochs: 1, out: split })
  const resumed = await train({ ...base, resume: split, epochs: 3 })
  t.is(resumed.history.epochs.length, 3)
  const a = JSON.parse(fs.readFileSync(path.join(straight, 'history.json'), 'utf8')) as HistoryFile
  const b = JSON.parse(fs.readFileSync(path.join(split, 'history.json'), 'utf8')) as HistoryFile
  t.is(b.config.precision, 'bf16')
  t.deepEqual(
    b.epochs.map((e) => e.test!.lossSum),
    a.epochs.map((e) => e.test!.lossSum),
  )
  const data = await TensorDataset.create(testSet, { device: 'cpu' })
  const [ma, mb] = await Promise.all([
    Model.load(path.join(straight, 'last.safetensors'), { device: 'cpu' }),
    Model.load(path.join(split, 'last.safetensors'), { device: 'cpu' }),
  ])
  t.is((await mb.evaluate(data)).lossSum, (await ma.evaluate(data)).lossSum)
  t.is(mb.optimizerStep, ma.optimizerStep)
})

test('a diverging run stops with a reason', async (t) => {
  const [trainSet, testSet] = await sets
  const result = await train({
    data: { train: trainSet, test: testSet },
    optimizer: 'sgd',
    lr: 1e12,
    epochs: 5,
    device: 'cpu',
    out: tmp(),
    quiet: true,
    limitTrain: 512,
    limitTest: 100,
  })
  t.true(result.stoppedEarly)
  t.regex(result.stopReason!, /(train_loss|val_loss) is (NaN|Infinity) at epoch 1: training diverged/)
  t.is(result.history.epochs.length, 1)
})

test('bad options fail before any work starts, naming the option', async (t) => {
  const [trainSet] = await sets
  await t.throwsAsync(train({ data: { train: trainSet }, monitor: 'val_acc', out: tmp() }), {
    instanceOf: InputError,
    message: /val_acc.*val_loss/,
  })
  await t.throwsAsync(train({ data: { train: trainSet }, epochs: 0, out: tmp() }), { instanceOf: InputError, message: /epochs/ })
  await t.throwsAsync(train({ data: { train: trainSet }, precision: 'fp16' as never, out: tmp() }), {
    instanceOf: InputError,
    message: /precision.*'fp32', 'bf16' or 'auto'/,
  })
  await t.throwsAsync(train({ data: { train: trainSet }, valSplit: 0, monitor: 'val_loss', out: tmp() }), {
    instanceOf: InputError,
    message: /test_loss/,
  })
})

test('the CLI stops cleanly on SIGINT, says how to resume, and --resume continues at the next epoch', async (t) => {
  const out = tmp()
  const args = [
    '--import=tsx',
    path.join(repo, 'scripts', 'train.ts'),
    '--data',
    root,
    '--limit-train',
    '1000',
    '--limit-test',
    '200',
    '--epochs',
    '30',
    '--device',
    'cpu',
    '--out',
    out,
  ]
  const child = spawn(process.execPath, args, { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const code = await new Promise<number | null>((resolve) => {
    child.stdout.on('data', (d) => {
      stdout += d
      // The first table row means epoch 1 is done; interrupt during epoch 2.
      if (/^\s+1\*? /m.test(stdout) && !child.killed) child.kill('SIGINT')
    })
    child.on('exit', (c) => resolve(c))
  })
  t.is(code, 130, stderr)
  t.regex(stderr, /resume with: npm run train -- --resume /)
  const history = JSON.parse(fs.readFileSync(path.join(out, 'history.json'), 'utf8')) as HistoryFile
  const done = history.epochs.length
  t.true(done >= 1)
  t.true(fs.existsSync(path.join(out, 'last.safetensors')))

  const resume = spawn(
    process.execPath,
    ['--import=tsx', path.join(repo, 'scripts', 'train.ts'), '--resume', out, '--epochs', String(done + 1), '--quiet'],
    { cwd: repo, stdio: 'ignore' },
  )
  t.is(await new Promise((resolve) => resume.on('exit', resolve)), 0)
  const after = JSON.parse(fs.readFileSync(path.join(out, 'history.json'), 'utf8')) as HistoryFile
  t.deepEqual(
    after.epochs.map((e) => e.epoch),
    Array.from({ length: done + 1 }, (_, i) => i + 1),
  )
})

test('a resumed run is checked like a new one: old runs get defaults, unknown fields and changed settings are errors', async (t) => {
  const [trainSet, testSet] = await sets
  const base = {
    data: { train: trainSet, test: testSet },
    device: 'cpu' as const,
    quiet: true,
    seed: 5,
    limitTrain: 300,
    limitTest: 100,
    report: false,
  }
  const out = tmp()
  await train({ ...base, epochs: 1, out })
  const file = path.join(out, 'history.json')
  const written = JSON.parse(fs.readFileSync(file, 'utf8')) as HistoryFile
  // Each epoch is stored once: resume state holds the callbacks' own state, not the epochs again.
  t.deepEqual(Object.keys(written.resume ?? {}).sort(), ['checkpoint', 'earlyStopping'])

  // A run written before `labelSmoothing` and `schedule` existed resumes with their defaults, and says so.
  const old = { ...written, config: { ...written.config } }
  delete old.config.labelSmoothing
  delete old.config.schedule
  fs.writeFileSync(file, JSON.stringify(old))
  const lines: string[] = []
  const log = console.log
  console.log = (line: string) => lines.push(line)
  try {
    await train({ ...base, quiet: false, resume: out, epochs: 2 })
  } finally {
    console.log = log
  }
  t.true(
    lines.some((l) => /written before labelSmoothing, schedule existed/.test(l)),
    lines.join('\n'),
  )
  const after = JSON.parse(fs.readFileSync(file, 'utf8')) as HistoryFile
  t.is(after.epochs.length, 2)
  t.is(after.config.labelSmoothing, 0)

  await t.throwsAsync(train({ ...base, resume: out, epochs: 3, batchSize: 64 }), {
    instanceOf: InputError,
    message: /option batchSize: the run in .* was made with 128; a resumed run keeps it \(got 64\)/,
  })
  fs.writeFileSync(file, JSON.stringify({ ...after, config: { ...after.config, warpDrive: true } }))
  await t.throwsAsync(train({ ...base, resume: out, epochs: 3 }), { instanceOf: InputError, message: /config field\(s\) warpDrive/ })
})

test('callbacks are reset when a run starts, so one instance serves two runs', async (t) => {
  const [trainSet, testSet] = await sets
  const stopper = new EarlyStopping({ monitor: 'val_loss', patience: 1 })
  const run = () =>
    train({
      data: { train: trainSet, test: testSet },
      device: 'cpu',
      quiet: true,
      seed: 2,
      limitTrain: 200,
      limitTest: 50,
      epochs: 2,
      report: false,
      out: tmp(),
      callbacks: [stopper],
    })
  const first = await run()
  const second = await run()
  // Without the reset, the second run would compare its first loss with the first run's best (a later, lower one),
  // see no improvement and stop after one epoch; with it, the seeded second run repeats the first exactly.
  t.false(first.stoppedEarly)
  t.is(second.history.epochs.length, first.history.epochs.length)
  t.false(second.stoppedEarly)
  t.deepEqual(
    second.history.epochs.map((e) => e.val!.loss),
    first.history.epochs.map((e) => e.val!.loss),
  )
})

test('a schedule sets the rate per batch, and the epoch records the last one', async (t) => {
  const [trainSet, testSet] = await sets
  const rates: number[] = []
  const result = await train({
    data: { train: trainSet, test: testSet },
    device: 'cpu',
    quiet: true,
    report: false,
    out: tmp(),
    limitTrain: 256,
    limitTest: 50,
    valSplit: 0,
    batchSize: 64,
    epochs: 2,
    lr: 0.01,
    schedule: 'linear',
    warmup: 0.25,
    onBatchEnd: (_b: number, step: StepResult) => void rates.push(step.lr),
  })
  // 4 batches × 2 epochs = 8 steps: warmup over the first 25 % of progress, then linear to 0.
  t.is(rates.length, 8)
  t.is(rates[0], 0)
  t.true(Math.abs(rates[2]! - 0.01 * (1 - (2 / 7 - 0.25) / 0.75)) < 1e-12, String(rates))
  t.is(rates[7], 0)
  t.is(result.history.epochs[1]!.lr, 0)
})

test('a recipe supplies options the given ones override; trainable spans keep parameters frozen outside them', async (t) => {
  const [trainSet, testSet] = await sets
  const out = tmp()
  const result = await train({
    data: { train: trainSet, test: testSet },
    recipe: 'airbench94',
    // Given options win over the recipe's.
    batchSize: 100,
    epochs: 2,
    limitTrain: 300,
    limitTest: 100,
    whiten: 200,
    device: 'cpu',
    quiet: true,
    report: false,
    out,
  })
  const config = result.history.config
  t.is(config.optimizer, 'sgd')
  t.is(config.batchSize, 100)
  t.is(config.labelSmoothing, 0.2)
  t.is(config.lossReduction, 'sum')
  t.is(config.averaging, 'lookahead')
  t.true(Math.abs((config.lr as number) - 11.5 / (1024 * (1 + 1 / 0.15))) < 1e-12)
  t.is(result.history.epochs.length, 2)
  // dropLast: 300 images in batches of 100 (no validation split) make 3 full batches per epoch.
  t.is(result.model.optimizerStep, 6)
  await t.throwsAsync(train({ data: { train: trainSet }, recipe: 'airbench95' as never, out: tmp() }), {
    instanceOf: InputError,
    message: /option recipe: expected 'none', 'airbench94' or 'finetune'/,
  })

  // The whitening filters never train: they keep whitening's structure, the second 12 the negations of the first.
  const { readSafetensors } = await import('../ts/weights/safetensors-file.ts')
  const weights = async (file: string, name: string) => (await readSafetensors(file)).find((x) => x.name === name)!.data
  const last = path.join(out, 'last.safetensors')
  const frozen = await weights(last, 'whiten.weight')
  const spans = tmp()
  await train({
    data: { train: trainSet, test: testSet },
    limitTrain: 200,
    limitTest: 50,
    epochs: 1,
    device: 'cpu',
    quiet: true,
    report: false,
    out: spans,
    seed: 4,
    trainableSpans: [
      { names: 'conv1.*', until: 0 },
      { names: 'fc2.*', from: 2 },
    ],
  })
  const initial = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', seed: 4 })
  const start = path.join(tmp(), 'start.safetensors')
  await initial.save(start, { withOptimizer: false })
  for (const name of ['conv1.weight', 'conv1.bias', 'fc2.weight'])
    t.deepEqual(await weights(path.join(spans, 'last.safetensors'), name), await weights(start, name), `${name} stayed frozen`)
  t.notDeepEqual(await weights(path.join(spans, 'last.safetensors'), 'conv2.weight'), await weights(start, 'conv2.weight'))
  const w = new Float32Array(frozen.slice().buffer)
  const half = 12 * 3 * 2 * 2
  t.true(w.slice(0, half).some((v) => v !== 0))
  t.deepEqual(
    Array.from(w.slice(half)),
    Array.from(w.slice(0, half), (v) => -v),
  )
})

test("the built-in callbacks are the public ones: a user's TrainableSchedule freezes the body as freezeEpochs does, and a user's callback sees each phase", async (t) => {
  const [trainSet, testSet] = await sets
  const options = {
    data: { train: trainSet, test: testSet },
    device: 'cpu' as const,
    quiet: true,
    seed: 4,
    limitTrain: 256,
    limitTest: 50,
    batchSize: 64,
    epochs: 2,
    report: false,
  }
  const builtIn = await train({ ...options, out: tmp(), freezeEpochs: 1 })
  const seen: string[] = []
  const trainable: number[] = []
  const spy: Callback = {
    onTrainBegin: (ctx) => {
      seen.push(`begin ${ctx.epochs} epochs, ${ctx.totalSteps} steps, resumed ${ctx.resumed}`)
    },
    onEpochBegin: (epoch, ctx) => {
      seen.push(`epoch ${epoch}/${ctx.epochs}: ${ctx.batches} batches`)
      trainable.push(ctx.model.trainableParamCount)
    },
    onEpochEnd: (record, _logs, ctx) => {
      seen.push(`end ${record.epoch}: ${ctx.history().epochs.length} in history`)
    },
    onTrainEnd: (ctx) => {
      seen.push(`done: ${ctx.history().epochs.length} epochs, interrupted ${ctx.interrupted}`)
    },
  }
  // The spy runs after the schedule (user callbacks follow the built-in steering ones), so it sees what it set.
  const mine = await train({ ...options, out: tmp(), freezeEpochs: 0, callbacks: [new TrainableSchedule({ freezeEpochs: 1 }), spy] })
  t.deepEqual(seen, [
    'begin 2 epochs, 8 steps, resumed false',
    'epoch 1/2: 4 batches',
    'end 1: 1 in history',
    'epoch 2/2: 4 batches',
    'end 2: 2 in history',
    'done: 2 epochs, interrupted false',
  ])
  // Epoch 1 trains the classifier alone (512 × 10 weights + 10 biases), epoch 2 everything.
  t.is(trainable[0], 5130)
  t.is(trainable[1], mine.model.paramCount)
  t.deepEqual(
    mine.history.epochs.map((e) => e.train.loss),
    builtIn.history.epochs.map((e) => e.train.loss),
  )
})
