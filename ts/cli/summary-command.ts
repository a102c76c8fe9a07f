// `convkit summary`: the Keras-style table of a model (each layer's output shape and parameters, the totals) for a
// spec file, a checkpoint, an architecture of the zoo or the reference CNN, without data or training.
import fs from 'node:fs'
import { InputError } from '../errors.ts'
import type { ModelSpec, Shape3 } from '../model/layers.ts'
import { Model } from '../model/model.ts'
import { optionalInt, optionalText, size, type OptionTable } from '../options/option.ts'
import { referenceCnn } from '../model/spec.ts'
import { isZooName, ZOO_NAMES, zooModel } from '../zoo/architectures.ts'
import { helpText, parseFlags, type ExtraFlag } from './flags.ts'

const SUMMARY_OPTIONS = {
  model: optionalText({
    help: `a layer-spec JSON file, a .safetensors checkpoint, or a zoo architecture: ${ZOO_NAMES.join(', ')}`,
    group: 'model',
    default: null,
    shownDefault: 'the reference CNN',
    metavar: '<spec|checkpoint|name>',
  }),
  size: size({
    help: 'input height and width (not for checkpoints)',
    group: 'model',
    default: [32, 32],
    shownDefault: "the spec's inputShape; the zoo's native size; 32x32 for the reference CNN",
  }),
  classes: optionalInt({
    help: 'outputs of the classifier (not for checkpoints)',
    group: 'model',
    default: null,
    shownDefault: "the spec's; 1000 for the zoo; 10 for the reference CNN",
    min: 1,
  }),
} satisfies OptionTable

const EXTRA: ExtraFlag[] = [{ name: 'help', boolean: true, help: 'this text', short: 'h' }]

export const SUMMARY_HELP = helpText(
  `Print a model's summary: each layer's output shape and parameters, the totals and the size of the weights.

usage: convkit summary [--model <spec.json|checkpoint.safetensors|zoo name>] [--size <h>x<w>] [--classes <n>]`,
  SUMMARY_OPTIONS,
  EXTRA,
)

/** `spec` resized to `size` and given `classes` outputs, where asked. */
function reshaped(spec: ModelSpec, source: string, size: [number, number] | undefined, classes: number | null): ModelSpec {
  const inputShape: Shape3 = size ? [spec.inputShape[0], size[0], size[1]] : spec.inputShape
  if (classes === null) return { ...spec, inputShape }
  const last = Array.isArray(spec.layers) ? spec.layers.at(-1) : undefined
  if (last?.type !== 'linear') {
    throw new InputError(
      'INVALID_OPTION',
      `option classes: ${source} does not end in a linear layer (it ends in ${last?.type ?? 'nothing'}), so its outputs cannot be set`,
    )
  }
  return { ...spec, inputShape, layers: [...spec.layers.slice(0, -1), { ...last, outFeatures: classes }] }
}

/** The model `--model` names, on the CPU: a checkpoint as saved, or a new model from a spec (a file wins over a zoo name). */
async function modelFor(source: string | null, size: [number, number] | undefined, classes: number | null): Promise<Model> {
  if (source === null)
    return Model.create(referenceCnn({ classes: classes ?? 10, inputShape: [3, ...(size ?? [32, 32])] }), { device: 'cpu' })
  if (!fs.existsSync(source)) {
    // ImageNet's 1000 classes: what the zoo's pretrained weights score.
    if (isZooName(source))
      return Model.create(zooModel(source, { classes: classes ?? 1000, ...(size ? { inputSize: size } : {}) }), { device: 'cpu' })
    throw new InputError(
      'INVALID_OPTION',
      `option model: ${source} is no file and no zoo architecture; expected a layer-spec JSON file, a .safetensors checkpoint or one of ${ZOO_NAMES.join(', ')}`,
    )
  }
  if (source.endsWith('.safetensors')) {
    if (size || classes !== null) {
      throw new InputError(
        'INVALID_OPTION',
        `options size and classes: ${source} is a checkpoint, whose input size and classes are fixed; they apply to spec files and zoo names`,
      )
    }
    return Model.load(source, { device: 'cpu' })
  }
  let spec: ModelSpec
  try {
    spec = JSON.parse(fs.readFileSync(source, 'utf8')) as ModelSpec
  } catch (err) {
    throw new InputError('INVALID_OPTION', `option model: ${source} is not a readable JSON model spec (${(err as Error).message})`, {
      cause: err,
    })
  }
  // Training fills a missing inputShape in from the data; without data, RGB at the default size stands in.
  const withShape: ModelSpec = Array.isArray(spec.inputShape) ? spec : { ...spec, inputShape: [3, 32, 32] }
  return Model.create(reshaped(withShape, source, size, classes), { device: 'cpu' })
}

/** Runs the summary command on `argv`; returns the exit code. */
export async function summaryCommand(argv: string[]): Promise<number> {
  const { options, extra, positionals } = parseFlags(SUMMARY_OPTIONS, argv, EXTRA)
  if (extra.help) {
    console.log(SUMMARY_HELP)
    return 0
  }
  if (positionals.length > 0)
    throw new InputError(
      'INVALID_OPTION',
      `unexpected argument ${JSON.stringify(positionals[0])}: name the model with --model (see --help)`,
    )
  const source = SUMMARY_OPTIONS.model.check(options.model as string | undefined, 'model')
  const size = options.size === undefined ? undefined : SUMMARY_OPTIONS.size.check(options.size as [number, number], 'size')
  const classes = SUMMARY_OPTIONS.classes.check(options.classes as number | undefined, 'classes')
  const model = await modelFor(source, size, classes)
  console.log(model.summary())
  return 0
}
