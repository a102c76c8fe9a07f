// The airbench94 preset against airbench94's own code (PyPI airbench 0.1.8 through bench/airbench_reference.py), one
// after the other in this one sitting, on the shared CIFAR-10 JPEGs, for each seed: test top-1 with TTA and time.
//
// ConvKit's time is the sum of its epochs (whitening, training) plus the final TTA evaluation, as airbench times
// itself (its total leaves out loading and the per-epoch evaluations: the preset runs with --test-every 0, so it
// has none); each side's whole process is beside it.
//
// npm run bench:airbench -- [--seeds 0,1] [--epochs 9.9] [--skip-airbench] [--device cpu|cuda] [--archive cifar10-jpg.tar.gz] [--json out.json]
// (airbench: ~/.cache/convkit/pytorch-venv/bin/pip install --no-deps airbench==0.1.8; CONVKIT_PYTHON picks the Python.)
// On a GPU (scripts/gpu-check.sh) airbench runs as published, fp16 weights, after one untimed warm-up run as its own
// main does; ConvKit's process is cold, so its first epoch includes CUDA's start-up: the table also gives its
// timed total without the first epoch.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { CIFAR_ARCHIVE } from '../__test__/helpers/cifar-subset.ts'

const repo = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const { values } = parseArgs({
  options: {
    seeds: { type: 'string' },
    epochs: { type: 'string' },
    'skip-airbench': { type: 'boolean' },
    precision: { type: 'string' },
    device: { type: 'string' },
    archive: { type: 'string' },
    json: { type: 'string' },
  },
})
const device = values.device ?? 'cpu'
const archive = path.resolve(values.archive ?? CIFAR_ARCHIVE)
const seeds = (values.seeds ?? '0,1').split(',').map(Number)
const venvPython = path.join(os.homedir(), '.cache', 'convkit', 'pytorch-venv', 'bin', 'python')
const python = process.env.CONVKIT_PYTHON ?? (fs.existsSync(venvPython) ? venvPython : 'python3')
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'convkit-airbench-'))

function run(label: string, cmd: string, args: string[]): { seconds: number; out: string } {
  const start = performance.now()
  const child = spawnSync(cmd, args, { cwd: repo, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 64 * 2 ** 20 })
  const seconds = (performance.now() - start) / 1000
  if (child.status !== 0) throw new Error(`${label} failed (exit ${child.status}):\n${child.stdout}`)
  return { seconds, out: child.stdout }
}

interface Row {
  who: string
  seed: number
  top1: number
  timed: number
  /** The timed total without the first epoch (ConvKit on a GPU: its process is cold). */
  warm?: number
  wall: number
}
const rows: Row[] = []
console.log(`${os.cpus()[0]?.model}, ${os.cpus().length} cores, device ${device}; ${new Date().toISOString()}; seeds ${seeds.join(', ')}`)
for (const seed of seeds) {
  const out = path.join(scratch, `convkit-${seed}`)
  const epochs = values.epochs ? ['--epochs', values.epochs] : []
  const ck = run('convkit', process.execPath, [
    '--import=tsx',
    'scripts/train.ts',
    '--recipe',
    'airbench94',
    '--data',
    archive,
    '--precision',
    values.precision ?? 'bf16',
    '--seed',
    String(seed),
    '--test-every',
    '0',
    '--monitor',
    'train_loss',
    '--device',
    device,
    '--quiet',
    '--no-report',
    '--out',
    out,
    '--cache-dir',
    path.join(scratch, 'cache'),
    ...epochs,
  ])
  const history = JSON.parse(fs.readFileSync(path.join(out, 'history.json'), 'utf8')) as {
    epochs: { seconds: number; test?: { top1: number } }[]
  }
  const timed = history.epochs.reduce((a, e) => a + e.seconds, 0)
  rows.push({
    who: 'ConvKit preset',
    seed,
    top1: history.epochs.at(-1)!.test!.top1,
    timed,
    warm: timed - history.epochs[0]!.seconds,
    wall: ck.seconds,
  })
  console.log(JSON.stringify(rows.at(-1)))
  if (!values['skip-airbench']) {
    const json = path.join(scratch, `airbench-${seed}.json`)
    const ab = run('airbench', python, [
      'bench/airbench_reference.py',
      '--seed',
      String(seed),
      '--threads',
      String(os.cpus().length),
      '--json',
      json,
      '--archive',
      archive,
      '--device',
      device,
      ...(device === 'cuda' ? ['--warmup'] : []),
      ...(values.epochs ? ['--epochs', values.epochs] : []),
    ])
    const r = JSON.parse(fs.readFileSync(json, 'utf8')) as { test_acc_tta: number; airbench_time_seconds: number }
    rows.push({ who: 'airbench94 (PyPI 0.1.8)', seed, top1: 100 * r.test_acc_tta, timed: r.airbench_time_seconds, wall: ab.seconds })
    console.log(JSON.stringify(rows.at(-1)))
  }
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
const secs = (s: number) => (s < 100 ? s.toFixed(1) : s.toFixed(0))
console.log(
  [
    '',
    '| run | seed | test top-1 (TTA) | timed (whitening, training, TTA eval) | without epoch 1 | whole process |',
    '|---|---|---|---|---|---|',
  ].join('\n'),
)
for (const r of rows)
  console.log(
    `| ${r.who} | ${r.seed} | ${r.top1.toFixed(2)} % | ${secs(r.timed)} s | ${r.warm === undefined ? '' : `${secs(r.warm)} s`} | ${secs(r.wall)} s |`,
  )
for (const who of new Set(rows.map((r) => r.who))) {
  const mine = rows.filter((r) => r.who === who)
  console.log(
    `| ${who}, mean | | ${mean(mine.map((r) => r.top1)).toFixed(2)} % | ${secs(mean(mine.map((r) => r.timed)))} s | | ${secs(mean(mine.map((r) => r.wall)))} s |`,
  )
}
const [ck, ab] = [rows.filter((r) => r.who.startsWith('ConvKit')), rows.filter((r) => r.who.startsWith('airbench'))]
const timeRatio = ab.length > 0 ? mean(ck.map((r) => r.timed)) / mean(ab.map((r) => r.timed)) : undefined
const pointsAhead = ab.length > 0 ? mean(ck.map((r) => r.top1)) - mean(ab.map((r) => r.top1)) : undefined
if (timeRatio !== undefined)
  console.log(`\nConvKit's timed total / airbench's: ${timeRatio.toFixed(3)}; accuracy difference ${pointsAhead!.toFixed(2)} points`)
if (values.json) fs.writeFileSync(values.json, JSON.stringify({ device, cpu: os.cpus()[0]?.model, rows, timeRatio, pointsAhead }, null, 2))
fs.rmSync(scratch, { recursive: true, force: true })
