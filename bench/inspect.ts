// `convkit inspect`'s targets (issue 25), in one run of inspectData() over the whole shared CIFAR-10 as a label file:
// - label errors: 10 % of the training labels changed to another class at random (seeded); precision, recall and F1
//   of the flagged images, beside cleanlab 2.9's find_label_issues on the same out-of-sample probabilities; with
//   `--compare-probe`, a second inspection with `labelModel: 'probe'` puts the linear probe on the same embeddings
//   (and cleanlab on its probabilities) beside the default;
// - near-duplicates: `--planted` training images copied into the test split after a JPEG re-encode at quality 60, a
//   1–2 pixel shift and a brightness change; recall at each threshold, and how many of the original test images have
//   a training image that similar (ciFAIR found near-duplicates in train for 3.3 % of CIFAR-10's test images);
// - the time of the whole inspection of 60 000 images.
//
// It also draws the pairs the defaults flag among the original test images (near-pairs-*.png), to judge by eye how
// many are real near-duplicates.
//
// npm run bench:inspect -- [--train 50000] [--test 10000] [--planted 200] [--noise 0.1] [--seed 0] [--skip-label-errors]
//   [--label-model auto|network|probe] [--compare-probe]
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
import { MATCH_THRESHOLD, NEAR_DUPLICATE_THRESHOLD } from '../ts/inspect/inspect-options.ts'
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
    'skip-label-errors': { type: 'boolean' },
    'label-model': { type: 'string' },
    'compare-probe': { type: 'boolean' },
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
// Low thresholds keep every pair the tables below might want; the defaults are applied to them afterwards.
const skipLabels = values['skip-label-errors'] === true
const labelModel = (values['label-model'] ?? 'auto') as 'auto' | 'network' | 'probe'
const { report, sets, probabilities } = await inspectData(csv, {
  nearThreshold: 0.8,
  matchThreshold: 0.5,
  seed,
  labelErrors: !skipLabels,
  labelModel,
})
const seconds = (performance.now() - started) / 1000
const byDefaults = (p: { similarity: number; match: number }) => p.match >= MATCH_THRESHOLD || p.similarity >= NEAR_DUPLICATE_THRESHOLD
await writeInspection({ ...report, nearDuplicates: report.nearDuplicates.filter(byDefaults) }, sets, dir)
console.log(
  `inspectData: ${seconds.toFixed(1)} s for ${report.counts.train!.reduce((a, b) => a + b, 0) + report.counts.test!.reduce((a, b) => a + b, 0)} images; phases ${JSON.stringify(report.seconds)}`,
)

if (!skipLabels) {
  // Label errors, scored over every row (only training rows were relabelled).
  const rows = [...sets.train!.files!, ...sets.test!.files!]
  const isFlipped = rows.map((f) => flipped.has(f))
  const rowOf = new Map(rows.map((f, i) => [f, i]))
  const score = (flaggedRows: number[]) => {
    const tp = flaggedRows.filter((r) => isFlipped[r]).length
    const precision = tp / Math.max(1, flaggedRows.length)
    const recall = tp / flipped.size
    return { flagged: flaggedRows.length, precision, recall, f1: (2 * precision * recall) / Math.max(1e-12, precision + recall) }
  }
  const table = [['method, same out-of-sample probabilities', 'flagged', 'precision', 'recall', 'F1'].join(' | ')]
  const row = (name: string, s: ReturnType<typeof score>) =>
    table.push([name, s.flagged, s.precision.toFixed(3), s.recall.toFixed(3), s.f1.toFixed(3)].join(' | '))
  const labelsFile = path.join(dir, 'labels.i32')
  fs.writeFileSync(labelsFile, Int32Array.from([...sets.train!.labels, ...sets.test!.labels]))
  const python = process.env.CONVKIT_PYTHON ?? path.join(os.homedir(), '.cache/convkit/pytorch-venv/bin/python')
  /** Our flagged images and cleanlab's on the probabilities `inspected` came from. */
  const rowsOf = (inspected: { report: typeof report; probabilities?: Float32Array }, name: string) => {
    const model = `${inspected.report.labelModel}, ${(100 * inspected.report.labelModelAccuracy!).toFixed(2)} % against the given labels`
    row(`convkit inspect (${model})`, score(inspected.report.labelIssues.map((i) => rowOf.get(i.image.id)!)))
    const probsFile = path.join(dir, `probabilities-${name}.f32`)
    fs.writeFileSync(probsFile, inspected.probabilities!)
    const run = spawnSync(python, [path.join(repo, 'bench/label_issues_cleanlab.py'), probsFile, labelsFile, '10'], { encoding: 'utf8' })
    if (run.status !== 0) return console.log(`cleanlab did not run (${python}): ${run.stderr.slice(-400)}`)
    const cleanlab = JSON.parse(run.stdout) as Record<string, { rows: number[]; seconds: number }>
    for (const [filter, r] of Object.entries(cleanlab)) row(`cleanlab find_label_issues(filter_by='${filter}')`, score(r.rows))
  }
  rowsOf({ report, probabilities }, 'default')
  if (values['compare-probe'] === true && report.labelModel !== 'probe') {
    const started = performance.now()
    const probe = await inspectData(csv, { seed, labelModel: 'probe' })
    console.log(
      `inspectData with labelModel 'probe': ${((performance.now() - started) / 1000).toFixed(1)} s; phases ${JSON.stringify(probe.report.seconds)}`,
    )
    rowsOf(probe, 'probe')
  }
  console.log(`\nlabel errors (${flipped.size} relabelled of ${trainRows.length} training images):\n${table.join('\n')}`)
}

