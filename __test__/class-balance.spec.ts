// Unbalanced classes: per-class precision, recall and F1, macro-F1 and balanced accuracy; class counts; class
// weights of the loss (checked against PyTorch's weighted, smoothed cross-entropy); the balanced sampler.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  InputError,
  Model,
  RunningMetrics,
  TRAIN_OPTIONS,
  balancedAccuracy,
  balancedOrder,
  classCounts,
  classMetrics,
  confusionTotals,
  epochOrder,
  macroF1,
  metricsFromCounts,
  readImageFolder,
  referenceCnn,
  resolveClassWeights,
  train,
  type HistoryFile,
  type ImageSet,
  type LossOptions,
} from '../ts/index.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { logged } from './helpers/logged.ts'
import { needs } from './helpers/needs.ts'
import { missingPython, pythonWithTorch } from './helpers/python-torch.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const tmp = tempDirs('balance')
const near = (a: number, b: number, eps = 1e-9) => Math.abs(a - b) < eps

/**
 * `[true][predicted]` image counts. Class c has no images but is predicted once; class e has two images, both
 * predicted as a, and is never predicted. By hand, precision = diagonal / column sum and recall = diagonal / row sum:
 * a 8/12 and 8/10; b 3/5 and 3/5; c 0/1 and undefined; d 4/4 and 4/5; e none predicted (0) and 0/2.
 */
const CONFUSION = [
  [8, 2, 0, 0, 0],
  [1, 3, 1, 0, 0],
  [0, 0, 0, 0, 0],
  [1, 0, 0, 4, 0],
  [2, 0, 0, 0, 0],
]
const NAMES = ['a', 'b', 'c', 'd', 'e']

test('per-class precision, recall and F1, macro-F1 and balanced accuracy match a hand-computed confusion matrix', (t) => {
  const rows = classMetrics(confusionTotals(CONFUSION))
  const want = [
    { count: 10, precision: (100 * 8) / 12, recall: 80 },
    { count: 5, precision: 60, recall: 60 },
    { count: 0, precision: 0, recall: Number.NaN },
    { count: 5, precision: 100, recall: 80 },
    { count: 2, precision: 0, recall: 0 },
  ]
  rows.forEach((r, i) => {
    t.is(r.count, want[i]!.count, NAMES[i])
    t.true(near(r.precision, want[i]!.precision), `${NAMES[i]} precision ${r.precision}`)
    t.true(Object.is(r.recall, want[i]!.recall) || near(r.recall, want[i]!.recall), `${NAMES[i]} recall ${r.recall}`)
  })
  const f1a = (2 * ((100 * 8) / 12) * 80) / ((100 * 8) / 12 + 80)
  const f1d = (2 * 100 * 80) / 180
  t.true(near(rows[0]!.f1, f1a))
  t.true(Number.isNaN(rows[2]!.f1), 'a class without images has no F1')
  t.is(rows[4]!.f1, 0)
  // Averages over the four classes that have images; c, which has none, says nothing.
  t.true(near(balancedAccuracy(rows), (80 + 60 + 80 + 0) / 4))
  t.true(near(macroF1(rows), (f1a + 60 + f1d + 0) / 4))

  // The evaluation's path (counts from the addon) and the running train metrics' path (steps) give the same.
  const flat = CONFUSION.flat()
  const total = flat.reduce((a, b) => a + b, 0)
  const correct = CONFUSION.reduce((a, row, i) => a + row[i]!, 0)
  const evaluated = metricsFromCounts(
    { count: total, lossSum: total, top1Correct: correct, top5Correct: total, confusion: flat, classes: 5 },
    NAMES,
  )
  const running = new RunningMetrics(NAMES)
  const labels: number[] = []
  const predicted: number[] = []
  CONFUSION.forEach((row, y) =>
    row.forEach((n, p) => {
      for (let j = 0; j < n; j++) labels.push(y), predicted.push(p)
    }),
  )
  running.add({ loss: 1, correct, top5Correct: total, count: total, predicted: Int32Array.from(predicted) }, labels)
  for (const m of [evaluated, running.metrics()]) {
    t.true(near(m.balancedAccuracy!, balancedAccuracy(rows)))
    t.true(near(m.macroF1!, macroF1(rows)))
    t.deepEqual(Object.keys(m.classMetrics!), NAMES)
    t.true(near(m.classMetrics!.d!.f1, f1d))
  }
  // A balanced accuracy is the top-1 when every class has as many images: here it is below the plain top-1.
  t.true(evaluated.balancedAccuracy < evaluated.top1)
})

