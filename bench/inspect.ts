// `convkit inspect`'s targets (issue 25), in one run of inspectData() over the whole shared CIFAR-10 as a label file:
// - label errors: 10 % of the training labels changed to another class at random (seeded); precision, recall and F1
//   of the flagged images, beside cleanlab 2.9's find_label_issues on the same out-of-sample probabilities;
// - near-duplicates: `--planted` training images copied into the test split after a JPEG re-encode at quality 60, a
//   1–2 pixel shift and a brightness change; recall at each threshold, and how many of the original test images have
//   a training image that similar (ciFAIR found near-duplicates in train for 3.3 % of CIFAR-10's test images);
// - the time of the whole inspection of 60 000 images.
//
// npm run bench:inspect -- [--train 50000] [--test 10000] [--planted 200] [--noise 0.1] [--seed 0]
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import sharp from 'sharp'
import { listImageFolder } from '../ts/data/image-folder.ts'
import { prng } from '../ts/data/split.ts'
import { inspectData } from '../ts/inspect/inspect-data.ts'
import { writeInspection } from '../ts/inspect/inspect-html.ts'
import { extractedCifar } from './cifar-folder.ts'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { values } = parseArgs({
  options: {
    train: { type: 'string' },
    test: { type: 'string' },
    planted: { type: 'string' },
    noise: { type: 'string' },
    seed: { type: 'string' },
  },
})
const nTrain = Number(values.train ?? 50000)
const nTest = Number(values.test ?? 10000)
const nPlanted = Number(values.planted ?? 200)
const noise = Number(values.noise ?? 0.1)
const seed = Number(values.seed ?? 0)
const rand = prng(seed + 77)

const cifar = extractedCifar()
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'convkit-bench-inspect-'))
const pick = <T>(items: T[], n: number) => items.filter((_, i) => i % Math.max(1, Math.floor(items.length / n)) === 0).slice(0, n)
const train = await listImageFolder(path.join(cifar, 'train'))
const test = await listImageFolder(path.join(cifar, 'test'))
const trainRows = pick(
  train.files.map((file, i) => ({ file, label: train.labels[i]! })),
  nTrain,
)
const testRows = pick(
  test.files.map((file, i) => ({ file, label: test.labels[i]! })),
  nTest,
)

// Noisy labels: each training row changes class with probability `noise`, to one of the nine others.
const flipped = new Set<string>()
const given = trainRows.map((r) => {
  if (rand() >= noise) return r.label
  flipped.add(r.file)
  return (r.label + 1 + Math.floor(rand() * 9)) % 10
})

// Planted near-duplicates: re-encoded, shifted and brightened copies of training images, in the test split.
const planted = new Map<string, string>()
fs.mkdirSync(path.join(dir, 'planted'))
for (let k = 0; k < nPlanted; k++) {
  const source = trainRows[Math.floor(rand() * trainRows.length)]!
  if ([...planted.values()].includes(source.file)) continue
  const dx = 1 + Math.floor(rand() * 2)
  const dy = 1 + Math.floor(rand() * 2)
  const brightness = 0.8 + 0.4 * rand()
  const { data, info } = await sharp(source.file).raw().toBuffer({ resolveWithObject: true })
  // Two pipelines: within one, sharp extracts before it extends.
  const larger = await sharp(data, { raw: info })
    .extend({ left: dx, top: dy, extendWith: 'copy' })
    .raw()
    .toBuffer({ resolveWithObject: true })
  const shifted = await sharp(larger.data, { raw: larger.info })
    .extract({ left: 0, top: 0, width: info.width, height: info.height })
    .modulate({ brightness })
    .jpeg({ quality: 60 })
    .toBuffer()
  const out = path.join(dir, 'planted', `copy-${k}.jpg`)
  fs.writeFileSync(out, shifted)
  planted.set(out, source.file)
}

fs.writeFileSync(path.join(dir, 'planted.json'), JSON.stringify(Object.fromEntries(planted)))
const classes = train.classes
const csvLines = ['path,label,split']
trainRows.forEach((r, i) => csvLines.push(`${r.file},${classes[given[i]!]},train`))
for (const r of testRows) csvLines.push(`${r.file},${classes[r.label]},test`)
for (const [copy, original] of planted) csvLines.push(`${copy},${classes[train.labels[train.files.indexOf(original)]!]},test`)
const csv = path.join(dir, 'labels.csv')
fs.writeFileSync(csv, `${csvLines.join('\n')}\n`)
console.log(
  `${trainRows.length} train (${flipped.size} relabelled), ${testRows.length} test + ${planted.size} planted copies; ${os.cpus().length} cores (${os.cpus()[0]?.model}); ${new Date().toISOString()}`,
)