// Near-duplicates across train and test. A planted copy is found when a pair joins it to its original; an original
// test image is flagged when a pair joins it to any training image.
type Pair = (typeof report.nearDuplicates)[number]
const testIds = new Set(sets.test!.files)
const copyPairs = new Map<string, Pair>()
const naturalPairs: Pair[] = []
for (const p of report.nearDuplicates) {
  if (!p.leakage) continue
  const [t, tr] = p.a.split === 'test' ? [p.a, p.b] : [p.b, p.a]
  if (planted.has(t.id)) {
    if (planted.get(t.id) === tr.id) copyPairs.set(t.id, p)
  } else if (testIds.has(t.id)) naturalPairs.push(p)
}
const testOf = (p: Pair) => (p.a.split === 'test' ? p.a.id : p.b.id)
const perThousand = (pairs: Pair[]) => {
  const images = new Set(pairs.map(testOf)).size
  return `${images} (${((1000 * images) / testRows.length).toFixed(1)})`
}
const found = (ok: (p: Pair) => boolean) => {
  const n = [...copyPairs.values()].filter(ok).length
  return `${n} (${((100 * n) / planted.size).toFixed(1)} %)`
}
const exactCopies = report.exactDuplicates.filter((g) => g.leakage).length
console.log(`\nnear-duplicates: ${planted.size} planted copies; ${exactCopies} exact groups across splits`)
console.log('\nby pixel match alone:\n| match ≥ | planted copies found | original test images flagged (per 1 000) |\n|---|---|---|')
for (const t of [0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]) {
  console.log(`| ${t} | ${found((p) => p.match >= t)} | ${perThousand(naturalPairs.filter((p) => p.match >= t))} |`)
}
console.log(
  `\nby similarity alone, among pairs under the default match (${MATCH_THRESHOLD}):\n| similarity ≥ | planted copies found | original test images flagged (per 1 000) |\n|---|---|---|`,
)
const unmatched = naturalPairs.filter((p) => p.match < MATCH_THRESHOLD)
for (const t of [0.85, 0.9, 0.92, 0.94, 0.95, 0.96, 0.98]) {
  console.log(`| ${t} | ${found((p) => p.similarity >= t)} | ${perThousand(unmatched.filter((p) => p.similarity >= t))} |`)
}
const flagged = naturalPairs.filter(byDefaults)
console.log(
  `\ndefaults (match ≥ ${MATCH_THRESHOLD} or similarity ≥ ${NEAR_DUPLICATE_THRESHOLD}): planted copies found ${found(byDefaults)}; original test images flagged ${perThousand(flagged)}`,
)
const missed = [...planted.keys()].filter((k) => !copyPairs.get(k) || !byDefaults(copyPairs.get(k)!))
const lowest = [...copyPairs.values()].sort((x, y) => x.match - y.match).slice(0, 5)
console.log(
  `planted copies missed: ${missed.length}; lowest matches of paired copies: ${lowest.map((p) => `${p.match.toFixed(3)} (similarity ${p.similarity.toFixed(3)})`).join(', ')}`,
)

/** The pairs side by side, 3× enlarged, five to a row, each with its scores: to judge by eye. */
async function drawPairs(pairs: Pair[], file: string): Promise<void> {
  if (pairs.length === 0) return
  const side = 96
  const cell = { width: 2 * side + 16, height: side + 18 }
  const columns = 5
  const tiles = await Promise.all(
    pairs.flatMap((p, n) => {
      const [t, tr] = p.a.split === 'test' ? [p.a, p.b] : [p.b, p.a]
      const left = (n % columns) * cell.width
      const top = Math.floor(n / columns) * cell.height
      const label = `${n} m ${p.match.toFixed(3)} s ${p.similarity.toFixed(3)}`
      const text = Buffer.from(
        `<svg width="${cell.width}" height="16"><text x="0" y="12" font-size="11" font-family="sans-serif">${label}</text></svg>`,
      )
      return [
        sharp(t.id)
          .resize(side, side, { kernel: 'nearest' })
          .png()
          .toBuffer()
          .then((input) => ({ input, left, top })),
        sharp(tr.id)
          .resize(side, side, { kernel: 'nearest' })
          .png()
          .toBuffer()
          .then((input) => ({ input, left: left + side + 4, top })),
        Promise.resolve({ input: text, left, top: top + side + 1 }),
      ]
    }),
  )
  const rows = Math.ceil(pairs.length / columns)
  await sharp({ create: { width: columns * cell.width, height: rows * cell.height, channels: 3, background: '#ffffff' } })
    .composite(tiles)
    .png()
    .toFile(file)
}
const byMatch = flagged.filter((p) => p.match >= MATCH_THRESHOLD).sort((x, y) => x.match - y.match)
const bySimilarity = flagged.filter((p) => p.match < MATCH_THRESHOLD).sort((x, y) => x.similarity - y.similarity)
await drawPairs(byMatch, path.join(dir, 'near-pairs-match.png'))
await drawPairs(bySimilarity, path.join(dir, 'near-pairs-similarity.png'))
console.log(
  `flagged pairs of original test images, weakest first: ${path.join(dir, 'near-pairs-match.png')} (${byMatch.length}), near-pairs-similarity.png (${bySimilarity.length})`,
)
console.log(`inspect.html with the pairs the defaults flag: ${path.join(dir, 'inspect.html')}`)