test('class weights: auto and sqrt by hand, with a mean weight of 1 over the training images; a map as given', (t) => {
  // 90 and 10 images: auto = N / (K·n) = 100/180 and 100/20; sqrt ∝ 1/√n, scaled by N / Σ√n.
  const auto = resolveClassWeights('auto', [90, 10], ['cat', 'dog'])!
  t.true(near(auto[0]!, 100 / 180) && near(auto[1]!, 5))
  const sqrt = resolveClassWeights('sqrt', [90, 10], ['cat', 'dog'])!
  t.true(near(sqrt[0]!, 5 / 6) && near(sqrt[1]!, 2.5), `${sqrt}`)
  for (const w of [auto, sqrt]) t.true(near((90 * w[0]! + 10 * w[1]!) / 100, 1))
  // A class without training images takes the largest weight; it does not count in the mean.
  t.deepEqual(
    resolveClassWeights('auto', [90, 10, 0], ['cat', 'dog', 'owl'])!.map((w) => Number(w.toFixed(6))),
    [0.555556, 5, 5],
  )
  t.is(resolveClassWeights('none', [90, 10], ['cat', 'dog']), null)
  t.deepEqual(resolveClassWeights({ dog: 3 }, [90, 10], ['cat', 'dog']), [1, 3])
  const err = t.throws(() => resolveClassWeights({ tiger: 3 }, [90, 10], ['cat', 'dog']), { instanceOf: InputError })
  t.regex(err!.message, /option classWeights: "tiger" is not a class of this data; expected names among cat, dog/)
  t.deepEqual(classCounts({ labels: Int32Array.from([0, 1, 1, 2, 1]) }, Int32Array.from([1, 2, 4]), 3), [0, 3, 0])
  // Multi-label: the images that have each label.
  const targets = Uint8Array.from([1, 1, 0, 0, 1, 1, 1, 0, 1])
  t.deepEqual(classCounts({ labels: Int32Array.from([0, 1, 0]), targets }, Int32Array.from([0, 1, 2]), 3), [2, 2, 2])
  t.deepEqual(classCounts({ labels: Int32Array.from([0, 1, 0]), targets }, Int32Array.from([1, 2]), 3), [1, 1, 2])
})

test('bad classWeights and sampler values are InputErrors naming the option and what it expects', async (t) => {
  // Checked before any data is read: this one image would not make a run.
  const data = {
    train: {
      pixels: new Uint8Array(3 * 2 * 2),
      labels: Int32Array.from([0]),
      shape: [3, 2, 2] as [number, number, number],
      classes: ['a'],
    },
  }
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ classWeights: 'balanced' }, /option classWeights: expected 'auto', 'sqrt', 'none' or a map of class names/],
    [{ classWeights: { cat: 0 } }, /option classWeights\.cat: expected a number > 0, got 0/],
    [{ classWeights: { cat: '2' } }, /option classWeights\.cat: expected a number > 0/],
    [{ classWeights: [1, 2] }, /option classWeights: expected/],
    [{ classWeights: '{"cat": 2' }, /option classWeights: expected/],
    [{ sampler: 'random' }, /option sampler: expected 'shuffle' or 'balanced', got "random"/],
  ]
  for (const [options, message] of bad) {
    await t.throwsAsync(train({ data, quiet: true, ...options }), { instanceOf: InputError, message }, JSON.stringify(options))
  }
  // The CLI's text: a rule's name, or a JSON map.
  const decl = TRAIN_OPTIONS.classWeights
  t.deepEqual(decl.check(decl.parse('{"cat": 2, "dog": 0.5}', 'class-weights'), 'classWeights'), { cat: 2, dog: 0.5 })
  t.is(decl.check(decl.parse('sqrt', 'class-weights'), 'classWeights'), 'sqrt')
  // One weight per class, checked by the core.
  t.throws(() => Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', classWeights: [1, 2] }), {
    instanceOf: InputError,
    message: /classWeights: expected one weight per class \(10\), got 2 weights/,
  })
  const model = Model.create(referenceCnn({ classes: 2 }), { device: 'cpu' })
  t.throws(() => model.setLoss({ classWeights: [1, -1] }), { instanceOf: InputError, message: /classWeights: expected finite numbers > 0/ })
})

