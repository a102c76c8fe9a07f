// The train CLI: `npm run train -- [options]` or `npx tsx scripts/train.ts [options]`, built on train().
import fs from 'node:fs'
import { parseArgs } from 'node:util'
import { loadData } from '../ts/data/load-data.ts'
import { Model, type Precision } from '../ts/model.ts'
import { specForData, type ModelSpec } from '../ts/spec.ts'
import { train } from '../ts/train.ts'
import type { OptimizerName, TrainOptions } from '../ts/train-options.ts'
import type { Device } from '../ts/device.ts'
import { runCli } from './cli.ts'

const HELP = `Train a CNN image classifier.

usage: npm run train -- [options]
       npx tsx scripts/train.ts [options]

data
  --data <source>        cifar10 | a folder (root/train/<class>, root/test/<class>, or root/<class>)
                         | a folder of MNIST idx files | a .tar.gz of any of these   (default: cifar10)
  --size <h>x<w>         resize images read from files                              (default: 32x32)
  --val-split <f>        fraction of training data held out for validation           (default: 0.1)
  --test-split <f>       fraction held out as test set when the data has none        (default: 0.2)
  --limit-train <n>      train on a seeded subset of n images
  --limit-test <n>       test on a seeded subset of n images
  --augment              random crop (4-px padding) and horizontal flip              (default: off)
  --normalize <how>      half (mean 0.5, std 0.5) | dataset                          (default: half)
  --skip-bad-images      skip unreadable images instead of failing
  --cache-dir <dir>      dataset cache                         (default: ~/.cache/convkit/datasets)

model and optimization
  --model <spec.json>    a layer-spec JSON file                            (default: reference CNN)
  --epochs <n>                                                                       (default: 40)
  --batch-size <n>                                                                   (default: 128)
  --optimizer <name>     adam | adamw | sgd                                          (default: adam)
  --lr <x>                                                             (default: 1e-3; sgd 1e-2)
  --momentum <x>         sgd momentum                                                (default: 0.9)
  --nesterov             sgd with Nesterov momentum
  --weight-decay <x>                                                 (default: 0; adamw 0.01)
  --seed <n>                                                                         (default: 0)
  --device <d>           auto | cpu | cuda | cuda:N                                  (default: auto)
  --precision <p>        fp32 | bf16 (bfloat16 conv and linear layers, like autocast) (default: fp32)

early stopping and output
  --monitor <metric>     val_loss | val_top1 | test_loss | test_top1 | train_loss ... (default: val_loss)
  --patience <n>                                                                     (default: 5)
  --lr-patience <n>      multiply lr by --lr-factor after n epochs without improvement   (default: off)
  --lr-factor <x>                                                                    (default: 0.1)
  --min-delta <x>                                                                    (default: 0)
  --out <dir>            run directory                               (default: runs/<date-time>)
  --resume <run-dir>     continue a run at its next epoch
  --quiet                no summary, table or progress bars
  --no-report            skip samples.png, plots/ and report.html
  --summary              print the model summary for the data and exit
  --help                 this text
`

function number(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!Number.isFinite(n)) throw new Error(`--${flag}: expected a number, got ${JSON.stringify(value)}`)
  return n
}

