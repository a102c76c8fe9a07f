// Models that start from pretrained weights: a named weight set (its architecture, preprocessing and ImageNet
// labels come with it), or a file or URL of weights for a given architecture; with the classifier replaced when
// the data has other classes. Model.fromPretrained (and so Model.create({ pretrained }) and train({ pretrained }))
// come here; this module builds no model, so the model module depends on it and not the other way.
import { callSync, native } from '../binding.ts'
import { InputError } from '../errors.ts'
import type { Layer, ModelSpec } from '../model/layers.ts'
import type { ModelOptions } from '../model/model-options.ts'
import { readSafetensors } from '../weights/safetensors-file.ts'
import { readTorchStateDict, type TorchTensor } from '../weights/torch-checkpoint.ts'
import { ZOO, isZooName, zooModel, type ZooName } from './architectures.ts'
import { fetchWeights, type FetchWeightsOptions } from './fetch-weights.ts'
import { pretrainedWeights, PRETRAINED_WEIGHTS_NAMES, type PretrainedWeights } from './weights.ts'

/** What a pretrained model is made from, beside the usual ModelOptions. */
export interface PretrainedOptions extends Pick<FetchWeightsOptions, 'cacheDir' | 'baseUrl' | 'indexUrl' | 'quiet' | 'signal'> {
  /**
   * A weight set's name (`'efficientnet_lite0'`, `'resnet50'`, …: its architecture, preprocessing and ImageNet class
   * names come with it), or the path or URL of a `.pth`/`.safetensors` state dict for the architecture given beside
   * it. Names and URLs are fetched into the cache once, checked against their sha256.
   */
  pretrained: string
  /**
   * The classes the model scores. When they differ from the weights' (1 000 for ImageNet), the classifier is
   * replaced by a freshly initialized one of this size and everything else loads from the weights. Defaults to
   * `classNames.length`, else the weights' own.
   */
  classes?: number
  /** `[height, width]` of the input. Defaults to the weights' (224 × 224 for the ImageNet sets). */
  inputSize?: [number, number]
}

/** The architecture and classifier of a pretrained model, as train() needs them for fine-tuning. */
export interface PretrainedPlan {
  spec: ModelSpec
  /** The classifier's tensor prefixes: new when the classes changed, the part that trains first when fine-tuning. */
  head: string[]
  weights?: PretrainedWeights
  /** Whether the classifier was replaced. */
  newHead: boolean
}

/**
 * The last top-level linear layer's tensor prefix: the classifier of a spec that is not from the zoo. The names are
 * the core's (its automatic `fc1`, `fc2`, … for unnamed linear layers), read from the resolved spec rather than
 * derived again here.
 */
function lastLinear(spec: ModelSpec): string {
  const top = callSync('reading the model spec', () => native.resolveSpec(spec)).filter((row) => row.depth === 0)
  const index = top.map((row) => row.kind).lastIndexOf('linear')
  const name = top[index]?.name
  if (name === undefined || name === null)
    throw new InputError('INVALID_OPTION', 'option pretrained: the model has no top-level linear layer to serve as its classifier')
  return name
}

/**
 * The spec with the layer whose tensors are named `name` (`classifier.1`: a child of the sequential `classifier`,
 * by position unless it names itself) changed by `patch`.
 */
function patchLayer(spec: ModelSpec, name: string, patch: (layer: Layer) => Layer): ModelSpec {
  const [first, ...rest] = name.split('.')
  // Top-level layers by the core's names (the automatic ones included), in spec order.
  const topNames = callSync('reading the model spec', () => native.resolveSpec(spec))
    .filter((row) => row.depth === 0)
    .map((row) => row.name)
  const walk = (layer: Layer, path: string[]): Layer => {
    if (path.length === 0) return patch(layer)
    const children = (layer as { layers?: Layer[] }).layers
    if (!children) throw new InputError('INVALID_OPTION', `option pretrained: the classifier ${name} is not in the model`)
    const at = children.findIndex((c, i) => ((c as { name?: string }).name ?? String(i)) === path[0])
    return { ...layer, layers: children.map((c, i) => (i === at ? walk(c, path.slice(1)) : c)) } as Layer
  }
  const layers = spec.layers.map((l, i) => (topNames[i] === first ? walk(l, rest) : l))
  return { ...spec, layers }
}

async function readWeights(file: string): Promise<TorchTensor[]> {
  return file.endsWith('.safetensors') ? readSafetensors(file) : [...(await readTorchStateDict(file)).values()]
}

