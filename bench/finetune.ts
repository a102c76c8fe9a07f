// The fine-tuning benchmark: the README's own command, `--data <photos> --pretrained efficientnet_lite0` and no
// other flag (the fine-tuning recipe, ts/recipes/finetune.ts), on 1 000 CIFAR-10 training images (the first 100 files
// of each class, sorted; the recipe holds 100 out for validation) and all 10 000 test images; beside it the
// from-scratch reference CNN on the same images, and PyTorch + timm running the same recipe on all 1 000
// (bench/finetune_timm.py), one after the other in this one sitting. Each run is its own process, timed from start to
// exit (decoding, training, evaluation, report).
//
// npm run bench:finetune -- [--skip-torch] [--skip-scratch] [--limit-test N] [--device cpu]
//   [--data <root with train/ and test/>] [--cache-dir <dir holding the weights, for a machine offline>]
//   [-- <train flags that override the recipe, e.g. --epochs 10 --lr 5e-4>]
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { CIFAR_ARCHIVE } from '../__test__/helpers/cifar-subset.ts'
import { FINETUNE, finetuneCrop, finetuneEpochs } from '../ts/recipes/finetune.ts'

const repo = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const { values, positionals: overrides } = parseArgs({
  allowPositionals: true,
  options: {
    'skip-torch': { type: 'boolean' },
    'skip-scratch': { type: 'boolean' },
    'limit-test': { type: 'string' },
    device: { type: 'string' },
    data: { type: 'string' },
    'cache-dir': { type: 'string' },
  },
})

const STORED = 224
/** The recipe as the PyTorch script reads it: the finetune recipe's values for 224-pixel weights and 1 000 images. */
export const RECIPE = {
  ...FINETUNE,
  pretrained: 'efficientnet_lite0',
  epochs: finetuneEpochs(1000),
  size: STORED,
  inputSize: finetuneCrop([STORED, STORED])[0],
  evalInputSize: STORED,
  // ConvKit's precision probe chose bf16 on the AMD EPYC and Xeons with native bf16; the script follows the run.
  precision: 'bf16',
} as const

/** `<root>/train/<class>/` with the first 100 files of each class (sorted) and `<root>/test/` with all 10 000. */
function prepare(): string {
  const root = path.join(os.tmpdir(), 'convkit-finetune-1000')
  if (fs.existsSync(path.join(root, 'cifar10-jpg', 'test'))) return path.join(root, 'cifar10-jpg')
  const staging = `${root}.partial-${process.pid}`
  fs.mkdirSync(staging, { recursive: true })
  // File names are 0000.jpg, 0001.jpg, …: 00??.jpg are the first 100 of each class in sorted order.
  execFileSync('tar', ['-xzf', CIFAR_ARCHIVE, '-C', staging, '--wildcards', 'cifar10-jpg/train/*/00??.jpg', 'cifar10-jpg/test/*'])
  fs.renameSync(staging, root)
  return path.join(root, 'cifar10-jpg')
}

function run(label: string, cmd: string, args: string[], env: Record<string, string> = {}): { seconds: number; out: string } {
  const start = performance.now()
  const child = spawnSync(cmd, args, { cwd: repo, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', env: { ...process.env, ...env } })
  const seconds = (performance.now() - start) / 1000
  if (child.status !== 0) throw new Error(`${label} failed (exit ${child.status}):\n${child.stdout}`)
  return { seconds, out: child.stdout }
}

function lastTop1(runDir: string): { top1: number; epochs: number } {
  const history = JSON.parse(fs.readFileSync(path.join(runDir, 'history.json'), 'utf8')) as { epochs: { test?: { top1: number } }[] }
  const tested = history.epochs.filter((e) => e.test)
  return { top1: tested.at(-1)!.test!.top1, epochs: history.epochs.length }
}

const data = values.data ?? prepare()
const device = values.device ?? 'cpu'
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'convkit-finetune-runs-'))
const rows: string[] = []
const limitTest = values['limit-test'] ? ['--limit-test', values['limit-test']] : []
console.log(`data: ${data} (1 000 train, ${values['limit-test'] ?? '10 000'} test); ${os.cpus().length} cores; ${new Date().toISOString()}`)

const flags = ['--data', data, '--pretrained', RECIPE.pretrained, '--device', device, ...limitTest, ...overrides]
console.log(`convkit train ${flags.join(' ')}`)
const ours = path.join(scratch, 'convkit')
const convkit = run('convkit', process.execPath, [
  '--import=tsx',
  'scripts/train.ts',
  ...flags,
  '--out',
  ours,
  '--cache-dir',
  values['cache-dir'] ?? path.join(scratch, 'cache'),
])
const got = lastTop1(ours)
rows.push(
  `| ConvKit, \`--pretrained efficientnet_lite0\` and no other flag | ${got.top1.toFixed(2)} % | ${convkit.seconds.toFixed(0)} s | ${got.epochs} |`,
)
console.log(rows.at(-1))

if (!values['skip-scratch']) {
  const base = path.join(scratch, 'scratch')
  const s = run('scratch', process.execPath, [
    '--import=tsx',
    'scripts/train.ts',
    '--data',
    data,
    '--epochs',
    '30',
    '--val-split',
    '0.1',
    '--augment',
    '--device',
    device,
    '--quiet',
    '--out',
    base,
    ...limitTest,
  ])
  const b = lastTop1(base)
  rows.push(
    `| ConvKit, reference CNN from scratch (32×32, --augment, early stopping) | ${b.top1.toFixed(2)} % | ${s.seconds.toFixed(0)} s | ${b.epochs} |`,
  )
  console.log(rows.at(-1))
}

if (!values['skip-torch']) {
  const python = process.env.CONVKIT_PYTHON ?? path.join(os.homedir(), '.cache', 'convkit', 'pytorch-venv', 'bin', 'python')
  const torch = run('pytorch', python, [
    path.join(repo, 'bench', 'finetune_timm.py'),
    '--data',
    data,
    '--recipe',
    JSON.stringify(RECIPE),
    ...(values['limit-test'] ? ['--limit-test', values['limit-test']] : []),
  ])
  const result = JSON.parse(torch.out.trim().split('\n').at(-1)!) as { top1: number }
  rows.push(
    `| PyTorch 2.11 + timm, same recipe (all 1 000 images, ${RECIPE.precision}) | ${result.top1.toFixed(2)} % | ${torch.seconds.toFixed(0)} s | ${RECIPE.epochs} |`,
  )
  console.log(rows.at(-1))
}

console.log(['', '| run | test top-1 | whole process | epochs |', '|---|---|---|---|', ...rows].join('\n'))
fs.rmSync(scratch, { recursive: true, force: true })