test('the balanced sampler draws each class equally, from its own images, the same for the same seed and epoch', (t) => {
  // 100 images: 80 of class 0, 15 of class 1, 5 of class 2; the training set is the even ones and the last few.
  const labels = Int32Array.from({ length: 100 }, (_, i) => (i < 80 ? 0 : i < 95 ? 1 : 2))
  const indices = Int32Array.from([...Array.from({ length: 50 }, (_, i) => 2 * i), 97, 99])
  const order = balancedOrder(indices, labels, 7)
  t.is(order.length, indices.length)
  t.deepEqual(order, balancedOrder(indices, labels, 7))
  t.notDeepEqual(order, balancedOrder(indices, labels, 8))
  const allowed = new Set(indices)
  t.true(
    order.every((i) => allowed.has(i)),
    'only training images',
  )
  // 52 draws over 3 classes: 17 each and one more for one of them.
  const shares = classCounts({ labels }, order, 3).sort((a, b) => a - b)
  t.deepEqual(shares, [17, 17, 18])
  // Per epoch: derived from the seed and the epoch, not from state, so a resumed run draws the same.
  const e1 = epochOrder('balanced', indices, labels, 3, 1)
  t.deepEqual(e1, epochOrder('balanced', indices, labels, 3, 1))
  t.notDeepEqual(e1, epochOrder('balanced', indices, labels, 3, 2))
  // The default shuffle shows each image once.
  t.deepEqual(
    [...epochOrder('shuffle', indices, labels, 3, 1)].sort((a, b) => a - b),
    [...indices].sort((a, b) => a - b),
  )
})

/** The images of `keep` (relabelled in that order), the first `perClass(name)` of each. */
function subset(set: ImageSet, keep: string[], perClass: (name: string) => number): ImageSet {
  const size = set.shape[0] * set.shape[1] * set.shape[2]
  const picks: number[] = []
  const labels: number[] = []
  keep.forEach((name, k) => {
    const c = set.classes.indexOf(name)
    for (let i = 0, n = 0; i < set.labels.length && n < perClass(name); i++) {
      if (set.labels[i] !== c) continue
      picks.push(i)
      labels.push(k)
      n++
    }
  })
  const pixels = new Uint8Array(picks.length * size)
  picks.forEach((src, j) => pixels.set(set.pixels.subarray(src * size, (src + 1) * size), j * size))
  return { pixels, labels: Int32Array.from(labels), shape: set.shape, classes: keep }
}

const MINORITY = 'automobile'
/** Three CIFAR-10 classes, 150 training images each but automobile's 15; 100 test images each. */
const imbalanced = (async () => {
  const dirs = cifarSubset()
  const [trainSet, testSet] = await Promise.all([readImageFolder(dirs.train), readImageFolder(dirs.test)])
  const keep = ['airplane', MINORITY, 'frog']
  return { train: subset(trainSet, keep, (c) => (c === MINORITY ? 15 : 150)), test: subset(testSet, keep, () => 100) }
})()

const RUN = { epochs: 4, batchSize: 64, device: 'cpu', precision: 'fp32', seed: 1, testEvery: 0, quiet: true, report: false } as const

