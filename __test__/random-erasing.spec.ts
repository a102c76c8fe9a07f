// Random erasing through the public API (TensorDataset.batch shows a training batch as a step gets it): one box per
// erased image, of the share and aspect asked, the chance asked, seeded; its box sizes follow torchvision's
// RandomErasing.get_params (statistics against the reference venv's torchvision); and train() takes the option.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { readImageFolder, TensorDataset, train } from '../ts/index.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { needs } from './helpers/needs.ts'
import { missingPython, pythonWith } from './helpers/python-torch.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const tmpdir = tempDirs('random-erasing')
const dirs = cifarSubset()
/** The 1 000 test images on the CPU, normalized with mean 0.5: no byte normalizes to exactly 0, so zeros are erased. */
const data = readImageFolder(dirs.test).then((set) => TensorDataset.create(set, { device: 'cpu' }))
const all = Int32Array.from({ length: 1000 }, (_, i) => i)

/** Each image's erased box: its height and width, or null where nothing was erased. */
function boxes(x: Float32Array, n: number): ({ h: number; w: number } | null)[] {
  const plane = 32 * 32
  return Array.from({ length: n }, (_, i) => {
    const rows = new Set<number>()
    const cols = new Set<number>()
    let zeros = 0
    for (let p = 0; p < plane; p++) {
      // Erased means every channel of the pixel is 0.
      if ([0, 1, 2].every((c) => x[(i * 3 + c) * plane + p] === 0)) {
        zeros++
        rows.add(Math.floor(p / 32))
        cols.add(p % 32)
      }
    }
    if (zeros === 0) return null
    if (zeros !== rows.size * cols.size) throw new Error(`image ${i}: ${zeros} erased pixels are no rectangle`)
    return { h: rows.size, w: cols.size }
  })
}

test('a box of the asked share and aspect in every image at probability 1; none at 0; seeded', async (t) => {
  const set = await data
  const square = { probability: 1, scale: [0.1, 0.1], ratio: [1, 1] }
  const x = await set.batch(all.subarray(0, 50), { augment: { randomErasing: square }, batchSeed: 3 })
  // round(sqrt(0.1 · 1024)) = 10: a 10×10 square in each image, the rest as it was.
  t.deepEqual(boxes(x, 50), Array(50).fill({ h: 10, w: 10 }))
  const plain = await set.batch(all.subarray(0, 50))
  t.true(x.every((v, i) => v === 0 || v === plain[i]))
  t.deepEqual(await set.batch(all.subarray(0, 50), { augment: { randomErasing: square }, batchSeed: 3 }), x)
  t.notDeepEqual(await set.batch(all.subarray(0, 50), { augment: { randomErasing: square }, batchSeed: 4 }), x)
  t.deepEqual(await set.batch(all.subarray(0, 50), { augment: { randomErasing: { ...square, probability: 0 } }, batchSeed: 3 }), plain)
  await t.throwsAsync(set.batch([0], { augment: { randomErasing: { probability: 1.5 } } }), {
    message: /augment\.randomErasing: expected probability in \[0, 1\]/,
  })
})

test('torchvision defaults: half the images erased at probability 0.5, each box within 2–33 % of the area and aspect 0.3–3.3', async (t) => {
  const set = await data
  const found = boxes(await set.batch(all, { augment: { randomErasing: { probability: 0.5 } }, batchSeed: 11 }), 1000)
  const erased = found.filter((b) => b !== null)
  // Binomial(1000, 0.5 · P(a box fits)): nearly every draw fits at these bounds; 4 standard deviations are 63.
  t.true(Math.abs(erased.length - 500) < 63, `${erased.length} of 1000 erased`)
  for (const { h, w } of erased) {
    // Sides are rounded, so the share and aspect may pass the bounds by a rounding.
    t.true(h * w >= 0.02 * 1024 * 0.7 && h * w <= 0.33 * 1024 * 1.2, `${h}×${w}`)
    t.true(h / w >= 0.3 * 0.7 && h / w <= 3.3 / 0.7, `${h}×${w}`)
  }
})

needs(missingPython(['torchvision']))("the erased area's distribution matches torchvision's RandomErasing.get_params", async (t) => {
  const set = await data
  const areas: number[] = []
  for (let seed = 0; seed < 4; seed++) {
    const found = boxes(await set.batch(all, { augment: { randomErasing: { probability: 1 } }, batchSeed: 100 + seed }), 1000)
    for (const b of found) areas.push(b ? b.h * b.w : 0)
  }
  const script = `
import json, torch
from torchvision.transforms import RandomErasing
torch.manual_seed(0)
img = torch.zeros(3, 32, 32)
areas = []
for _ in range(20000):
    i, j, h, w, v = RandomErasing.get_params(img, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=[0.0])
    areas.append(0 if (h, w) == (32, 32) else h * w)
print(json.dumps(areas))`
  const run = spawnSync(pythonWith(['torchvision'])!, ['-c', script], { encoding: 'utf8', maxBuffer: 1 << 24 })
  if (run.status !== 0) throw new Error(run.stderr)
  const reference = JSON.parse(run.stdout) as number[]
  const stats = (v: number[]) => {
    const mean = v.reduce((a, b) => a + b, 0) / v.length
    const sd = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length)
    return { mean, sd, none: v.filter((a) => a === 0).length / v.length }
  }
  const [ours, theirs] = [stats(areas), stats(reference)]
  t.log(`mean area ${ours.mean.toFixed(1)} px (torchvision ${theirs.mean.toFixed(1)}), sd ${ours.sd.toFixed(1)} (${theirs.sd.toFixed(1)})`)
  // The two means differ by less than 4 standard errors of their difference.
  const se = Math.sqrt(ours.sd ** 2 / areas.length + theirs.sd ** 2 / reference.length)
  t.true(Math.abs(ours.mean - theirs.mean) < 4 * se, `${ours.mean} vs ${theirs.mean} (se ${se})`)
  t.true(Math.abs(ours.sd - theirs.sd) < 0.1 * theirs.sd)
  t.true(Math.abs(ours.none - theirs.none) < 0.01)
})

test('train() takes randomErasing and records it', async (t) => {
  const { history } = await train({
    data: dirs.train,
    testData: dirs.test,
    limitTrain: 200,
    limitTest: 100,
    epochs: 1,
    randomErasing: 0.25,
    device: 'cpu',
    quiet: true,
    report: false,
    out: tmpdir(),
  })
  t.is(history.config.randomErasing, 0.25)
})
