// TrivialAugmentWide and RandAugment through the public API: each of the fourteen operations against torchvision's
// `_apply_op` on the same uint8 images and magnitudes (applyAugmentOperation), and the policies' draws against
// torchvision's transforms by the distribution of what they change (TensorDataset.batch shows a training batch as a
// step gets it); seeded; bad settings named; train() takes the option.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { applyAugmentOperation, readImageFolder, TensorDataset, train, type AugmentOperation, type ImageSet } from '../ts/index.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { needs } from './helpers/needs.ts'
import { missingPython, pythonWith } from './helpers/python-torch.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const tmpdir = tempDirs('auto-augment')
const dirs = cifarSubset()
/** Test images stretched to 36×52: not square, so a height mixed up with a width shows. */
const photos = readImageFolder(dirs.test, { size: [36, 52] })
const withTorchvision = needs(missingPython(['torchvision']))

/** Runs `script` in the reference Python with `args`; its stdout. */
function python(script: string, args: string[]): string {
  const run = spawnSync(pythonWith(['torchvision'])!, ['-c', script, ...args], { encoding: 'utf8', maxBuffer: 1 << 28 })
  if (run.status !== 0) throw new Error(run.stderr)
  return run.stdout
}

/** Each operation at magnitudes that cover its range, both signs where a policy signs it. */
const CASES: [AugmentOperation, number[]][] = [
  ['identity', [0]],
  ['shearX', [0.3, -0.99, 0.5016]],
  ['shearY', [-0.3, 0.99]],
  ['translateX', [5.7, -32, 14.2]],
  ['translateY', [-9.9, 32]],
  ['rotate', [30, -135, 7.3, 90]],
  ['brightness', [0.5, -0.99, 0.99]],
  ['color', [-0.66, 0.9]],
  ['contrast', [-0.5, 0.99]],
  ['sharpness', [-0.99, 0.9]],
  ['posterize', [2, 5, 7]],
  ['solarize', [255, 127.5, 0]],
  ['autoContrast', [0]],
  ['equalize', [0]],
]

/** The first `n` images of `set`, in colour, or as their first channel alone (a grey image). */
function firstImages(set: ImageSet, n: number, channels: 1 | 3): ImageSet {
  const [, h, w] = set.shape
  const pixels = new Uint8Array(n * channels * h * w)
  for (let i = 0; i < n; i++) pixels.set(set.pixels.subarray(i * 3 * h * w, (i * 3 + channels) * h * w), i * channels * h * w)
  return { ...set, pixels, shape: [channels, h, w], labels: set.labels.subarray(0, n) }
}

for (const channels of [3, 1] as const) {
  withTorchvision(
    `every operation gives torchvision's _apply_op pixels on the same ${channels}-channel images and magnitudes`,
    async (t) => {
      const few = firstImages(await photos, channels === 3 ? 40 : 10, channels)
      const dir = tmpdir()
      fs.writeFileSync(path.join(dir, 'in.bin'), few.pixels)
      const cases = CASES.flatMap(([op, magnitudes]) => magnitudes.map((m) => [op, m] as const))
      const ours: Uint8Array[] = []
      for (const [op, m] of cases) ours.push((await applyAugmentOperation(few, op, m)).pixels)
      python(
        `
import json, sys, numpy as np, torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.autoaugment import _apply_op
src, channels, cases, out = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
x = torch.from_numpy(np.fromfile(src, dtype=np.uint8)).view(-1, channels, 36, 52)
with open(out, 'wb') as f:
    for op, m in cases:
        name = op[0].upper() + op[1:]
        y = torch.stack([_apply_op(img, name, float(m), InterpolationMode.NEAREST, None) for img in x])
        f.write(y.contiguous().numpy().tobytes())
`,
        [path.join(dir, 'in.bin'), String(channels), JSON.stringify(cases), path.join(dir, 'out.bin')],
      )
      const theirs = fs.readFileSync(path.join(dir, 'out.bin'))
      const size = few.pixels.length
      cases.forEach(([op, m], i) => {
        const reference = theirs.subarray(i * size, (i + 1) * size)
        const differ = ours[i]!.filter((v, p) => v !== reference[p]).length
        t.is(differ, 0, `${op} ${m}: ${differ} of ${size} bytes differ from torchvision`)
        // Each operation but the identity (and colour on grey images) changed them: the comparison compares something.
        const changed = ours[i]!.filter((v, p) => v !== few.pixels[p]).length
        if (op !== 'identity' && !(op === 'color' && channels === 1)) t.true(changed > 0, `${op} ${m} left the images as they were`)
      })
    },
  )
}

test('bad operations and magnitudes are named', async (t) => {
  const set = await photos
  await t.throwsAsync(applyAugmentOperation(set, 'twirl' as AugmentOperation, 1), {
    message: /operation: expected one of "identity", "shearX"/,
  })
  await t.throwsAsync(applyAugmentOperation(set, 'posterize', 9), { message: /magnitude: expected bits from 0 to 8, got 9/ })
  await t.throwsAsync(applyAugmentOperation(set, 'brightness', -1.5), { message: /magnitude: expected a finite magnitude, at least -1/ })
  await t.throwsAsync(applyAugmentOperation({ ...set, shape: [2, 36, 52] }, 'rotate', 1), {
    message: /automatic augmentation: expected uint8 images \[N, 1 or 3, H, W\]/,
  })
})

