// Resolving train()'s options: a recipe's options under the given ones, defaults applied, every option checked, and
// a resumed run's stored configuration merged with what may change. The table of options is train-options.ts;
// this module applies recipes to it, so that recipes (values of those options) depend on the table and not the
// other way.
import fs from 'node:fs'
import path from 'node:path'
import { checkMonitor } from '../callbacks/monitor.ts'
import { isLabelFile } from '../data/label-table.ts'
import { isShardSource } from '../data/shards/shard-source.ts'
import { InputError } from '../errors.ts'
import { bad, resolveTable } from '../options/option.ts'
import { finetuneCrop, PRETRAINED_ONLY } from '../recipes/finetune.ts'
import { RECIPES } from '../recipes/recipes.ts'
import { PRETRAINED_WEIGHTS_NAMES, pretrainedWeights } from '../zoo/weights.ts'
import { IN_MEMORY, runMetrics, TRAIN_OPTIONS, type ResolvedTrainOptions, type TrainOptions } from './train-options.ts'

function sourcePath(source: string): string {
  return fs.existsSync(source) || isShardSource(source) ? path.resolve(source) : source
}

function dataSource(data: TrainOptions['data']): string {
  if (typeof data === 'string') return sourcePath(data)
  if (!data || typeof data !== 'object' || !('train' in data))
    throw bad('data', "a source such as 'cifar10' or a path, or { train, test }", data)
  return IN_MEMORY
}

/**
 * `pretrained` names a registered weight set, an http(s) URL or an existing file; a URL or file needs the
 * architecture beside it. Checked with the other options, so that a typo fails before any data is read.
 */
function checkPretrained(pretrained: string, model: ResolvedTrainOptions['model']): void {
  if (pretrainedWeights(pretrained)) return
  const url = /^https?:\/\//i.test(pretrained)
  if (!url && !fs.existsSync(pretrained)) {
    throw new InputError(
      'INVALID_OPTION',
      `option pretrained: ${JSON.stringify(pretrained)} is not a named weight set (${PRETRAINED_WEIGHTS_NAMES.join(', ')}) nor an existing file; the path or http(s) URL of a .pth or .safetensors file of weights also works, with the architecture given as model`,
    )
  }
  if (model === null) {
    throw bad(
      'model',
      `an architecture (a zoo name or a spec) for the weights ${url ? 'at' : 'in'} ${pretrained}, which are not a named weight set`,
      null,
    )
  }
}

function crossChecks(config: ResolvedTrainOptions): void {
  if (config.pretrained !== null) checkPretrained(config.pretrained, config.model)
  // A label file may bring validation rows of its own (read later): its val_* metrics cannot be ruled out yet.
  checkMonitor(
    config.monitor,
    runMetrics(config.valSplit > 0 || isLabelFile(config.data), config.multiLabel || isLabelFile(config.data)),
    'option monitor',
  )
  if (config.testEvery !== 1 && config.monitor.startsWith('test_')) {
    throw bad(
      'monitor',
      `a metric of every epoch (train_*${config.valSplit > 0 ? ' or val_*' : ''}) when testEvery is ${config.testEvery}`,
      config.monitor,
    )
  }
  if (config.schedule === 'piecewise' && config.lrPoints.length === 0)
    throw bad('lrPoints', "points for schedule 'piecewise'", config.lrPoints)
  if (config.averagingWarmup === 'cubic' && config.averaging === 'none')
    throw bad('averagingWarmup', "an averaging ('ema' or 'lookahead') to ramp", config.averagingWarmup)
  if ((config.nprocPerNode ?? 1) > 1)
    throw bad(
      'nprocPerNode',
      "1: only the train CLI starts worker processes; from code, start one process per rank with the option 'distributed'",
      config.nprocPerNode,
    )
}

/**
 * The options a recipe sets, under the ones given (a recipe name is checked like any option). Pretrained weights
 * start from the fine-tuning recipe unless another (or `'none'`) is named.
 */
