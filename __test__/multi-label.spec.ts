// Multi-label classification through the public API: train() on a CSV of CIFAR-10 mosaics (several labels per image)
// learns, fits a threshold per class on the validation images, and its checkpoint predicts label sets in ConvKit and,
// from the exported ONNX file, in onnxruntime; the metrics equal scikit-learn's on the same probabilities.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import * as ort from 'onnxruntime-node'
import { InputError, Model, train } from '../ts/index.ts'
import { loadData } from '../ts/data/load-data.ts'
import { prng } from '../ts/data/split.ts'
import { bestThreshold, multiLabelMetrics } from '../ts/model/multi-label-metrics.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { writeMosaics } from './helpers/mosaics.ts'
import { needs } from './helpers/needs.ts'
import { metadataOf } from './helpers/onnx-file.ts'
import { missingPython, pythonWith } from './helpers/python-torch.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const tmpdir = tempDirs('multi-label')
const dirs = cifarSubset()
/** 1 200 training and 400 test mosaics of 64×64, made once for the file. */
const mosaics = writeMosaics(
  tmpdir(),
  [
    { from: dirs.train, count: 1200, split: 'train' },
    { from: dirs.test, count: 400, split: 'test' },
  ],
  11,
)

test.serial(
  'train() on a multi-label CSV learns, fits thresholds on validation, and its checkpoint predicts label sets (also in onnxruntime)',
  async (t) => {
    const csv = await mosaics
    const out = tmpdir()
    const { history, model, bestCheckpoint } = await train({
      data: csv,
      epochs: 4,
      batchSize: 64,
      size: [64, 64],
      device: 'cpu',
      seed: 3,
      // Early stopping and the best checkpoint follow the validation mAP.
      monitor: 'val_map',
      quiet: true,
      out,
    })
    t.is(history.best!.monitor, 'val_map')
    t.is(history.best!.value, Math.max(...history.epochs.map((e) => e.val!.multiLabel!.mAP)))
    const last = history.epochs.at(-1)!
    const tested = last.test!.multiLabel!
    // Chance: a model that ranks at random has an average precision equal to its class's share of the test images.
    const { test: testSet } = await loadData(csv, { size: [64, 64], quiet: true })
    const k = history.classes.length
    const n = testSet!.labels.length
    const prevalence = history.classes.map(
      (_, c) => Array.from({ length: n }, (_, i) => testSet!.targets![i * k + c]!).reduce((a, b) => a + b, 0) / n,
    )
    const chance = (100 * prevalence.reduce((a, b) => a + b, 0)) / k
    t.log(
      `test mAP ${tested.mAP.toFixed(2)} (chance ${chance.toFixed(2)}), macro-F1 ${last.test!.macroF1!.toFixed(2)}, exact match ${tested.exactMatch.toFixed(2)}`,
    )
    t.true(tested.mAP > chance + 12, `test mAP ${tested.mAP} against chance ${chance}`)
    t.true(history.epochs[0]!.test!.multiLabel!.mAP < tested.mAP, 'mAP grows with training')
    t.is(last.test!.top1, tested.exactMatch)
    t.deepEqual(last.test!.confusion, [])
    // The thresholds were chosen on this epoch's validation images, then scored the test images and went into the model.
    t.deepEqual(tested.thresholds, last.val!.multiLabel!.thresholds)
    t.deepEqual(model.multiLabel!.thresholds, tested.thresholds)
    t.true(
      tested.thresholds.some((v) => Math.abs(v - 0.5) > 0.01),
      'fitted, not the default 0.5',
    )
    t.regex(path.basename(bestCheckpoint!), /^epoch_\d+_map_\d+\.\d\d\.safetensors$/)
    // The report's predictions are captioned with label sets (most mosaics have several).
    const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8')
    t.regex(html, /true: [a-z]+, [a-z]+/)
    t.regex(html, /<th>mAP<\/th>/)
    const csvText = fs.readFileSync(path.join(out, 'history.csv'), 'utf8')
    t.regex(csvText.split('\n')[0]!, /val_map,val_micro_f1,test_map,test_micro_f1/)

    // The best checkpoint: its epoch's thresholds; predict() lists every class above its threshold.
    const best = history.epochs.find((e) => e.epoch === history.best!.epoch)!
    const loaded = await Model.load(bestCheckpoint!, { device: 'cpu' })
    t.deepEqual(loaded.multiLabel!.thresholds, best.val!.multiLabel!.thresholds)
    const files = ['00000', '00001', '00002', '00003'].map((f) => path.join(path.dirname(csv), 'test', `${f}.png`))
    const predictions = await loaded.predict(files, { topK: k })
    for (const p of predictions) {
      const above = p.topK.filter((s) => s.probability >= loaded.multiLabel!.thresholds[s.index]!)
      t.deepEqual(p.labels, above)
      // A sigmoid per class: the probabilities are independent, not one distribution.
      t.true(Math.abs(p.topK.reduce((a, s) => a + s.probability, 0) - 1) > 1e-3)
    }

    // ONNX: the logits, a sigmoid and the thresholds from the metadata give predict()'s labels.
    const onnx = path.join(out, 'model.onnx')
    await loaded.exportOnnx(onnx)
    const meta = metadataOf(onnx)
    t.deepEqual(JSON.parse(meta['convkit.multi_label']!), loaded.multiLabel)
    const norm = JSON.parse(meta['convkit.normalization']!) as { mean: number[]; std: number[] }
    const session = await ort.InferenceSession.create(onnx)
    const pixels = predictionsInput(testSet!.pixels, 4, 3 * 64 * 64, norm)
    const { logits } = await session.run({ input: new ort.Tensor('float32', pixels, [4, 3, 64, 64]) })
    const thresholds = loaded.multiLabel!.thresholds
    const fromOnnx = [0, 1, 2, 3].map((i) =>
      Array.from({ length: k }, (_, c) => 1 / (1 + Math.exp(-(logits!.data as Float32Array)[i * k + c]!))).flatMap((p, c) =>
        p >= thresholds[c]! ? [c] : [],
      ),
    )
    const ours = await loaded.predictPixels(testSet!.pixels.subarray(0, 4 * 3 * 64 * 64), 4)
    t.deepEqual(
      fromOnnx,
      ours.map((row) => Array.from(row).flatMap((p, c) => (p >= thresholds[c]! ? [c] : []))),
    )
    ours.forEach((row, i) =>
      row.forEach((p, c) => t.true(Math.abs(p - 1 / (1 + Math.exp(-(logits!.data as Float32Array)[i * k + c]!))) < 1e-5)),
    )
  },
)

