// convkit inspect through its public API: unreadable files, exact and near-duplicates across splits, likely label
// errors on a folder with mislabelled images, inspect.json/inspect.html, and train({ exclude }) leaving them out.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import sharp from 'sharp'
import { confidentJoint, findLabelIssues, inspectData, readExcludeList, train, writeInspection } from '../ts/index.ts'
import { CHROMIUM, openPage } from './helpers/chromium.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { needs } from './helpers/needs.ts'
import { missingPython, pythonWith } from './helpers/python-torch.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const LITE0_FILE = path.resolve(repo, '..', 'shared', 'models', 'efficientnet-lite0-57934424.pth')
const withLite0 = needs(fs.existsSync(LITE0_FILE) ? null : `the shared weights file ${LITE0_FILE}`)
const withCleanlab = needs(missingPython(['cleanlab']) ?? (fs.existsSync(LITE0_FILE) ? null : `the shared weights file ${LITE0_FILE}`))
const tmpdir = tempDirs('inspect')

/**
 * 100 training and 30 test images per class from the shared CIFAR-10, then: 30 training images moved to another
 * class's folder (mislabelled), one training image copied as is into test (exact leakage), one re-encoded at JPEG
 * quality 60, shifted a pixel and brightened (near leakage), and one file that is not an image.
 */
async function flawedFolder(): Promise<{
  root: string
  mislabelled: Set<string>
  exactCopy: [string, string]
  nearCopy: [string, string]
  broken: string
}> {
  const { train: trainDir, test: testDir } = cifarSubset()
  const root = tmpdir()
  const classes = fs.readdirSync(trainDir).sort()
  const mislabelled = new Set<string>()
  for (const split of ['train', 'test']) for (const name of classes) fs.mkdirSync(path.join(root, split, name), { recursive: true })
  for (const [c, name] of classes.entries()) {
    for (const [split, from, count] of [
      ['train', trainDir, 100],
      ['test', testDir, 30],
    ] as const) {
      for (const file of fs.readdirSync(path.join(from, name)).sort().slice(0, count)) {
        // Every 33rd training image goes to the next class but one: 3 per class, 30 in all.
        const i = Number(file.slice(0, 4))
        const target = split === 'train' && i % 33 === 5 ? classes[(c + 1 + (i % 9)) % classes.length]! : name
        const to = path.join(root, split, target, target === name ? file : `moved-${name}-${file}`)
        fs.copyFileSync(path.join(from, name, file), to)
        if (target !== name) mislabelled.add(to)
      }
    }
  }
  const original = path.join(root, 'train', 'cat', '0010.jpg')
  const exactCopy: [string, string] = [original, path.join(root, 'test', 'cat', 'copy-of-0010.jpg')]
  fs.copyFileSync(...exactCopy)
  const nearOriginal = path.join(root, 'train', 'ship', '0020.jpg')
  const nearCopy: [string, string] = [nearOriginal, path.join(root, 'test', 'ship', 'reencoded-0020.jpg')]
  const { data, info } = await sharp(nearOriginal).raw().toBuffer({ resolveWithObject: true })
  // Two pipelines: within one, sharp extracts before it extends.
  const wider = await sharp(data, { raw: info }).extend({ left: 1, extendWith: 'copy' }).raw().toBuffer({ resolveWithObject: true })
  await sharp(wider.data, { raw: wider.info })
    .extract({ left: 0, top: 0, width: info.width, height: info.height })
    .modulate({ brightness: 1.1 })
    .jpeg({ quality: 60 })
    .toFile(nearCopy[1])
  const broken = path.join(root, 'train', 'dog', 'broken.jpg')
  fs.writeFileSync(broken, 'not a jpeg')
  return { root, mislabelled, exactCopy, nearCopy, broken }
}

let flawed: ReturnType<typeof flawedFolder> | undefined
const folder = () => (flawed ??= flawedFolder())

/** The shared weights where a named weight set is looked for: in the cache folder given as `cacheDir`. */
function weightsCache(): string {
  const dir = tmpdir()
  fs.copyFileSync(LITE0_FILE, path.join(dir, path.basename(LITE0_FILE)))
  return dir
}

let inspected: ReturnType<typeof inspectData> | undefined
const inspection = async () => (inspected ??= folder().then(({ root }) => inspectData(root, { cacheDir: weightsCache(), quiet: true })))

