// `convkit shard` (and `npx tsx scripts/shard.ts`): writes an image folder as tar shards for streamed training.
import fs from 'node:fs'
import path from 'node:path'
import { DataError, InputError, isConvkitError } from '../errors.ts'
import { boolean, int, type OptionTable } from '../options/option.ts'
import { isDirectory } from '../data/paths.ts'
import { writeShards } from '../data/shards/write-shards.ts'
import { formatBytes } from '../util/progress.ts'
import { helpText, parseFlags, type ExtraFlag } from './flags.ts'

const SHARD_OPTIONS = {
  perShard: int({ help: 'samples per shard', group: 'data', default: 10000, min: 1 }),
  seed: int({ help: 'seeds the order samples are written in (every shard mixes all classes)', group: 'data', default: 0, min: 0 }),
  quiet: boolean({ help: 'no progress bar', group: 'output', default: false }),
} satisfies OptionTable

const EXTRA: ExtraFlag[] = [{ name: 'help', boolean: true, help: 'this text', short: 'h' }]

export const SHARD_HELP = helpText(
  `Write an image folder as WebDataset-style tar shards, for training on data larger than memory.

usage: convkit shard [options] <folder> <out-pattern>
       npx tsx scripts/shard.ts [options] <folder> <out-pattern>

<folder> holds <class>/<image> (as for --data; for a folder with train/ and test/, give <folder>/train).
<out-pattern> names the shards with one %06d (or %d) for the shard number, e.g. shards/train-%06d.tar: as many
shards as --per-shard needs are written, each sample as <key>.<ext> (the image's bytes, not re-encoded) and
<key>.cls (its class index), in a seeded shuffled order, plus an index <stem>.shards.json (here
shards/train.shards.json) with the class names, counts and image size. The command prints the brace pattern
that reads them back, e.g. 'shards/train-{000000..000004}.tar' (quote it in the shell).`,
  SHARD_OPTIONS,
  EXTRA,
)

export async function shardCommand(argv: string[]): Promise<number> {
  const { options, extra, positionals } = parseFlags(SHARD_OPTIONS, argv, EXTRA)
  if (extra.help) {
    console.log(SHARD_HELP)
    return 0
  }
  if (positionals.length !== 2) {
    throw new InputError(
      'INVALID_OPTION',
      `expected <folder> <out-pattern>, got ${positionals.length} argument(s)${positionals.length ? `: ${positionals.join(' ')}` : ''} (see --help)`,
    )
  }
  const [folder, outPattern] = positionals as [string, string]
  const perShard = SHARD_OPTIONS.perShard.check((options.perShard as number | undefined) ?? 10000, 'perShard')
  const seed = SHARD_OPTIONS.seed.check((options.seed as number | undefined) ?? 0, 'seed')
  const controller = new AbortController()
  const onSigint = () => controller.abort()
  process.once('SIGINT', onSigint)
  try {
    const started = performance.now()
    const result = await writeShards(folder, outPattern, { perShard, seed, quiet: options.quiet === true, signal: controller.signal })
    const bytes = result.files.reduce((sum, f) => sum + fs.statSync(f).size, 0)
    const shape = result.imageShape ? `, images ${result.imageShape.join('×')}` : ', images of several sizes'
    console.log(
      `convkit: wrote ${result.files.length} shard(s), ${result.count.toLocaleString('en-US')} samples of ${result.classes.length} classes${shape}, ` +
        `${formatBytes(bytes)} in ${((performance.now() - started) / 1000).toFixed(1)} s; index ${result.index}`,
    )
    console.log(`convkit: read them with '${result.pattern}'`)
    return 0
  } catch (err) {
    // A folder laid out as train/ and test/ lists those as two empty classes; say what to pass instead.
    if (isConvkitError(err) && err.code === 'DATA_EMPTY' && (await isDirectory(path.join(folder, 'train')))) {
      throw new DataError(
        'DATA_EMPTY',
        `${err.message}. ${folder} looks like a folder with train/ and test/: shard ${path.join(folder, 'train')} (and test/ separately)`,
        { cause: err },
      )
    }
    throw err
  } finally {
    process.removeListener('SIGINT', onSigint)
  }
}