/** The first `count` images of `pixels`, normalized as the checkpoint says. */
function predictionsInput(pixels: Uint8Array, count: number, perImage: number, norm: { mean: number[]; std: number[] }): Float32Array {
  const plane = perImage / norm.mean.length
  return Float32Array.from(pixels.subarray(0, count * perImage), (v, i) => {
    const c = Math.floor(i / plane) % norm.mean.length
    return (v / 255 - norm.mean[c]!) / norm.std[c]!
  })
}

test.serial('multi-label options a run cannot honour are refused by name', async (t) => {
  const csv = await mosaics
  const common = { epochs: 1, device: 'cpu' as const, quiet: true, out: tmpdir() }
  await t.throwsAsync(train({ ...common, data: dirs.train, multiLabel: true }), {
    instanceOf: InputError,
    message: /option multiLabel: .* gives one class per image .*give a label file/,
  })
  await t.throwsAsync(train({ ...common, data: csv, size: [64, 64], sampler: 'balanced' }), {
    instanceOf: InputError,
    message: /option sampler: 'shuffle' for multi-label data/,
  })
})

test('the best threshold of a class maximises its F1 over every cut of its scores', (t) => {
  const next = prng(5)
  for (let trial = 0; trial < 20; trial++) {
    const scores = Array.from({ length: 60 }, () => Math.round(next() * 40) / 40)
    const truth = scores.map((s) => (next() < 0.3 + 0.4 * s ? 1 : 0))
    const f1At = (threshold: number) => {
      let [tp, fp, fn] = [0, 0, 0]
      scores.forEach((s, i) => {
        if (s >= threshold) truth[i] ? tp++ : fp++
        else if (truth[i]) fn++
      })
      return (2 * tp) / (2 * tp + fp + fn)
    }
    const best = Math.max(...[2, ...scores].map(f1At))
    t.true(Math.abs(f1At(bestThreshold(scores, truth)) - best) < 1e-12, `trial ${trial}`)
  }
  t.is(bestThreshold([0.2, 0.9], [0, 0]), 0.5, 'no positives: the default')
})