withLite0.serial('inspect finds the unreadable file, the copies across train and test, and most of the mislabelled images', async (t) => {
  const { mislabelled, exactCopy, nearCopy, broken } = await folder()
  const { report } = await inspection()
  t.true(
    report.unreadable.some((u) => u.includes(broken)),
    report.unreadable.join('\n'),
  )
  t.deepEqual(
    report.counts.train!.reduce((a, b) => a + b, 0),
    1000,
  )
  t.is(report.imbalance, 1)
  t.like(report.sizes, { read: 1302, unreadable: 0, width: { min: 32, median: 32, max: 32 } })

  const exact = report.exactDuplicates.find((g) => g.images.some((i) => i.id === exactCopy[1]))
  t.truthy(exact, 'the exact copy is grouped')
  t.deepEqual(exact!.images.map((i) => i.id).sort(), [...exactCopy].sort())
  t.true(exact!.leakage)
  const near = report.nearDuplicates.find((p) => [p.a.id, p.b.id].includes(nearCopy[1]))
  t.truthy(near, `the re-encoded copy is paired (pairs: ${report.nearDuplicates.length})`)
  t.deepEqual([near!.a.id, near!.b.id].sort(), [...nearCopy].sort())
  // Found as the same picture: its detail matches at the best small shift.
  t.true(near!.leakage && near!.match >= report.matchThreshold, `match ${near!.match}, similarity ${near!.similarity}`)
  // Few other pairs: look-alikes of one class are not the same picture.
  const others = report.nearDuplicates.filter((p) => p !== near)
  t.log(
    `other near-duplicate pairs: ${others.map((p) => `${path.basename(p.a.id)}/${path.basename(p.b.id)} ${p.match.toFixed(3)} ${p.similarity.toFixed(3)}`).join(', ')}`,
  )
  t.true(others.length <= 5, `${others.length} other pairs`)

  // 30 of 1 301 images mislabelled (2.3 %): most are found, and the flagged ones are far richer in them than chance.
  const flagged = report.labelIssues.map((i) => i.image.id)
  const found = flagged.filter((id) => mislabelled.has(id)).length
  const recall = found / mislabelled.size
  const precision = found / flagged.length
  t.log(
    `label issues: ${flagged.length} flagged, recall ${recall.toFixed(2)}, precision ${precision.toFixed(2)}; ${report.labelModel} accuracy ${report.labelModelAccuracy}`,
  )
  t.true(recall >= 0.5, `recall ${recall}`)
  t.true(precision >= 4 * (mislabelled.size / 1301), `precision ${precision}`)
  // Likeliest first: self-confidence never rises down the list.
  t.true(report.labelIssues.every((i, k) => k === 0 || report.labelIssues[k - 1]!.selfConfidence <= i.selfConfidence))
  for (const id of [...flagged, exactCopy[0], nearCopy[0]]) t.true(report.exclude.includes(id), id)
  t.false(report.exclude.includes(exactCopy[1]), 'test copies stay in the test set')
})

withLite0.serial('labelModel network: a network trained on the images, cross-validated, ranks the mislabelled images first', async (t) => {
  const { root, mislabelled } = await folder()
  const { report, probabilities, sets } = await inspectData(root, {
    cacheDir: weightsCache(),
    quiet: true,
    labelModel: 'network',
    labelEpochs: 12,
  })
  t.is(report.labelModel, 'network')
  // Learning happened: well above chance (10 %) out of sample, on 650 images per fold.
  t.true(report.labelModelAccuracy! > 0.25, `accuracy ${report.labelModelAccuracy}`)
  // The mislabelled images' own labels are far less probable than the others' (30 of 1 301).
  const rows = [...sets.train!.files!, ...sets.test!.files!]
  const labels = [...sets.train!.labels, ...sets.test!.labels]
  const self = (row: number) => probabilities![row * 10 + labels[row]!]!
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
  const wrong = mean(rows.flatMap((f, row) => (mislabelled.has(f) ? [self(row)] : [])))
  const right = mean(rows.flatMap((f, row) => (mislabelled.has(f) ? [] : [self(row)])))
  t.log(
    `accuracy ${report.labelModelAccuracy}; self-confidence: mislabelled ${wrong.toFixed(3)}, others ${right.toFixed(3)}; ${report.labelIssues.length} flagged`,
  )
  t.true(wrong < right / 2, `${wrong} against ${right}`)
  const found = report.labelIssues.filter((i) => mislabelled.has(i.image.id)).length
  t.true(
    found / Math.max(1, report.labelIssues.length) >= 2 * (mislabelled.size / 1301),
    `${found} of ${report.labelIssues.length} flagged`,
  )
})

