// The airbench94 preset against airbench94's own code (PyPI airbench 0.1.8 through bench/airbench_cpu.py), one
// after the other in this one sitting, on the shared CIFAR-10 JPEGs, for each seed: test top-1 with TTA and time.
//
// ConvKit's time is the sum of its epochs (whitening, training) plus the final TTA evaluation, as airbench times
// itself (its total leaves out loading and the per-epoch evaluations: the preset runs with --test-every 0, so it
// has none); each side's whole process is beside it.
//
// npm run bench:airbench -- [--seeds 0,1] [--epochs 9.9] [--skip-airbench]
// (airbench: ~/.cache/convkit/pytorch-venv/bin/pip install --no-deps airbench==0.1.8)
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { CIFAR_ARCHIVE } from '../__test__/helpers/cifar-subset.ts'

const repo = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const { values } = parseArgs({ options: { seeds: { type: 'string' }, epochs: { type: 'string' }, 'skip-airbench': { type: 'boolean' }, precision: { type: 'string' } } })
const seeds = (values.seeds ?? '0,1').split(',').map(Number)
const python = process.env.CONVKIT_PYTHON ?? path.join(os.homedir(), '.cache', 'convkit', 'pytorch-venv', 'bin', 'python')
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
  wall: number
}
const rows: Row[] = []
console.log(`${os.cpus()[0]?.model}, ${os.cpus().length} cores; ${new Date().toISOString()}; seeds ${seeds.join(', ')}`)
for (const seed of seeds) {
  const out = path.join(scratch, `convkit-${seed}`)
  const epochs = values.epochs ? ['--epochs', values.epochs] : []
  const ck = run('convkit', process.execPath, [
    '--import=tsx', 'scripts/train.ts', '--recipe', 'airbench94', '--data', CIFAR_ARCHIVE, '--precision', values.precision ?? 'bf16', '--seed', String(seed),
    '--test-every', '0', '--monitor', 'train_loss', '--device', 'cpu', '--quiet', '--no-report', '--out', out, '--cache-dir', path.join(scratch, 'cache'), ...epochs,
  ])
  const history = JSON.parse(fs.readFileSync(path.join(out, 'history.json'), 'utf8')) as { epochs: { seconds: number; test?: { top1: number } }[] }
  const timed = history.epochs.reduce((a, e) => a + e.seconds, 0)
  rows.push({ who: 'ConvKit preset', seed, top1: history.epochs.at(-1)!.test!.top1, timed, wall: ck.seconds })
  console.log(JSON.stringify(rows.at(-1)))
  if (!values['skip-airbench']) {
    const json = path.join(scratch, `airbench-${seed}.json`)
    const ab = run('airbench', python, ['bench/airbench_cpu.py', '--seed', String(seed), '--threads', String(os.cpus().length), '--json', json, ...(values.epochs ? ['--epochs', values.epochs] : [])])
    const r = JSON.parse(fs.readFileSync(json, 'utf8')) as { test_acc_tta: number; airbench_time_seconds: number }
    rows.push({ who: 'airbench94 (PyPI 0.1.8)', seed, top1: 100 * r.test_acc_tta, timed: r.airbench_time_seconds, wall: ab.seconds })
    console.log(JSON.stringify(rows.at(-1)))
  }
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
console.log(['', '| run | seed | test top-1 (TTA) | timed (whitening, training, TTA eval) | whole process |', '|---|---|---|---|---|'].join('\n'))
for (const r of rows) console.log(`| ${r.who} | ${r.seed} | ${r.top1.toFixed(2)} % | ${r.timed.toFixed(0)} s | ${r.wall.toFixed(0)} s |`)
for (const who of new Set(rows.map((r) => r.who))) {
  const mine = rows.filter((r) => r.who === who)
  console.log(`| ${who}, mean | | ${mean(mine.map((r) => r.top1)).toFixed(2)} % | ${mean(mine.map((r) => r.timed)).toFixed(0)} s | ${mean(mine.map((r) => r.wall)).toFixed(0)} s |`)
}
const [ck, ab] = [rows.filter((r) => r.who.startsWith('ConvKit')), rows.filter((r) => r.who.startsWith('airbench'))]
if (ab.length > 0) console.log(`\nConvKit's timed total / airbench's: ${(mean(ck.map((r) => r.timed)) / mean(ab.map((r) => r.timed))).toFixed(3)}; accuracy difference ${(mean(ck.map((r) => r.top1)) - mean(ab.map((r) => r.top1))).toFixed(2)} points`)
fs.rmSync(scratch, { recursive: true, force: true })