/**
 * Works out the spec and classifier of a pretrained model (fetching nothing): the weights' architecture unless one
 * is given, at the classes asked for.
 */
export function planPretrained(
  architecture: ModelSpec | ZooName | null | undefined,
  options: PretrainedOptions & { classNames?: string[] },
  sourceClasses?: number,
): PretrainedPlan {
  const weights = pretrainedWeights(options.pretrained)
  const arch = architecture ?? weights?.architecture
  if (!arch) {
    throw new InputError(
      'INVALID_OPTION',
      `option pretrained: ${JSON.stringify(options.pretrained)} is not a named weight set (${PRETRAINED_WEIGHTS_NAMES.join(', ')}); for a file or URL of weights, give the architecture too (a zoo name or a spec)`,
    )
  }
  const fromWeights = weights?.categories.length ?? sourceClasses
  const classes = options.classes ?? options.classNames?.length ?? fromWeights
  if (classes === undefined)
    throw new InputError('INVALID_OPTION', 'option classes: the weights do not say how many classes they score; pass classes')
  if (typeof arch === 'string') {
    if (!isZooName(arch)) throw new InputError('INVALID_OPTION', `option model: unknown architecture ${JSON.stringify(arch)}`)
    const inputSize = options.inputSize ?? ([...(weights?.preprocessing.inputSize ?? ZOO[arch].defaultInputSize)] as [number, number])
    return zeroNewHead({
      spec: zooModel(arch, { classes, inputSize }),
      head: [...ZOO[arch].head],
      weights,
      newHead: fromWeights !== undefined && classes !== fromWeights,
    })
  }
  const head = lastLinear(arch)
  return zeroNewHead({
    spec: patchLayer(arch, head, (l) => ({ ...l, outFeatures: classes }) as Layer),
    head: [head],
    weights,
    newHead: fromWeights !== undefined && classes !== fromWeights,
  })
}

/**
 * A replaced classifier starts at zero, as Big Transfer's fine-tuning does: every class starts equally likely
 * whatever the pretrained features' scale. (The zoo's own classifier init, timm's U(±1/√classes), gives logits of
 * ±20 on ImageNet features with 10 classes: the first epochs go to undoing it.)
 */
function zeroNewHead(plan: PretrainedPlan): PretrainedPlan {
  if (!plan.newHead) return plan
  const spec = plan.head.reduce((s, h) => patchLayer(s, h, (l) => ({ ...l, init: 'zeros' }) as Layer), plan.spec)
  return { ...plan, spec }
}

/** Everything a pretrained model is built from: its spec and options, and the tensors to load into it. */
export interface LoadedPretrained {
  spec: ModelSpec
  modelOptions: ModelOptions
  tensors: TorchTensor[]
  /** Where the weights came from, for error messages. */
  file: string
  /** Globs of the tensors that keep their own values: a replaced classifier, which starts at zero. */
  keep: string[]
  plan: PretrainedPlan
}

/**
 * Fetches and reads the weights of `options.pretrained` and works out the spec and model options to build them into
 * (`Model.fromPretrained` builds and loads).
 */
export async function loadPretrained(
  architecture: ModelSpec | ZooName | null | undefined,
  options: ModelOptions & PretrainedOptions,
): Promise<LoadedPretrained> {
  const file = await fetchWeights(options.pretrained, options)
  const tensors = await readWeights(file)
  const first = planPretrained(architecture, options)
  // A file of weights for a zoo architecture says how many classes it scores through its classifier's shape.
  const headWeight = tensors.find((t) => t.name === `${first.head[0]}.weight`)
  const plan = first.weights ? first : planPretrained(architecture, options, headWeight?.shape[0])
  const w = plan.weights
  const sameClasses = !plan.newHead
  // The model is built plain; its weights are loaded after (a `pretrained` passed on would build it twice).
  const { pretrained: _pretrained, ...plain } = options
  const modelOptions: ModelOptions = {
    ...plain,
    classNames: options.classNames ?? (sameClasses ? w?.categories.slice() : undefined),
    normalization: options.normalization ?? (w ? { mean: [...w.preprocessing.mean], std: [...w.preprocessing.std] } : undefined),
    preprocessing:
      options.preprocessing ??
      (w ? { resizeShorter: w.preprocessing.resizeShorter, interpolation: w.preprocessing.interpolation } : undefined),
  }
  return { spec: plan.spec, modelOptions, tensors, file, keep: plan.newHead ? plan.head.map((h) => `${h}.*`) : [], plan }
}
