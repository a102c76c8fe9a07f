// Mixup and CutMix through the public API (TensorDataset.batch shows a batch as a step gets it): one λ per batch
// blending each image with the batch reversed, its draws following Beta(α, α); one box pasted from the batch
// reversed; seeded; and train() takes them (soft targets with label smoothing).
import test from 'ava'
import { readImageFolder, TensorDataset, train } from '../ts/index.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const tmpdir = tempDirs('mixing')
const dirs = cifarSubset()
const data = readImageFolder(dirs.test).then((set) => TensorDataset.create(set, { device: 'cpu' }))
/** Eight images of different classes. */
const picks = [0, 100, 200, 300, 400, 500, 600, 700]
const PER_IMAGE = 3 * 32 * 32

/** The λ that blends `plain` with itself reversed into `mixed` (least squares over every value), and the worst misfit. */
function blend(plain: Float32Array, mixed: Float32Array): { lam: number; misfit: number } {
  const n = plain.length / PER_IMAGE
  const partner = (i: number) => plain[(n - 1 - Math.floor(i / PER_IMAGE)) * PER_IMAGE + (i % PER_IMAGE)]!
  let [num, den] = [0, 0]
  plain.forEach((a, i) => {
    const d = a - partner(i)
    num += (mixed[i]! - partner(i)) * d
    den += d * d
  })
  const lam = num / den
  let misfit = 0
  plain.forEach((a, i) => (misfit = Math.max(misfit, Math.abs(mixed[i]! - (lam * a + (1 - lam) * partner(i))))))
  return { lam, misfit }
}

test('mixup blends each batch with itself reversed by one λ, drawn from Beta(α, α); seeded; off at probability 0', async (t) => {
  const set = await data
  const plain = await set.batch(picks)
  const alpha = 0.4
  const lams: number[] = []
  for (let seed = 0; seed < 300; seed++) {
    const mixed = await set.batch(picks, { augment: { mix: { mixupAlpha: alpha } }, batchSeed: seed })
    const { lam, misfit } = blend(plain, mixed)
    t.true(misfit < 1e-5, `seed ${seed}: one λ for the whole batch (misfit ${misfit})`)
    lams.push(lam)
  }
  // Beta(0.4, 0.4): mean 0.5, variance 1 / (4 (2α + 1)) = 0.1389; 300 draws give a standard error of 0.022 on the mean.
  const mean = lams.reduce((a, b) => a + b, 0) / lams.length
  const variance = lams.reduce((a, b) => a + (b - mean) ** 2, 0) / lams.length
  t.log(`λ: mean ${mean.toFixed(3)}, variance ${variance.toFixed(4)} (Beta(0.4, 0.4): 0.5, 0.1389)`)
  t.true(Math.abs(mean - 0.5) < 0.09)
  t.true(Math.abs(variance - 0.1389) < 0.03)
  t.true(lams.every((l) => l >= -1e-6 && l <= 1 + 1e-6))
  const again = await set.batch(picks, { augment: { mix: { mixupAlpha: alpha } }, batchSeed: 7 })
  t.deepEqual(await set.batch(picks, { augment: { mix: { mixupAlpha: alpha } }, batchSeed: 7 }), again)
  t.deepEqual(await set.batch(picks, { augment: { mix: { mixupAlpha: alpha, probability: 0 } }, batchSeed: 7 }), plain)
  await t.throwsAsync(set.batch(picks, { augment: { mix: { mixupAlpha: -1 } } }), {
    message: /augment\.mix: expected mixupAlpha and cutmixAlpha finite and >= 0/,
  })
})

test('CutMix pastes one box from the batch reversed into every image', async (t) => {
  const set = await data
  const plain = await set.batch(picks)
  const n = picks.length
  let boxes = 0
  for (let seed = 0; seed < 40; seed++) {
    const mixed = await set.batch(picks, { augment: { mix: { cutmixAlpha: 1 } }, batchSeed: seed })
    // Where each value comes from: 'a' its own image, 'b' the partner's (values equal in both count as either).
    const from = new Set<number>()
    for (let i = 0; i < n; i++) {
      const here = new Set<number>()
      for (let p = 0; p < PER_IMAGE; p++) {
        const [a, b, m] = [plain[i * PER_IMAGE + p]!, plain[(n - 1 - i) * PER_IMAGE + p]!, mixed[i * PER_IMAGE + p]!]
        t.true(m === a || m === b, `seed ${seed}: a value from neither image`)
        if (m === b && a !== b) here.add(p % (32 * 32))
      }
      for (const p of here) from.add(p)
    }
    // The pasted pixels of all images lie in one axis-aligned box.
    const rows = [...from].map((p) => Math.floor(p / 32))
    const cols = [...from].map((p) => p % 32)
    if (from.size === 0) continue
    boxes++
    const area = (Math.max(...rows) - Math.min(...rows) + 1) * (Math.max(...cols) - Math.min(...cols) + 1)
    t.true(from.size <= area)
  }
  t.true(boxes >= 30, `${boxes} of 40 batches had a box`)
})

test('train() with mixup and CutMix on soft targets, with label smoothing, learns', async (t) => {
  const { history } = await train({
    data: dirs.train,
    testData: dirs.test,
    limitTest: 500,
    epochs: 3,
    augment: true,
    mixup: 0.2,
    cutmix: 1,
    labelSmoothing: 0.1,
    seed: 2,
    precision: 'fp32',
    device: 'cpu',
    quiet: true,
    report: false,
    out: tmpdir(),
  })
  const top1 = history.epochs.at(-1)!.test!.top1
  t.log(`test top-1 after 3 epochs: ${top1.toFixed(2)} %`)
  t.true(top1 > 20, `${top1} % against 10 % by chance`)
  t.is(history.config.mixup, 0.2)
  t.is(history.config.cutmix, 1)
})
