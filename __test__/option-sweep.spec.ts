// Every numeric train option is refused with its name for values that make no sense (0 where it means nothing,
// negatives, NaN, infinity), before any data is read: through train() and through the CLI, where an unknown
// pretrained name and --nproc-per-node 0 are refused too.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { InputError, train } from '../ts/index.ts'
import { TRAIN_OPTIONS } from '../ts/train/train-options.ts'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
/** A data source that does not exist: a run that got as far as reading data would fail with DATA_NOT_FOUND instead. */
const NO_DATA = path.join(repo, 'no-such-data-folder')

/** The numeric options for which 0 is meaningful (a count of epochs or images that may be none, a fraction, a seed). */
const ZERO_MEANS_SOMETHING = new Set([
  'freezeEpochs',
  'backboneLrScale',
  'momentum',
  'weightDecay',
  'labelSmoothing',
  'warmup',
  'warmupStart',
  'finalLr',
  'averagingDecay',
  'minDelta',
  'valSplit',
  'cropPadding',
  'cutout',
  'randomErasing',
  'randAugmentMagnitude',
  'mixup',
  'cutmix',
  'mixProbability',
  'mixSwitchProbability',
  'testEvery',
  'whiten',
  'seed',
])

/** The options whose values are numbers, found by whether they accept 1 (or 0.5) from code. */
function numericOptions(): string[] {
  return Object.entries(TRAIN_OPTIONS)
    .filter(([name, decl]) => {
      for (const v of [1, 0.5]) {
        try {
          ;(decl as { check(v: unknown, field: string): unknown }).check(v, name)
          return true
        } catch {}
      }
      return false
    })
    .map(([name]) => name)
}

test('every numeric option refuses 0 where it means nothing, negatives, NaN and infinity, naming itself, before reading data', async (t) => {
  const names = numericOptions()
  t.true(names.length >= 30, `${names.length} numeric options`)
  for (const name of names) {
    const bad = [-1, Number.NaN, Number.POSITIVE_INFINITY, ...(ZERO_MEANS_SOMETHING.has(name) ? [] : [0])]
    for (const value of bad) {
      const err = await t.throwsAsync(
        train({ data: NO_DATA, [name]: value, quiet: true }),
        { instanceOf: InputError },
        `${name} = ${value}`,
      )
      t.true(err?.message.includes(name), `${name} = ${value}: ${err?.message}`)
    }
  }
})

test('the CLI refuses a bad option by name in about a second, before reading any data or starting workers', (t) => {
  const cases: [string[], RegExp][] = [
    [['--nproc-per-node', '0'], /nprocPerNode: expected an integer >= 1, got 0/],
    [['--pretrained', 'nosuchnet'], /pretrained: "nosuchnet" is not a named weight set \(.*efficientnet_lite0.*\).*path or http\(s\) URL/],
    [['--pretrained', 'https://example.org/weights.pth'], /option model: expected an architecture/],
    [['--epochs', 'NaN'], /epochs: expected a number > 0 or 'auto', got "NaN"/],
    [['--lr=-1'], /option lr: expected a number > 0, got -1/],
    [['--limit-train', '0'], /limitTrain/],
  ]
  for (const [args, expected] of cases) {
    const started = performance.now()
    const run = spawnSync(process.execPath, [path.join(repo, 'bin', 'convkit.js'), 'train', '--data', NO_DATA, ...args], {
      encoding: 'utf8',
      cwd: repo,
    })
    const seconds = (performance.now() - started) / 1000
    t.is(run.status, 2, `${args.join(' ')}: ${run.stderr}`)
    t.regex(run.stderr, expected, args.join(' '))
    t.notRegex(run.stderr, /DATA_NOT_FOUND/, args.join(' '))
    t.log(`${args.join(' ')}: ${seconds.toFixed(2)} s`)
  }
})