function parse(argv: string[]): (TrainOptions & { summaryOnly?: boolean }) | null {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      data: { type: 'string' },
      size: { type: 'string' },
      'val-split': { type: 'string' },
      'test-split': { type: 'string' },
      'limit-train': { type: 'string' },
      'limit-test': { type: 'string' },
      augment: { type: 'boolean' },
      normalize: { type: 'string' },
      'skip-bad-images': { type: 'boolean' },
      'cache-dir': { type: 'string' },
      model: { type: 'string' },
      epochs: { type: 'string' },
      'batch-size': { type: 'string' },
      optimizer: { type: 'string' },
      lr: { type: 'string' },
      momentum: { type: 'string' },
      nesterov: { type: 'boolean' },
      'weight-decay': { type: 'string' },
      seed: { type: 'string' },
      device: { type: 'string' },
      precision: { type: 'string' },
      monitor: { type: 'string' },
      patience: { type: 'string' },
      'lr-patience': { type: 'string' },
      'lr-factor': { type: 'string' },
      'min-delta': { type: 'string' },
      out: { type: 'string' },
      resume: { type: 'string' },
      quiet: { type: 'boolean' },
      'no-report': { type: 'boolean' },
      summary: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) return null
  let size: [number, number] | undefined
  if (values.size !== undefined) {
    const m = /^(\d+)x(\d+)$/.exec(values.size)
    if (!m) throw new Error(`--size: expected <height>x<width> such as 32x32, got ${JSON.stringify(values.size)}`)
    size = [Number(m[1]), Number(m[2])]
  }
  const options: TrainOptions = {
    data: values.data ?? 'cifar10',
    size,
    valSplit: number('val-split', values['val-split']),
    testSplit: number('test-split', values['test-split']),
    limitTrain: number('limit-train', values['limit-train']),
    limitTest: number('limit-test', values['limit-test']),
    augment: values.augment,
    normalize: values.normalize as TrainOptions['normalize'],
    skipBadImages: values['skip-bad-images'],
    cacheDir: values['cache-dir'],
    model: values.model,
    epochs: number('epochs', values.epochs),
    batchSize: number('batch-size', values['batch-size']),
    optimizer: values.optimizer as OptimizerName | undefined,
    lr: number('lr', values.lr),
    momentum: number('momentum', values.momentum),
    nesterov: values.nesterov,
    weightDecay: number('weight-decay', values['weight-decay']),
    seed: number('seed', values.seed),
    device: values.device as Device | undefined,
    precision: values.precision as Precision | undefined,
    monitor: values.monitor,
    patience: number('patience', values.patience),
    lrPatience: number('lr-patience', values['lr-patience']),
    lrFactor: number('lr-factor', values['lr-factor']),
    minDelta: number('min-delta', values['min-delta']),
    out: values.out,
    resume: values.resume,
    quiet: values.quiet,
    report: values['no-report'] ? false : undefined,
  }
  // Undefined means "the default" to train(); drop the keys so resolveConfig sees them as absent.
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as TrainOptions
  return { ...defined, summaryOnly: values.summary }
}

/** `--summary`: the model that would be trained on this data, without training it. */
async function printSummary(options: TrainOptions): Promise<void> {
  const { data } = options
  const loaded = typeof data === 'string' ? await loadData(data, { size: options.size, cacheDir: options.cacheDir, quiet: options.quiet ?? false }) : data
  const spec = typeof options.model === 'string' ? (JSON.parse(fs.readFileSync(options.model, 'utf8')) as ModelSpec) : (options.model ?? null)
  const model = Model.create(specForData(spec, loaded.train.shape, loaded.train.classes.length), { device: options.device ?? 'auto' })
  console.log(model.summary())
}

async function main(): Promise<number> {
  let options: ReturnType<typeof parse>
  try {
    options = parse(process.argv.slice(2))
  } catch (err) {
    console.error(`train: ${(err as Error).message}\n\n${HELP}`)
    return 2
  }
  if (!options) {
    console.log(HELP)
    return 0
  }
  const { summaryOnly, ...trainOptions } = options
  if (summaryOnly) {
    await printSummary(trainOptions)
    return 0
  }
  const controller = new AbortController()
  process.on('SIGINT', () => {
    if (controller.signal.aborted) process.exit(130)
    console.error('\nconvkit: interrupted; finishing the current batch and saving (Ctrl-C again to quit at once)')
    controller.abort()
  })
  const result = await train({ ...trainOptions, signal: controller.signal })
  if (result.interrupted) {
    const done = result.history.epochs.length
    console.error(`convkit: stopped after ${done} complete epoch(s); the last checkpoint and history are in ${result.runDir}.`)
    console.error(`convkit: resume with: npm run train -- --resume ${result.runDir}`)
    return 130
  }
  if (result.skipped.length > 0) console.log(`convkit: skipped ${result.skipped.length} unreadable image(s)`)
  return 0
}

runCli(main)
