// `convkit train` (and `npm run train`): train() from flags generated from TRAIN_OPTIONS.
import { loadData } from '../data/load-data.ts'
import { labelFileOptionsOf } from '../data/label-file.ts'
import { describeShardSource, isShardSource } from '../data/shards/shard-source.ts'
import { launchedAsRank } from '../distributed/env.ts'
import { launch, withoutFlag } from '../distributed/launcher.ts'
import type { Shape3 } from '../model/layers.ts'
import { Model } from '../model/model.ts'
import { specForData } from '../model/spec.ts'
import { train } from '../train/train.ts'
import { abortOnInterrupt } from './run.ts'
import { resolveConfig } from '../train/resolve-config.ts'
import { TRAIN_OPTIONS, type TrainOptions } from '../train/train-options.ts'
import { helpText, parseFlags, type ExtraFlag } from './flags.ts'

const USAGE = `Train a CNN image classifier.

usage: convkit train [--data <source>] [options]
       npm run train -- [--data <source>] [options]`

const EXTRA: ExtraFlag[] = [
  {
    name: 'data',
    boolean: false,
    help: "cifar10 (downloaded; the default) | a folder (root/train/<class> and root/test/<class>, or root/<class>) | a folder of MNIST idx files | a .tar.gz of any of these | a .csv/.tsv/.json/.jsonl label file (a path and a label column per image) | tar shards from convkit shard ('shards/train-{000000..000019}.tar', quoted)",
    metavar: '<source>',
  },
  { name: 'summary', boolean: true, help: 'print the model summary for the data and exit' },
  { name: 'help', boolean: true, help: 'this text', short: 'h' },
]

export const TRAIN_HELP = helpText(USAGE, TRAIN_OPTIONS, EXTRA)

/** `--summary`: the model that would be trained on this data, without training it. */
async function printSummary(options: TrainOptions): Promise<void> {
  const config = resolveConfig(options)
  let shape: Shape3
  let classes: number
  if (isShardSource(config.data)) {
    // Shards: the index says the classes and channels; the images are decoded at --size.
    const set = await describeShardSource(config.data)
    shape = [set.imageShape?.[0] === 1 ? 1 : 3, ...config.size]
    classes = set.classes.length
  } else {
    // The listing says the classes and the shape: image folders and archives decode nothing for a summary.
    const nothing = () => ({ train: new Int32Array(0), test: new Int32Array(0), val: new Int32Array(0) })
    const loaded = await loadData(config.data, {
      size: config.size,
      cacheDir: config.cacheDir ?? undefined,
      quiet: config.quiet,
      pick: nothing,
      ...labelFileOptionsOf(config),
    })
    shape = loaded.train.shape
    classes = loaded.train.classes.length
  }
  const model = Model.create(specForData(config.model, shape, classes), { device: config.device })
  console.log(model.summary())
}

/** A worker started by `--nproc-per-node` ends when its launcher does (even one killed outright). */
function joinLauncher(): void {
  if (!process.env.CONVKIT_LAUNCHED || !process.channel) return
  process.channel.unref()
  process.on('disconnect', () => {
    console.error(`convkit: rank ${process.env.RANK}: the launcher is gone; stopping`)
    process.exit(1)
  })
}

/** Runs the train command on `argv`; returns the exit code. */
export async function trainCommand(argv: string[]): Promise<number> {
  const { options, extra } = parseFlags(TRAIN_OPTIONS, argv, EXTRA)
  if (extra.help) {
    console.log(TRAIN_HELP)
    return 0
  }
  // Checked by its own declaration here: the option is the CLI's alone, so train() never sees it.
  const nproc = TRAIN_OPTIONS.nprocPerNode.check((options.nprocPerNode as number | undefined) ?? null, 'nprocPerNode') ?? 1
  delete options.nprocPerNode
  // A resumed run reads its data source from history.json; a new one trains on CIFAR-10 unless told otherwise.
  const data = (extra.data as string | undefined) ?? (options.resume ? undefined : 'cifar10')
  const trainOptions = { ...options, data } as TrainOptions
  // Every option is checked before any data is read or any worker started (a resumed run is checked by train()
  // against its stored configuration).
  if (!trainOptions.resume) resolveConfig(trainOptions)
  if (extra.summary) {
    await printSummary(trainOptions)
    return 0
  }
  // --nproc-per-node N: this process only launches N workers of the same command (and waits for them).
  if (nproc > 1) return launch({ nproc, args: withoutFlag(argv, 'nproc-per-node') })
  // A worker (of the launcher, torchrun or any launcher setting torchrun's variables) joins its run.
  const worker = launchedAsRank()
  if (worker) joinLauncher()
  const speaks = !worker || process.env.RANK === '0'
  const controller = abortOnInterrupt(speaks ? 'finishing the current batch and saving' : null)
  const result = await train({ ...trainOptions, ...(worker ? { distributed: true } : {}), signal: controller.signal })
  if (!speaks) return result.interrupted ? 130 : 0
  if (result.interrupted) {
    const done = result.history.epochs.length
    console.error(`convkit: stopped after ${done} complete epoch(s); the last checkpoint and history are in ${result.runDir}.`)
    // A data-parallel run resumes with as many ranks: the global batch is batchSize × ranks.
    const ranks = worker && process.env.LOCAL_WORLD_SIZE === process.env.WORLD_SIZE ? `--nproc-per-node ${process.env.WORLD_SIZE} ` : ''
    console.error(`convkit: resume with: npm run train -- ${ranks}--resume ${result.runDir}`)
    return 130
  }
  if (result.skipped.length > 0) console.log(`convkit: skipped ${result.skipped.length} unreadable image(s)`)
  return 0
}