const SKLEARN = ['sklearn']
needs(missingPython(SKLEARN))("mAP, per-class AP, precision, recall, micro- and macro-F1 and exact match equal scikit-learn's", (t) => {
  const [n, k] = [300, 6]
  const next = prng(9)
  // Scores rounded to 0.05: ties, which average precision must take together.
  const probabilities = Float32Array.from({ length: n * k }, () => Math.round(next() * 20) / 20)
  const targets = Uint8Array.from(probabilities, (p, i) => (next() < 0.15 + 0.5 * p + 0.05 * (i % k) ? 1 : 0))
  const thresholds = [0.3, 0.4, 0.5, 0.55, 0.6, 0.7]
  const names = ['a', 'b', 'c', 'd', 'e', 'f']
  const ours = multiLabelMetrics(probabilities, targets, n, names, 0, thresholds)
  const script = `
import json, sys
import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, precision_score, recall_score
d = json.load(sys.stdin)
p = np.array(d["p"], dtype=np.float32).reshape(-1, ${k})
y = np.array(d["y"]).reshape(-1, ${k})
pred = (p >= np.array(d["t"])).astype(int)
print(json.dumps({
  "ap": average_precision_score(y, p, average=None).tolist(),
  "map": average_precision_score(y, p, average="macro"),
  "micro": f1_score(y, pred, average="micro"),
  "macro": f1_score(y, pred, average="macro"),
  "precision": precision_score(y, pred, average=None, zero_division=0).tolist(),
  "recall": recall_score(y, pred, average=None).tolist(),
  "exact": accuracy_score(y, pred),
}))`
  const run = spawnSync(pythonWith(SKLEARN)!, ['-c', script], {
    input: JSON.stringify({ p: Array.from(probabilities), y: Array.from(targets), t: thresholds }),
    encoding: 'utf8',
  })
  if (run.status !== 0) throw new Error(run.stderr)
  const sk = JSON.parse(run.stdout) as {
    ap: number[]
    map: number
    micro: number
    macro: number
    precision: number[]
    recall: number[]
    exact: number
  }
  const close = (a: number, b: number, what: string) => t.true(Math.abs(a - b) < 1e-9, `${what}: ${a} vs ${b}`)
  names.forEach((c, i) => {
    close(ours.multiLabel.averagePrecision[c]!, 100 * sk.ap[i]!, `AP ${c}`)
    close(ours.classMetrics[c]!.precision, 100 * sk.precision[i]!, `precision ${c}`)
    close(ours.classMetrics[c]!.recall, 100 * sk.recall[i]!, `recall ${c}`)
  })
  close(ours.multiLabel.mAP, 100 * sk.map, 'mAP')
  close(ours.multiLabel.microF1, 100 * sk.micro, 'micro-F1')
  close(ours.macroF1, 100 * sk.macro, 'macro-F1')
  close(ours.multiLabel.exactMatch, 100 * sk.exact, 'exact match')
})
