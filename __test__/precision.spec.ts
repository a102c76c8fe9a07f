// precision 'auto', the default: which CPUs count as native bf16, the probe's choice recorded with its reason, and a
// resumed run keeping the choice. This file unsets the suite's pin (CONVKIT_AUTO_PRECISION, set in package.json's
// ava config so that other runs compare) to exercise the probe itself; ava runs each file in its own process.
import test from 'ava'
import fs from 'node:fs'
import path from 'node:path'
import { TensorDataset, cpuBf16Flags, readImageFolder, referenceCnn, train } from '../ts/index.ts'
import type { HistoryFile } from '../ts/index.ts'
import type { Precision } from '../ts/model/model.ts'
import { AUTO_PRECISION_ENV, choosePrecision, decidePrecision, probePrecisions } from '../ts/train/precision.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const tmp = tempDirs('precision')
delete process.env[AUTO_PRECISION_ENV]

test('native bf16 means avx512_bf16 or amx_bf16 in the flags of /proc/cpuinfo', (t) => {
  t.deepEqual(cpuBf16Flags('processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n'), ['avx512_bf16'])
  t.deepEqual(cpuBf16Flags('flags\t\t: fpu avx512f amx_bf16 amx_tile avx512_bf16\n'), ['avx512_bf16', 'amx_bf16'])
  t.deepEqual(cpuBf16Flags('flags\t\t: fpu sse2 avx2 avx512f avx512bw\n'), [])
  t.deepEqual(cpuBf16Flags(''), [])
})

test.serial('auto is the default: the run probes, records its choice with the reason, and a resumed run keeps it', async (t) => {
  const dirs = cifarSubset()
  const [trainSet, testSet] = await Promise.all([readImageFolder(dirs.train), readImageFolder(dirs.test)])
  const base = {
    data: { train: trainSet, test: testSet },
    device: 'cpu' as const,
    quiet: true,
    report: false,
    limitTrain: 300,
    limitTest: 100,
    // A fresh memo of probes: the first run probes.
    cacheDir: tmp(),
  }
  const out = tmp()
  const first = await train({ ...base, epochs: 1, out })
  const chosen = first.history.chosen!
  t.log(chosen.precisionReason)
  t.is(first.history.config.precision, 'auto')
  t.is(first.model.precision as string, chosen.precision)
  if (cpuBf16Flags().length === 0) {
    t.is(chosen.precision, 'fp32')
    t.regex(chosen.precisionReason, /no native bf16/)
  } else {
    t.true(chosen.precision === 'fp32' || chosen.precision === 'bf16')
    // The probe weighs a training step and an evaluation by the run's images: 270 trained (300 less the 10 % held
    // out), 30 validated and 100 tested.
    t.regex(
      chosen.precisionReason,
      /the CPU has .*bf16.* step took \d+ ms in bf16 and \d+ ms in fp32, their evaluation \d+ ms and \d+ ms; for this run's 270 trained and 130 evaluated images, about [\d.]+ s in bf16 and [\d.]+ s in fp32$/,
    )
    // The same network, batch and CPU again: a clear outcome (bf16/fp32 outside 0.8–1.0, for this run's images) comes
    // from the memo, so the choice is the same and no probe runs; a close call is measured again.
    const [bf16, fp32] = /about ([\d.]+) s in bf16 and ([\d.]+) s in fp32/.exec(chosen.precisionReason)!.slice(1).map(Number)
    // The reason rounds to two digits: only ratios well clear of the 0.8 and 1.0 bounds are asserted either way.
    const distance = Math.abs(bf16! / fp32! - 0.9)
    const again = await train({ ...base, epochs: 1, out: tmp() })
    if (distance > 0.15) {
      t.is(again.history.chosen!.precision, chosen.precision)
      t.true(
        again.history.chosen!.precisionReason.startsWith(`${chosen.precisionReason} (remembered from a probe of `),
        again.history.chosen!.precisionReason,
      )
      t.true(fs.existsSync(path.join(base.cacheDir, 'precision-probes.json')))
    } else if (distance < 0.05) t.notRegex(again.history.chosen!.precisionReason, /remembered/)
    // Another batch size is another probe.
    const other = await train({ ...base, batchSize: 16, epochs: 1, out: tmp() })
    t.notRegex(other.history.chosen!.precisionReason, /remembered/)
  }

  // Resumed with the other precision pinned: the stored choice wins, so the run continues as it began.
  process.env[AUTO_PRECISION_ENV] = chosen.precision === 'bf16' ? 'fp32' : 'bf16'
  try {
    const resumed = await train({ ...base, resume: out, epochs: 2 })
    t.deepEqual(resumed.history.chosen, chosen)
    t.is(resumed.model.precision as string, chosen.precision)
    const other = await train({ ...base, epochs: 1, out: tmp() })
    t.is(other.history.chosen!.precision, process.env[AUTO_PRECISION_ENV])
    t.regex(other.history.chosen!.precisionReason, new RegExp(`${AUTO_PRECISION_ENV}=`))
  } finally {
    delete process.env[AUTO_PRECISION_ENV]
  }
  const stored = JSON.parse(fs.readFileSync(path.join(out, 'history.json'), 'utf8')) as HistoryFile
  t.deepEqual(stored.chosen, chosen)
})