/** Per image, the mean absolute change of its pixels (0–255) between `before` and `after`, `[N, C, H, W]` bytes. */
function changes(before: Uint8Array, after: ArrayLike<number>, n: number): number[] {
  const size = before.length / n
  return Array.from({ length: n }, (_, i) => {
    let sum = 0
    for (let p = i * size; p < (i + 1) * size; p++) sum += Math.abs(after[p]! - before[p]!)
    return sum / size
  })
}

/** Two-sample Kolmogorov–Smirnov statistic. */
function ksStatistic(a: number[], b: number[]): number {
  const [x, y] = [[...a].sort((p, q) => p - q), [...b].sort((p, q) => p - q)]
  let [i, j, d] = [0, 0, 0]
  while (i < x.length && j < y.length) {
    const v = Math.min(x[i]!, y[j]!)
    while (i < x.length && x[i]! <= v) i++
    while (j < y.length && y[j]! <= v) j++
    d = Math.max(d, Math.abs(i / x.length - j / y.length))
  }
  return d
}

/** Pixels back from a batch normalized with mean 0.5 and std 0.5 (exact: each came from a byte). */
function bytesOf(x: Float32Array): Uint8Array {
  return Uint8Array.from(x, (v) => Math.round((v * 0.5 + 0.5) * 255))
}

const POLICIES = [
  { policy: 'trivial-augment-wide', torchvision: 'TrivialAugmentWide()' },
  { policy: 'rand-augment', torchvision: 'RandAugment()' },
] as const

for (const { policy, torchvision } of POLICIES) {
  withTorchvision(`${policy}: how much it changes each image is distributed as torchvision's ${torchvision}`, async (t) => {
    const set = await readImageFolder(dirs.test)
    const data = await TensorDataset.create(set, { device: 'cpu' })
    const all = Int32Array.from({ length: 1000 }, (_, i) => i)
    const ours: number[] = []
    for (let seed = 0; seed < 4; seed++) {
      const x = await data.batch(all, { augment: { autoAugment: { policy } }, batchSeed: 50 + seed })
      ours.push(...changes(set.pixels, bytesOf(x), 1000))
    }
    const dir = tmpdir()
    fs.writeFileSync(path.join(dir, 'in.bin'), set.pixels)
    const theirs = JSON.parse(
      python(
        `
import json, sys, numpy as np, torch
from torchvision.transforms import TrivialAugmentWide, RandAugment
torch.manual_seed(0)
x = torch.from_numpy(np.fromfile(sys.argv[1], dtype=np.uint8)).view(-1, 3, 32, 32)
policy = ${torchvision}
out = []
for _ in range(4):
    for img in x:
        out.append((policy(img).float() - img.float()).abs().mean().item())
print(json.dumps(out))
`,
        [path.join(dir, 'in.bin')],
      ),
    ) as number[]
    const d = ksStatistic(ours, theirs)
    // 4 000 draws each: the KS statistic's critical value at α = 0.001 is 1.95 · √(2 / 4000) = 0.044.
    t.true(d < 0.044, `KS statistic ${d.toFixed(4)} against torchvision`)
    const mean = (v: number[]) => v.reduce((s, c) => s + c, 0) / v.length
    t.log(`${policy}: mean change ${mean(ours).toFixed(2)} (torchvision ${mean(theirs).toFixed(2)}), KS ${d.toFixed(4)}`)
    // Unchanged images (the identity, and operations that change nothing here) are as common in both.
    const same = (v: number[]) => v.filter((c) => c === 0).length / v.length
    t.true(Math.abs(same(ours) - same(theirs)) < 0.03, `unchanged: ${same(ours)} against ${same(theirs)}`)
  })
}

test('seeded: the same batch seed gives the same images, another seed others; RandAugment settings are checked', async (t) => {
  const data = await TensorDataset.create(await readImageFolder(dirs.test), { device: 'cpu' })
  const some = Int32Array.from({ length: 64 }, (_, i) => i)
  const augment = { autoAugment: { policy: 'rand-augment', numOps: 3, magnitude: 20 } } as const
  const a = await data.batch(some, { augment, batchSeed: 9 })
  t.deepEqual(await data.batch(some, { augment, batchSeed: 9 }), a)
  t.notDeepEqual(await data.batch(some, { augment, batchSeed: 10 }), a)
  t.notDeepEqual(await data.batch(some), a)
  await t.throwsAsync(data.batch(some, { augment: { autoAugment: { policy: 'rand-augment', magnitude: 31 } } }), {
    message: /augment\.autoAugment\.magnitude: expected a bin in 0\.\.31 \(magnitudeBins\), got 31/,
  })
  await t.throwsAsync(data.batch(some, { augment: { autoAugment: { policy: 'auto' as 'rand-augment' } } }), {
    message: /augment\.autoAugment\.policy: expected 'trivial-augment-wide' or 'rand-augment', got "auto"/,
  })
})

test('train() with TrivialAugmentWide after random-resized crops learns, and records the option', async (t) => {
  const { history } = await train({
    data: dirs.train,
    testData: dirs.test,
    valSplit: 0,
    epochs: 3,
    batchSize: 64,
    resizedCrop: [0.35, 1],
    flip: 'random',
    autoAugment: 'trivial-augment-wide',
    device: 'cpu',
    quiet: true,
    report: false,
    out: tmpdir(),
  })
  t.is(history.config.autoAugment, 'trivial-augment-wide')
  const top1 = history.epochs.at(-1)!.test!.top1
  // In percent; chance is 10.
  t.true(top1 > 25, `test top-1 ${top1} %`)
})