test.serial('on imbalanced data, class weights and the balanced sampler raise the minority recall and balanced accuracy', async (t) => {
  const data = await imbalanced
  const plainRun = await train({ ...RUN, data, out: tmp() })
  const { result: weighted, lines } = await logged(() =>
    train({ ...RUN, data, out: tmp(), classWeights: 'auto', monitor: 'val_macro_f1', quiet: false, report: true }),
  )
  const balanced = await train({ ...RUN, data, out: tmp(), sampler: 'balanced' })
  const history = JSON.parse(fs.readFileSync(path.join(weighted.runDir, 'history.json'), 'utf8')) as HistoryFile

  // Counts before training: 10 % of the 315 training images are held out for validation.
  const counts = history.classCounts!
  t.deepEqual(Object.keys(counts.train), data.train.classes)
  t.is(
    [...Object.values(counts.train), ...Object.values(counts.val)].reduce((a, b) => a + b, 0),
    315,
  )
  t.deepEqual(counts.test, { airplane: 100, automobile: 100, frog: 100 })
  t.true(
    lines.some((l) => /^convkit: images per class \(train\/val\/test\): airplane \d+\/\d+\/100, automobile \d+\/\d+\/100, frog/.test(l)),
    lines.join('\n'),
  )
  t.true(lines.some((l) => l.startsWith('convkit: class weights (auto): airplane 0.')))
  // The weights, by name: the minority weighs most, and the mean over the training images is 1.
  const w = history.classWeights!
  t.true(w[MINORITY]! > 5 * w.airplane!)
  const trained = Object.entries(counts.train)
  t.true(near(trained.reduce((a, [c, n]) => a + n * w[c]!, 0) / trained.reduce((a, [, n]) => a + n, 0), 1, 1e-9))

  // Every epoch records the class scores of each split; the table shows the evaluated splits' balanced accuracy.
  for (const e of history.epochs) {
    for (const split of [e.train, e.val!]) {
      t.true(Number.isFinite(split.balancedAccuracy) && Number.isFinite(split.macroF1))
      t.deepEqual(Object.keys(split.classMetrics!), data.train.classes)
      t.deepEqual(Object.keys(split.classMetrics!.frog!).sort(), ['count', 'f1', 'precision', 'recall'])
    }
  }
  t.true(
    lines.some((l) => /val\s+loss\s+top1\s+top5\s+bal │ test\s+loss\s+top1\s+top5\s+bal/.test(l)),
    'the header has bal columns',
  )
  t.is(history.best?.monitor, 'val_macro_f1')
  const report = fs.readFileSync(path.join(weighted.runDir, 'report.html'), 'utf8')
  t.regex(report, /<h2>Per-class test metrics<\/h2>/)
  t.regex(report, /<th>automobile<\/th><td>100<\/td>/)

  const last = (r: { history: HistoryFile }) => r.history.epochs.at(-1)!.test!
  const plain = last(plainRun)
  t.log(
    Object.entries({ plain: plainRun, weighted, balanced })
      .map(
        ([k, r]) =>
          `${k}: minority recall ${last(r).classMetrics![MINORITY]!.recall.toFixed(1)} %, balanced accuracy ${last(r).balancedAccuracy!.toFixed(1)} %`,
      )
      .join('; '),
  )
  // With 15 of 315 images the plain run hardly ever predicts automobile (seed 1: 0 %); weighting or balancing
  // the draws gives it 39–48 % (seeds 1–3: at least 16 points up) at little cost to the others.
  for (const r of [weighted, balanced]) {
    const m = last(r)
    t.true(
      m.classMetrics![MINORITY]!.recall >= plain.classMetrics![MINORITY]!.recall + 15,
      `minority recall ${m.classMetrics![MINORITY]!.recall}`,
    )
    t.true(m.balancedAccuracy! >= plain.balancedAccuracy! + 4, `balanced accuracy ${m.balancedAccuracy} vs ${plain.balancedAccuracy}`)
  }
})