test("the probe times each precision's own steps, after warming both up, alternating which goes first", async (t) => {
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
  // A fake step: each precision's first call is slow (kernels built, memory allocated), then steady.
  const fakeStep = (steady: Record<Precision, number>) => {
    const calls: Precision[] = []
    const step = async (precision: Precision) => {
      await sleep((calls.includes(precision) ? 0 : 150) + steady[precision])
      calls.push(precision)
    }
    return { calls, step }
  }
  const faster = fakeStep({ fp32: 60, bf16: 20 })
  const probe = await probePrecisions(faster.step)
  t.deepEqual(faster.calls, ['fp32', 'bf16', 'fp32', 'bf16', 'bf16', 'fp32', 'fp32', 'bf16', 'bf16', 'fp32'])
  t.log(`fp32 ${probe.fp32.toFixed(1)} ms, bf16 ${probe.bf16.toFixed(1)} ms`)
  // Each median is its own precision's steady step, not a warm-up, and not the other precision's.
  t.true(probe.fp32 >= 55 && probe.fp32 < 140, `fp32 ${probe.fp32}`)
  t.true(probe.bf16 >= 15 && probe.bf16 < 55, `bf16 ${probe.bf16}`)
  const chosen = decidePrecision(probe, 64, 'the CPU has avx512_bf16')
  t.is(chosen.precision, 'bf16')
  t.regex(chosen.reason, /^bf16: the CPU has avx512_bf16, and a 64-image step took \d+ ms in bf16 and \d+ ms in fp32$/)

  const slower = await probePrecisions(fakeStep({ fp32: 20, bf16: 60 }).step)
  t.true(slower.bf16 > slower.fp32)
  t.is(decidePrecision(slower, 64, 'the CPU has avx512_bf16').precision, 'fp32')
  // Close timings keep fp32: the choice must not follow noise.
  t.is(decidePrecision({ fp32: 100, bf16: 95 }, 64, 'x').precision, 'fp32')
})

test("with the run's workload, the choice weighs its evaluations too: the fine-tune whose training is no faster in bf16", (t) => {
  // Timings of the fine-tuning bench's probe (32 images, Lite0 with its body frozen, evaluated with mirror TTA):
  // training alike, evaluation not.
  const probe = { fp32: 754, bf16: 762, evalFp32: 300, evalBf16: 160 }
  // 8 epochs of 900 images; 100 validation images each epoch and 10 000 test images once, all with mirror TTA.
  const workload = { trainImages: 7200, evalImages: 8 * 100 + 10_000, tta: 'mirror' as const }
  t.is(decidePrecision(probe, 32, 'x').precision, 'fp32', 'per training step alone: no clear win')
  const weighed = decidePrecision(probe, 32, 'the CPU has avx512_bf16', workload)
  t.is(weighed.precision, 'bf16')
  t.regex(
    weighed.reason,
    /^bf16: the CPU has avx512_bf16, and a 32-image step took 762 ms in bf16 and 754 ms in fp32, their evaluation 160 ms and 300 ms; for this run's 7,200 trained and 10,800 evaluated images, about 225 s in bf16 and 271 s in fp32$/,
  )
  // A run that mostly trains keeps fp32.
  t.is(decidePrecision(probe, 32, 'x', { trainImages: 100_000, evalImages: 1000, tta: 'mirror' }).precision, 'fp32')
  // Without evaluation timings the workload cannot be weighed: the step decides.
  t.is(decidePrecision({ fp32: 754, bf16: 762 }, 32, 'x', workload).precision, 'fp32')
})

test.serial("the probe trains a copy in the run's own state (prepare), never the run's model", async (t) => {
  const dirs = cifarSubset()
  const set = await readImageFolder(dirs.test)
  const data = await TensorDataset.create(set, { device: 'cpu' })
  const spec = referenceCnn({ classes: 10, inputShape: [3, 32, 32] })
  const prepared: { trainable: number; froze: boolean }[] = []
  const choice = await choosePrecision(
    spec,
    data,
    Int32Array.from({ length: 64 }, (_, i) => i),
    {
      batchSize: 32,
      device: 'cpu',
      memoFile: path.join(tmp(), 'probes.json'),
      prepare: (probe) => {
        const all = probe.trainableParamCount
        probe.setTrainable(['*'], false)
        probe.setTrainable(['fc2.*'], true)
        prepared.push({ trainable: probe.trainableParamCount, froze: all > probe.trainableParamCount })
      },
      workload: { trainImages: 6400, evalImages: 2000, tta: 'none' },
    },
  )
  if (cpuBf16Flags().length === 0) {
    // Nothing to probe without native bf16: no copy is made.
    t.deepEqual(prepared, [])
    t.is(choice.precision, 'fp32')
  } else {
    // One copy, put in the run's state (here: frozen but for its head) before its first step.
    t.is(prepared.length, 1)
    t.true(prepared[0]!.froze)
    t.is(prepared[0]!.trainable, 512 * 10 + 10, 'fc2: 512 inputs to 10 classes')
    t.regex(choice.reason, /step took \d+ ms in bf16 and \d+ ms in fp32, their evaluation \d+ ms and \d+ ms; for this run's 6,400 trained/)
    t.true(choice.probe!.evalFp32! > 0 && choice.probe!.evalBf16! > 0)
  }
})