const started = performance.now()
// A low threshold keeps every pair the table below might want; the default is applied to them afterwards.
const { report, sets, probabilities } = await inspectData(csv, { nearThreshold: 0.8, seed })
const seconds = (performance.now() - started) / 1000
await writeInspection({ ...report, nearDuplicates: report.nearDuplicates.filter((p) => p.similarity >= 0.9) }, sets, dir)
console.log(
  `inspectData: ${seconds.toFixed(1)} s for ${report.counts.train!.reduce((a, b) => a + b, 0) + report.counts.test!.reduce((a, b) => a + b, 0)} images; phases ${JSON.stringify(report.seconds)}`,
)
console.log(`out-of-sample probe accuracy against the given labels: ${(100 * report.probeAccuracy!).toFixed(2)} %`)

// Label errors, scored over every row (only training rows were relabelled).
const rows = [...sets.train!.files!, ...sets.test!.files!]
const isFlipped = rows.map((f) => flipped.has(f))
const score = (flaggedRows: number[]) => {
  const tp = flaggedRows.filter((r) => isFlipped[r]).length
  const precision = tp / Math.max(1, flaggedRows.length)
  const recall = tp / flipped.size
  return { flagged: flaggedRows.length, precision, recall, f1: (2 * precision * recall) / Math.max(1e-12, precision + recall) }
}
const rowOf = new Map(rows.map((f, i) => [f, i]))
const ours = score(report.labelIssues.map((i) => rowOf.get(i.image.id)!))
const probsFile = path.join(dir, 'probabilities.f32')
const labelsFile = path.join(dir, 'labels.i32')
fs.writeFileSync(probsFile, probabilities!)
fs.writeFileSync(labelsFile, Int32Array.from([...sets.train!.labels, ...sets.test!.labels]))
const python = process.env.CONVKIT_PYTHON ?? path.join(os.homedir(), '.cache/convkit/pytorch-venv/bin/python')
const run = spawnSync(python, [path.join(repo, 'bench/label_issues_cleanlab.py'), probsFile, labelsFile, '10'], { encoding: 'utf8' })
const table = [['method', 'flagged', 'precision', 'recall', 'F1'].join(' | ')]
const row = (name: string, s: ReturnType<typeof score>) =>
  table.push([name, s.flagged, s.precision.toFixed(3), s.recall.toFixed(3), s.f1.toFixed(3)].join(' | '))
row('convkit inspect (default)', ours)
if (run.status === 0) {
  const cleanlab = JSON.parse(run.stdout) as Record<string, { rows: number[]; seconds: number }>
  for (const [filter, r] of Object.entries(cleanlab)) row(`cleanlab find_label_issues(filter_by='${filter}')`, score(r.rows))
} else console.log(`cleanlab did not run (${python}): ${run.stderr.slice(-400)}`)
console.log(`\nlabel errors (${flipped.size} relabelled of ${trainRows.length} training images):\n${table.join('\n')}`)

// Near-duplicates: a planted copy is found when a pair joins it to its original.
const testIds = new Set(sets.test!.files)
const copyPairs = new Map<string, number>()
const naturalBest = new Map<string, number>()
for (const p of report.nearDuplicates) {
  if (!p.leakage) continue
  const [t, tr] = p.a.split === 'test' ? [p.a, p.b] : [p.b, p.a]
  if (planted.has(t.id)) {
    if (planted.get(t.id) === tr.id) copyPairs.set(t.id, Math.max(copyPairs.get(t.id) ?? 0, p.similarity))
  } else if (testIds.has(t.id)) naturalBest.set(t.id, Math.max(naturalBest.get(t.id) ?? 0, p.similarity))
}
const exactCopies = report.exactDuplicates.filter((g) => g.leakage).length
console.log(
  `\nnear-duplicates (${planted.size} planted copies; ${exactCopies} exact groups across splits):\nthreshold | planted found | original test images with a training image this similar (per 1 000)`,
)
for (const threshold of [0.8, 0.85, 0.88, 0.9, 0.92, 0.94, 0.96]) {
  const found = [...copyPairs.values()].filter((s) => s >= threshold).length
  const natural = [...naturalBest.values()].filter((s) => s >= threshold).length
  console.log(
    `${threshold} | ${found} (${((100 * found) / planted.size).toFixed(1)} %) | ${natural} (${((1000 * natural) / testRows.length).toFixed(1)})`,
  )
}
const missed = [...planted.keys()].filter((k) => !copyPairs.has(k))
console.log(`planted copies whose original was not among their 5 nearest at ≥ 0.8: ${missed.length}`)
console.log(
  `lowest similarities of found copies: ${[...copyPairs.values()]
    .sort((a, b) => a - b)
    .slice(0, 5)
    .map((s) => s.toFixed(3))
    .join(', ')}`,
)
console.log(`inspect.html with the pairs ≥ 0.9: ${path.join(dir, 'inspect.html')}`)