withLite0.serial('inspect.json and inspect.html are written; train({ exclude }) leaves the listed images out', async (t) => {
  const { root } = await folder()
  const { report, sets } = await inspection()
  const out = tmpdir()
  const files = await writeInspection(report, sets, out)
  const json = JSON.parse(fs.readFileSync(files.json, 'utf8')) as typeof report
  t.deepEqual(json.exclude, report.exclude)
  const html = fs.readFileSync(files.html, 'utf8')
  t.regex(html, /Likely label errors/)
  t.is((html.match(/<img /g) ?? []).length, Math.min(120, report.labelIssues.length) + 2 + 2 * report.nearDuplicates.slice(0, 120).length)
  t.is((await readExcludeList(files.json)).size, report.exclude.length)

  const common = { data: root, epochs: 1, batchSize: 100, quiet: true, seed: 3, skipBadImages: true, report: false } as const
  const total = (h: { classCounts?: Record<string, unknown> }) =>
    ['train', 'val', 'test'].reduce((n, s) => n + Object.values(h.classCounts![s] as Record<string, number>).reduce((a, b) => a + b, 0), 0)
  const all = await train({ ...common, out: tmpdir() })
  // A text list too: one path per line, relative to the list's folder.
  const list = path.join(out, 'exclude.txt')
  fs.writeFileSync(list, `# two images\n${path.relative(out, json.exclude[0]!)}\n${report.exclude[1]}\n`)
  const fewer = await train({ ...common, exclude: list, out: tmpdir() })
  const withList = await train({ ...common, exclude: files.json, out: tmpdir() })
  t.true(total(fewer.history) < total(all.history), `${total(fewer.history)} < ${total(all.history)}`)
  t.true(total(withList.history) < total(fewer.history))
})

withCleanlab('the confident joint and the flagged images are cleanlab 2.9’s on the same probabilities', async (t) => {
  const { probabilities, sets } = await inspection()
  const labels = Int32Array.from([...sets.train!.labels, ...sets.test!.labels])
  const dir = tmpdir()
  fs.writeFileSync(path.join(dir, 'p.f32'), probabilities!)
  fs.writeFileSync(path.join(dir, 'y.i32'), labels)
  const script = `
import sys, json, numpy as np
from cleanlab.count import compute_confident_joint
from cleanlab.filter import find_label_issues
y = np.fromfile(sys.argv[1] + '/y.i32', dtype=np.int32)
p = np.fromfile(sys.argv[1] + '/p.f32', dtype=np.float32).reshape(len(y), -1).astype(np.float64)
flagged = find_label_issues(y, p / p.sum(1, keepdims=True), filter_by='low_self_confidence')
print(json.dumps({'joint': compute_confident_joint(y, p, calibrate=False).tolist(), 'flagged': np.flatnonzero(flagged).tolist()}))`
  const run = spawnSync(pythonWith(['cleanlab'])!, ['-c', script, dir], { encoding: 'utf8' })
  t.is(run.status, 0, run.stderr)
  const theirs = JSON.parse(run.stdout) as { joint: number[][]; flagged: number[] }
  const ours = confidentJoint(probabilities!, labels, 10)
  // cleanlab raises an empty diagonal entry to 1; off the diagonal the counts are the same.
  for (let a = 0; a < 10; a++) for (let b = 0; b < 10; b++) if (a !== b) t.is(ours[a * 10 + b], theirs.joint[a]![b], `[${a}][${b}]`)
  // The same number flagged, and every image cleanlab flags is flagged here too, except those whose most probable class
  // is their own label: those are left out here, and the next least self-confident take their places.
  const flagged = new Set(findLabelIssues(probabilities!, labels, 10).map((i) => i.row))
  t.true(flagged.size > 0)
  t.is(flagged.size, theirs.flagged.length)
  const row10 = (row: number) => [...probabilities!.subarray(row * 10, row * 10 + 10)]
  const ownLabelFirst = (row: number) => row10(row)[labels[row]!]! + 1e-6 >= Math.max(...row10(row))
  t.deepEqual(
    theirs.flagged.filter((row) => !flagged.has(row) && !ownLabelFirst(row)),
    [],
  )
})

needs(CHROMIUM && fs.existsSync(LITE0_FILE) ? null : 'chromium (apt-get install chromium) and the shared weights')(
  'inspect.html loads in headless Chromium with no errors and every image drawn',
  async (t) => {
    const { report, sets } = await inspection()
    const { html } = await writeInspection(report, sets, tmpdir())
    const { page, problems, close } = await openPage(`file://${html}`)
    try {
      const images = (await page.evaluate('Array.from(document.images, (img) => img.complete && img.naturalWidth > 0)')) as boolean[]
      t.deepEqual(problems, [])
      t.true(images.length > 2 && images.every(Boolean), `${images.filter(Boolean).length} of ${images.length} drawn`)
    } finally {
      await close()
    }
  },
)