function withRecipe(options: TrainOptions): Record<string, unknown> {
  const name = options.recipe ?? (options.pretrained ? 'finetune' : 'none')
  const checked = TRAIN_OPTIONS.recipe.check(name, 'recipe')
  const recipe: Record<string, unknown> = checked === 'none' ? {} : { ...RECIPES[checked] }
  if (checked === 'finetune' && !options.pretrained) for (const key of PRETRAINED_ONLY) delete recipe[key]
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined))
  return { ...recipe, ...given, recipe: checked }
}

/**
 * The fine-tuning recipe trains on crops smaller than the stored images and evaluates on the whole stored image
 * (`finetuneCrop`), unless the sizes are given. A network that cannot take a second size (a flatten before a linear
 * layer) evaluates at its input size instead: buildModel falls back when the model refuses the view.
 */
function withFinetuneSizes(config: ResolvedTrainOptions, options: TrainOptions): void {
  if (config.recipe !== 'finetune' || options.inputSize !== undefined) return
  const crop = finetuneCrop(config.size)
  if (crop[0] === config.size[0] && crop[1] === config.size[1]) return
  config.inputSize = crop
  if (options.evalInputSize === undefined) config.evalInputSize = config.size
}

/** Applies defaults and checks every option; throws an InputError naming the first bad one. */
export function resolveConfig(options: TrainOptions): ResolvedTrainOptions {
  const given = withRecipe(options)
  const config = { ...resolveTable(TRAIN_OPTIONS, given), data: dataSource(options.data) } as ResolvedTrainOptions
  if (config.testData !== null) config.testData = sourcePath(config.testData)
  withFinetuneSizes(config, options)
  crossChecks(config)
  return config
}

/**
 * The configuration of a resumed run: the stored config, checked like a new run's, with the options given now
 * applied where a resumed run may change them. A stored field this version does not know is an error naming it; a
 * field the run was written before takes its default (listed in `filled`); a given option that would change a
 * fixed one is an error.
 */
export function resumeConfig(
  stored: Record<string, unknown>,
  options: TrainOptions,
  runDir: string,
): { config: ResolvedTrainOptions; filled: string[] } {
  const known = new Set<string>([...Object.keys(TRAIN_OPTIONS), 'data'])
  const unknown = Object.keys(stored).filter((k) => !known.has(k))
  if (unknown.length > 0) {
    throw new InputError(
      'INVALID_OPTION',
      `option resume: ${runDir}/history.json has config field(s) ${unknown.join(', ')} that this version does not know; resume it with the version that wrote it`,
    )
  }
  const table = TRAIN_OPTIONS as Record<string, { onResume: string; stored: boolean }>
  const merged: Record<string, unknown> = {}
  const filled: string[] = []
  for (const [key, decl] of Object.entries(table)) {
    const now = (options as unknown as Record<string, unknown>)[key]
    const before = stored[key]
    if (!decl.stored || decl.onResume === 'override') {
      merged[key] = now !== undefined ? now : before
    } else {
      if (now !== undefined && before !== undefined && JSON.stringify(now) !== JSON.stringify(before)) {
        throw new InputError(
          'INVALID_OPTION',
          `option ${key}: the run in ${runDir} was made with ${JSON.stringify(before)}; a resumed run keeps it (got ${JSON.stringify(now)})`,
        )
      }
      merged[key] = before !== undefined ? before : now
    }
    if (decl.stored && before === undefined && key !== 'model') filled.push(key)
  }
  if (typeof stored.data !== 'string')
    throw bad('resume', `a run directory whose history.json config has a data source (${runDir})`, stored.data)
  const data = typeof options.data === 'object' ? options.data : (stored.data as string)
  if (data === IN_MEMORY) {
    throw new InputError(
      'INVALID_OPTION',
      `option data: the run in ${runDir} trained on images in memory; pass them again as data to resume it`,
    )
  }
  const config = { ...resolveTable(TRAIN_OPTIONS, merged), data: typeof data === 'string' ? data : IN_MEMORY } as ResolvedTrainOptions
  crossChecks(config)
  return { config, filled }
}