test.serial('a balanced run is deterministic: the same seed gives the same history', async (t) => {
  const data = await imbalanced
  const short = { ...RUN, epochs: 1, data, sampler: 'balanced' as const }
  const [a, b] = [await train({ ...short, out: tmp() }), await train({ ...short, out: tmp() })]
  t.is(a.history.epochs[0]!.train.lossSum, b.history.epochs[0]!.train.lossSum)
  t.deepEqual(a.history.epochs[0]!.test!.confusion, b.history.epochs[0]!.test!.confusion)
})

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'pytorch_interop.py')
const withTorch = needs(missingPython())

withTorch('weighted, label-smoothed cross-entropy steps as torch.nn.functional.cross_entropy(weight, label_smoothing)', async (t) => {
  const python = pythonWithTorch()!
  const dir = tmp()
  const start = path.join(dir, 'start.safetensors')
  execFileSync(python, [script, 'export', start])
  const x = Float32Array.from({ length: 8 * 3 * 32 * 32 }, (_, i) => Math.sin(i * 12.9898) * 0.999)
  const y = BigInt64Array.from({ length: 8 }, (_, i) => BigInt((i * 3) % 10))
  fs.writeFileSync(path.join(dir, 'x.f32'), Buffer.from(x.buffer))
  fs.writeFileSync(path.join(dir, 'y.i64'), Buffer.from(y.buffer))
  const optimizer = { type: 'sgd' as const, lr: 0.05, momentum: 0.9 }
  const classWeights = Array.from({ length: 10 }, (_, c) => 0.5 + 0.3 * c)
  const steps = 3
  /** `steps` ConvKit steps from the start with `loss`, saved. */
  const ours = async (loss: LossOptions, name: string) => {
    // Contiguous layout, as PyTorch runs by default, so both sides call the same kernels.
    const model = Model.create(referenceCnn({ classes: 10 }), { device: 'cpu', optimizer, channelsLast: false })
    await model.loadWeights(start)
    model.setLoss(loss)
    for (let i = 0; i < steps; i++) await model.trainBatchFloats(x, Array.from(y, Number))
    const file = path.join(dir, `${name}.safetensors`)
    await model.save(file, { withOptimizer: false })
    return file
  }
  for (const reduction of ['mean', 'sum'] as const) {
    const loss = { labelSmoothing: 0.2, reduction, classWeights }
    const theirs = path.join(dir, `theirs-${reduction}.safetensors`)
    const [xFile, yFile] = [path.join(dir, 'x.f32'), path.join(dir, 'y.i64')]
    execFileSync(python, [
      script,
      'optimize',
      start,
      xFile,
      yFile,
      '8',
      String(steps),
      JSON.stringify(optimizer),
      theirs,
      JSON.stringify(loss),
    ])
    const diff = await relativeDiff(await ours(loss, reduction), theirs)
    t.log(`${reduction}: largest relative difference ${diff.toExponential(2)}`)
    t.true(diff < 1e-5, `${reduction}: weights differ by up to ${diff} relative`)
    // The weights matter: the same steps unweighted end elsewhere.
    t.true((await relativeDiff(await ours({ ...loss, classWeights: undefined }, `plain-${reduction}`), theirs)) > 1e-3)
  }
})

/** The largest |a - b| / max(|b|, 1e-3) over the parameters of two safetensors files. */
async function relativeDiff(ours: string, theirs: string): Promise<number> {
  const [a, b] = await Promise.all([readTensors(ours), readTensors(theirs)])
  let worst = 0
  for (const [name, bv] of b) {
    const av = a.get(name)!
    for (let i = 0; i < bv.length; i++) worst = Math.max(worst, Math.abs(av[i]! - bv[i]!) / Math.max(Math.abs(bv[i]!), 1e-3))
  }
  return worst
}

/** A float32 safetensors file's tensors, by name (its header: an 8-byte length, then JSON offsets). */
async function readTensors(file: string): Promise<Map<string, Float32Array>> {
  const bytes = fs.readFileSync(file)
  const n = Number(bytes.readBigUInt64LE(0))
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>
  const out = new Map<string, Float32Array>()
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__' || info.dtype !== 'F32') continue
    const [from, to] = info.data_offsets
    const data = bytes.subarray(8 + n + from, 8 + n + to)
    out.set(name, new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)))
  }
  return out
}
