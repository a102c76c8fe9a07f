// Model: a network and its optimizer on a device. Build it from a spec, step it, evaluate it, predict with it,
// save and load it. The only holder of the native model handle: every native call goes through `call()`, which
// turns native errors into ConvkitErrors.
import path from 'node:path'
import {
  type AveragingOptions,
  type BindingStep,
  call,
  callSync,
  type LossOptions,
  native,
  type Native,
  type ParamGroup,
  type StepOptions,
} from '../binding.ts'
import { datasetHandle, type TensorDataset } from '../data/tensor-dataset.ts'
import { halfNormalization, type Normalization } from '../data/image-set.ts'
import type { Device } from '../util/device.ts'
import { groupHandle, type ProcessGroup } from '../distributed/process-group.ts'
import { CancelledError, CheckpointError, InputError } from '../errors.ts'
import type { ModelSpec } from './layers.ts'
import { allreduceEvalCounts, metricsFromCounts, type EvalCounts, type EvalMetrics } from './metrics.ts'
import { DEFAULT_THRESHOLD, fitThresholds, multiLabelMetrics } from './multi-label-metrics.ts'
import type { DecodeOptions } from '../data/decode-image.ts'
import { EXPLAIN_METHODS, targetIndices, type Explanation, type ExplainOptions } from '../explain/explanation.ts'
import { prepareImages, rankScores, type ImageInput, type Prediction, type PredictOptions } from '../predict/predict-images.ts'
import { formatSummary, type LayerSummary } from '../report/model-summary.ts'
import { readTorchStateDict, type TorchTensor } from '../weights/torch-checkpoint.ts'
import { loadPretrained, type PretrainedOptions } from '../zoo/pretrained.ts'
import type { ModelOptions, Precision, Preprocessing, Tta } from './model-options.ts'
import { zooModel, type ZooName } from '../zoo/architectures.ts'
import { checkDevice } from '../options/device-option.ts'

export type { ModelOptions, OptimizerOptions, Precision, Preprocessing, Tta } from './model-options.ts'
// Declared once in Rust (crates/core/src/options.rs, crates/node) and generated into native/index.d.cts.
export type { AugmentOptions, AveragingOptions, LossOptions, StepOptions } from '../binding.ts'

/** What one training step reports, measured before its update. */
export type StepResult = BindingStep

/** What makes a model multi-label: the probability above which each class is predicted. */
export interface MultiLabelHead {
  thresholds: number[]
}

export interface LoadOptions {
  /** Defaults to `'auto'`: CUDA when available, else the CPU. */
  device?: Device
  /** As in {@link ModelOptions.channelsLast}. */
  channelsLast?: boolean
  /** Defaults to `'fp32'`. */
  precision?: Precision
  /**
   * Also restore the optimizer (and weight-averaging) state from `<name>.optim.safetensors` beside the checkpoint,
   * to continue training. Defaults to false: prediction needs the weights alone.
   */
  forTraining?: boolean
}

/** One batch of `Model.trainBatches`: the dataset indices of its images, and the step's options. */
export interface TrainBatch {
  indices: Int32Array | readonly number[]
  options?: StepOptions
}

export interface EvaluateOptions {
  /** Which images; all of them when omitted. */
  indices?: Int32Array | readonly number[]
  /** Images per forward pass. Defaults to 500. */
  batchSize?: number
  /** Stops between batches; the promise rejects with a CancelledError. */
  signal?: AbortSignal
  /** Test-time augmentation. Defaults to `'none'`. */
  tta?: Tta
  /** Evaluate the averaged weights when weight averaging is on. Defaults to true. */
  averaged?: boolean
  /**
   * Sum the counts over this group's ranks, each passing its own share of the images (a collective), so every
   * rank gets the metrics of all the shares together. Single-label data only.
   */
  group?: ProcessGroup
  /**
   * Multi-label data: the per-class thresholds the set metrics (F1, precision, recall, exact match) are taken at, or
   * `'fit'` to choose each class's F1-maximising threshold on these images. Defaults to the model's (`multiLabel`),
   * else 0.5.
   */
  thresholds?: readonly number[] | 'fit'
}

export interface EmbedOptions extends Pick<EvaluateOptions, 'indices' | 'batchSize' | 'signal'> {
  /** The layer whose feature map is averaged (a name from `layers()`). Defaults to the last feature map. */
  layer?: string
}

/** One embedding per image. */
export interface Embeddings {
  /** `count × dim` floats, row by row, in the order of the indices asked for. */
  values: Float32Array
  dim: number
  /** The layer whose feature map was averaged. */
  layer: string
}

export interface SaveOptions {
  /** Extra header entries; objects are stored as JSON. */
  metadata?: Record<string, unknown>
  /** Also write the optimizer state beside the weights (`<name>.optim.safetensors`), for resuming. Defaults to true. */
  withOptimizer?: boolean
  /** Write the averaged weights (when weight averaging is on): the ones evaluation scores. Defaults to false. */
  averaged?: boolean
}

/** How `exportOnnx()` writes the file. */
export interface ExportOnnxOptions {
  /**
   * The ONNX operator set. Defaults to 17, the only one written: GELU is spelled out with `Erf` (ONNX's `Gelu`
   * needs opset 20), and every runtime of the last years reads it.
   */
  opset?: 17
  /** Extra `metadata_props` entries; objects are stored as JSON. Keys starting with `convkit.` are ConvKit's. */
  metadata?: Record<string, unknown>
}

export interface LoadWeightsOptions {
  /** Renames a file's keys to the model's (return null to drop a key), where the layouts differ. */
  mapKey?: (key: string) => string | null
  /**
   * Globs over the model's tensor names that keep their own values: the file need not have them and its tensors of
   * those names are ignored (a classifier replaced for fine-tuning, `['fc.*']`). Everything else loads strictly.
   */
  keep?: readonly string[]
}

function toInt32(values: Int32Array | readonly number[], field: string): Int32Array {
  if (values instanceof Int32Array) return values
  const out = Int32Array.from(values)
  const bad = values.findIndex((v, i) => v !== out[i])
  if (bad >= 0) throw new InputError('INVALID_OPTION', `${field}[${bad}]: expected a 32-bit integer, got ${values[bad]}`)
  return out
}

function evaluationBatchSize(options: EvaluateOptions): number {
  const batchSize = options.batchSize ?? 500
  if (!Number.isInteger(batchSize) || batchSize <= 0)
    throw new InputError('INVALID_OPTION', `option batchSize: expected an integer > 0, got ${batchSize}`)
  return batchSize
}

/** The rows of an `n × k` row-major array at `indices`. */
function rowsAt(values: Uint8Array, indices: Int32Array, k: number): Uint8Array {
  const out = new Uint8Array(indices.length * k)
  indices.forEach((i, j) => out.set(values.subarray(i * k, (i + 1) * k), j * k))
  return out
}

function positiveInt(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 1)
    throw new InputError('INVALID_OPTION', `option ${field}: expected an integer >= 1, got ${value}`)
  return value
}

function checkSeed(field: string, seed: number | undefined): void {
  if (seed !== undefined && !(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32)) {
    throw new InputError('INVALID_OPTION', `option ${field}: expected an integer in [0, 2^32), got ${seed}`)
  }
}

/** A training step's indices as Int32, after checking the step's seeds. */
function checkedStep(indices: Int32Array | readonly number[], options: StepOptions): Int32Array {
  checkSeed('batchSeed', options.batchSeed)
  checkSeed('runSeed', options.runSeed)
  return toInt32(indices, 'indices')
}

/** The checkpoint header and ONNX metadata keys, as the core writes them (crates/core/src/metadata.rs). */
const META = native.metadataKeys()

function parseMeta<T>(metadata: Record<string, string>, key: string, file: string): T | undefined {
  const raw = metadata[key]
  if (raw === undefined) return undefined
  try {
    return JSON.parse(raw) as T
  } catch (err) {
    throw new CheckpointError('CORRUPT_CHECKPOINT', `checkpoint ${file}: header entry ${key} is not valid JSON`, { cause: err })
  }
}

interface Extras {
  multiLabel?: MultiLabelHead
  classNames?: string[]
  normalization?: Normalization
  preprocessing?: Preprocessing
  tta?: Tta
  evalInputSize?: [number, number]
}

/**
 * A CNN and its optimizer on one device.
 *
 * @example
 * const model = Model.create(referenceCnn({ classes: 10 }), { seed: 1 })
 * const step = await model.trainBatch(train, [0, 1, 2, 3])
 * const metrics = await model.evaluate(test)
 * await model.save('runs/last.safetensors')
 */
export class Model {
  readonly #native: Native.NativeModel
  /** The spec, every default written out. */
  readonly spec: ModelSpec
  classNames?: string[]
  normalization?: Normalization
  preprocessing?: Preprocessing
  /** The test-time augmentation `predict()` uses unless told otherwise. */
  tta: Tta = 'none'
  #evalInputSize: [number, number] | undefined
  /** The header of the checkpoint this model came from; empty for a new model. */
  readonly metadata: Record<string, string>
  #precision: Precision = 'fp32'
  #multiLabel: MultiLabelHead | undefined

  private constructor(handle: Native.NativeModel, extras: Extras) {
    this.#native = handle
    this.spec = JSON.parse(handle.specJson) as ModelSpec
    this.metadata = handle.metadata
    if (extras.classNames) this.classNames = extras.classNames
    if (extras.normalization) this.normalization = extras.normalization
    if (extras.preprocessing) this.preprocessing = extras.preprocessing
    if (extras.tta) this.tta = extras.tta
    if (extras.evalInputSize) this.setEvalInputSize(extras.evalInputSize)
    if (extras.multiLabel) this.setMultiLabel(extras.multiLabel.thresholds)
  }

  /**
   * Builds a freshly initialized model from a spec or a zoo architecture's name (cheap: it runs synchronously).
   * With `pretrained`, it also fetches and loads weights and returns a Promise: a weight set's name brings its
   * architecture, preprocessing and ImageNet labels; with `classes` (or `classNames`) other than the weights', the
   * classifier is replaced for fine-tuning.
   *
   * @example
   * const imagenet = await Model.create(null, { pretrained: 'efficientnet_lite0' })
   * const mine = await Model.create(null, { pretrained: 'resnet18', classNames: ['cat', 'dog'] })
   * const scratch = Model.create('resnet9', { classes: 10 })
   */
  static create(spec: ModelSpec | ZooName, options?: ModelOptions & { pretrained?: undefined }): Model
  static create(spec: ModelSpec | ZooName | null, options: ModelOptions & PretrainedOptions): Promise<Model>
  static create(spec: ModelSpec | ZooName | null, options: ModelOptions & Partial<PretrainedOptions> = {}): Model | Promise<Model> {
    if (options.pretrained !== undefined) return Model.fromPretrained(spec, options as ModelOptions & PretrainedOptions)
    if (spec === null) throw new InputError('INVALID_OPTION', 'Model.create: expected a spec or a zoo name (null only with pretrained)')
    if (typeof spec === 'string') {
      const classes = options.classes ?? options.classNames?.length
      if (classes === undefined)
        throw new InputError('INVALID_OPTION', `Model.create(${JSON.stringify(spec)}): pass classes (or classNames) for a zoo architecture`)
      spec = zooModel(spec, { classes, inputSize: options.inputSize })
    }
    const device = options.device ?? 'auto'
    checkDevice(device)
    const handle = callSync('creating a model', () =>
      native.NativeModel.create(spec, {
        device,
        optimizer: options.optimizer,
        paramGroups: options.paramGroups,
        seed: options.seed,
        channelsLast: options.channelsLast,
        precision: options.precision,
        labelSmoothing: options.labelSmoothing,
        lossReduction: options.lossReduction,
        dtype: options.dtype,
        classWeights: options.classWeights,
      }),
    )
    const model = new Model(handle, options)
    model.#precision = options.precision ?? 'fp32'
    return model
  }

  /**
   * A model with pretrained weights: a weight set's name brings its architecture (unless `architecture` gives one),
   * preprocessing and ImageNet labels; with `classes` (or `classNames`) other than the weights', the classifier is
   * replaced by a zero-initialized one for fine-tuning and everything else loads strictly.
   *
   * @example
   * const mine = await Model.fromPretrained(null, { pretrained: 'resnet18', classNames: ['cat', 'dog'] })
   */
  static async fromPretrained(architecture: ModelSpec | ZooName | null, options: ModelOptions & PretrainedOptions): Promise<Model> {
    const { spec, modelOptions, tensors, file, keep } = await loadPretrained(architecture, options)
    const model = Model.create(spec, modelOptions)
    await model.loadStateDict(tensors, { source: file, keep })
    return model
  }

  /** Loads a checkpoint written by `save`; with `forTraining`, its optimizer state too when it was saved beside it. */
  static async load(file: string, options: LoadOptions = {}): Promise<Model> {
    const device = options.device ?? 'auto'
    checkDevice(device)
    const handle = await call(`loading ${file}`, () =>
      native.NativeModel.load(file, { device, channelsLast: options.channelsLast, forTraining: options.forTraining }),
    )
    const meta = handle.metadata
    const extras: Extras = {}
    const classNames = parseMeta<string[]>(meta, META.classes, file)
    const normalization = parseMeta<Normalization>(meta, META.normalization, file)
    const preprocessing = parseMeta<Preprocessing>(meta, META.preprocessing, file)
    const tta = parseMeta<Tta>(meta, META.tta, file)
    const evalInputSize = parseMeta<[number, number]>(meta, META.evalInputSize, file)
    const multiLabel = parseMeta<MultiLabelHead>(meta, META.multiLabel, file)
    if (multiLabel) extras.multiLabel = multiLabel
    if (classNames) extras.classNames = classNames
    if (normalization) extras.normalization = normalization
    if (preprocessing) extras.preprocessing = preprocessing
    if (tta) extras.tta = tta
    if (evalInputSize) extras.evalInputSize = evalInputSize
    const model = new Model(handle, extras)
    if (options.precision) model.setPrecision(options.precision)
    return model
  }

  /**
   * The per-class decision thresholds of a multi-label model (each class scored by its own sigmoid), or undefined for
   * a single-label one (one softmax over exclusive classes).
   */
  get multiLabel(): MultiLabelHead | undefined {
    return this.#multiLabel && { thresholds: [...this.#multiLabel.thresholds] }
  }

  /**
   * Makes the model multi-label: predict() and evaluate() score each class with its own sigmoid, and a class is
   * predicted where its probability reaches its threshold (one per class, or one for all; defaults to 0.5). `null`
   * makes it single-label again. Saved in checkpoints and ONNX metadata.
   */
  setMultiLabel(thresholds: number | readonly number[] | null = DEFAULT_THRESHOLD): void {
    if (thresholds === null) {
      callSync('making the model single-label', () => this.#native.setMultiLabel(false))
      this.#multiLabel = undefined
      return
    }
    const list = typeof thresholds === 'number' ? new Array<number>(this.classes).fill(thresholds) : [...thresholds]
    if (list.length !== this.classes || !list.every((t) => Number.isFinite(t) && t >= 0 && t <= 1))
      throw new InputError(
        'INVALID_OPTION',
        `option thresholds: expected one number in [0, 1] per class (${this.classes}), got ${JSON.stringify(thresholds)}`,
      )
    callSync('making the model multi-label', () => this.#native.setMultiLabel(true))
    this.#multiLabel = { thresholds: list }
  }

  /** `[height, width]` that `evaluate()`, `predict()` and ONNX export feed the model: the spec's input unless set. */
  get evalInputSize(): [number, number] {
    return this.#evalInputSize ? [...this.#evalInputSize] : [this.spec.inputShape[1], this.spec.inputShape[2]]
  }

  /**
   * Evaluates and predicts at `[height, width]` instead of the spec's input (`null`: back to it), with the same
   * weights: FixRes's "train at one resolution, test at a higher one" — random-resized crops show objects larger
   * than a centre crop of the same size does, so a network trained on them scores better on a larger view (a
   * whole 224-pixel image against 192-pixel crops: +0.9 points on the fine-tuning bench). Layers must take the
   * size with the weights they have (convolutions and global pooling do; a linear layer after a flatten of a
   * spatial map does not): else an InputError with code `INVALID_OPTION`. Evaluation data must be stored at least
   * this large. Saved in checkpoints.
   *
   * @example
   * model.setEvalInputSize([224, 224]) // trained on 192×192 crops of images stored at 224×224
   */
  setEvalInputSize(size: readonly [number, number] | null): void {
    if (size !== null && !(Array.isArray(size) && size.length === 2 && size.every((d) => Number.isInteger(d) && d >= 1 && d <= 65535))) {
      throw new InputError(
        'INVALID_OPTION',
        `option evalInputSize: expected [height, width], integers in [1, 65535], got ${JSON.stringify(size)}`,
      )
    }
    callSync('setting the evaluation input size', () => this.#native.setEvalInputSize(size ? [...size] : null))
    const same = size && size[0] === this.spec.inputShape[1] && size[1] === this.spec.inputShape[2]
    this.#evalInputSize = size && !same ? [size[0], size[1]] : undefined
  }

  /** The type convolutions and linear layers compute in. */
  get precision(): Precision {
    return this.#precision
  }

  /** Switches the compute type for the following steps, evaluations and predictions; the weights stay fp32. */
  setPrecision(precision: Precision): void {
    callSync('setting the precision', () => this.#native.setPrecision(precision))
    this.#precision = precision
  }

  /** `'cpu'` or `'cuda[:N]'`: where the weights live. */
  get device(): string {
    return this.#native.device
  }

  /** How many classes the model scores. */
  get classes(): number {
    return this.#native.classes
  }

  get paramCount(): number {
    return this.#native.paramCount
  }

  /** Parameters that train now (frozen layers excluded). */
  get trainableParamCount(): number {
    return callSync('reading the model', () => this.#native.trainableParamCount())
  }

  /** Steps the optimizer has taken. */
  get optimizerStep(): number {
    return callSync('reading the optimizer', () => this.#native.optimizerStep())
  }

  /**
   * The learning rate last set, before parameter-group scales: the next `trainBatch` uses it unless given its own.
   * Inside `trainBatches` (and so in `train()`'s `onBatchEnd`) the step after the one just reported is already
   * queued, with its rate and its update; each step's own rate is its report's `lr`.
   */
  get learningRate(): number {
    return callSync('reading the optimizer', () => this.#native.lr())
  }

  /** Changes the learning rate from the next step on. */
  setLearningRate(lr: number): void {
    callSync('setting the learning rate', () => this.#native.setLr(lr))
  }

  /** Replaces the optimizer's parameter groups (their own learning-rate scales and decay) from the next step on. */
  setParamGroups(groups: readonly ParamGroup[]): void {
    callSync('setting parameter groups', () => this.#native.setParamGroups([...groups]))
  }

  /**
   * Freezes (`false`) or unfreezes the parameters whose names match any of `patterns` (globs over names such as
   * `layer4.*`; `*` matches any run of characters). A frozen layer's batch norm keeps its running statistics.
   * Layers the spec froze stay frozen. Returns how many parameters changed.
   *
   * @example
   * model.setTrainable(['*'], false); model.setTrainable(['fc.*'], true) // train the head alone
   */
  setTrainable(patterns: readonly string[], trainable: boolean): number {
    return callSync('freezing parameters', () => this.#native.setTrainable([...patterns], trainable))
  }

  /**
   * Trains with this loss from the next step on: label smoothing, reduction and class weights (one per class, in
   * label order). A checkpoint does not keep them, so set them again on a model loaded to train on.
   *
   * @example
   * model.setLoss({ labelSmoothing: 0.1, classWeights: [0.6, 3] })
   */
  setLoss(options: LossOptions): void {
    callSync('setting the loss', () => this.#native.setLoss(options))
  }

  /**
   * With `frozen`, batch norm layers normalize with their running statistics and leave them unchanged even while
   * their scale and shift train (Keras's advice for fine-tuning: the pretrained statistics stay the ones the network
   * learned against, whatever the batch size).
   */
  setFrozenBatchNormStatistics(frozen: boolean): void {
    callSync('freezing batch norm statistics', () => this.#native.setFrozenBatchNormStatistics(frozen))
  }

  /**
   * Clips each later update's gradients to this global 2-norm, as `torch.nn.utils.clip_grad_norm_(params, maxNorm)`
   * does (with data parallelism, after the ranks' average); `null` turns it off. Not kept in checkpoints: set it again
   * after `Model.load` (train() does).
   *
   * @example
   * model.setGradClipNorm(1.0)
   */
  setGradClipNorm(maxNorm: number | null): void {
    if (maxNorm !== null && !(typeof maxNorm === 'number' && Number.isFinite(maxNorm) && maxNorm > 0))
      throw new InputError('INVALID_OPTION', `option gradClipNorm: expected a number > 0 or null, got ${JSON.stringify(maxNorm)}`)
    callSync('setting gradient clipping', () => this.#native.setGradClipNorm(maxNorm ?? undefined))
  }

  /** Starts weight averaging (EMA or Lookahead) from the current weights, or stops it with `null`. */
  setAveraging(options: AveragingOptions | null): void {
    callSync('setting weight averaging', () => this.#native.setAveraging(options ?? undefined))
  }

  /** Copies the averaged weights into the model for good and stops averaging. */
  async finishAveraging(): Promise<void> {
    await call('finishing weight averaging', () => this.#native.finishAveraging())
  }

  /**
   * Initializes the convolution at `layer` (its tensor prefix; it must be the first layer) as a patch-whitening
   * filter bank from the dataset images at `indices`: its filters become the eigenvectors of the images' patch
   * second moment scaled by 1/√(λ + eps), largest first, with their negations when it has twice as many filters as
   * patch dimensions (airbench's initialization). Returns the eigenvalues, largest first.
   */
  async initWhitening(data: TensorDataset, indices: Int32Array | readonly number[], layer: string, eps = 5e-4): Promise<number[]> {
    return call('whitening the first layer', () => this.#native.initWhitening(datasetHandle(data), toInt32(indices, 'indices'), layer, eps))
  }

  /** Each layer, depth first, with its input and output shapes, parameters and whether it trains now. */
  layers(): LayerSummary[] {
    return callSync('summarizing the model', () => this.#native.layers())
  }

  /**
   * A Keras-style table: each layer's type, output shape and parameter count, nested blocks indented, the totals,
   * and the size of the weights.
   *
   * @example
   * console.log(model.summary())
   */
  summary(): string {
    return formatSummary(this.layers(), this.spec.inputShape)
  }

  /**
   * One training step (forward, loss, backward, optimizer, weight averaging) on the dataset images at `indices`,
   * with this step's learning rate and augmentation.
   */
  async trainBatch(data: TensorDataset, indices: Int32Array | readonly number[], options: StepOptions = {}): Promise<StepResult> {
    const index = checkedStep(indices, options)
    return call('training step', () => this.#native.trainBatch(datasetHandle(data), index, options))
  }

  /**
   * Training steps on the dataset, one per batch of `batches`, yielding each step's report in order: the same
   * steps and reports as `trainBatch` on each batch in turn, but pipelined, so a GPU never waits for the host
   * between steps: once step b is queued, batch b + 1 is taken from `batches` and queued too, and only then is
   * step b's report read back (which waits for the device). So while a report is being handled the model already
   * holds the next step's update, and a consumer that stops early still trains the one step already queued.
   *
   * @example
   * for await (const step of model.trainBatches(train, [{ indices: [0, 1, 2, 3] }, { indices: [4, 5, 6, 7] }])) {
   *   console.log(step.loss)
   * }
   */
  async *trainBatches(data: TensorDataset, batches: Iterable<TrainBatch>): AsyncGenerator<StepResult> {
    // async, so that a bad batch rejects instead of throwing before the report of the previous one is asked for.
    const launch = async ({ indices, options = {} }: TrainBatch): Promise<number> => {
      const index = checkedStep(indices, options)
      return call('training step', () => this.#native.launchTrainBatch(datasetHandle(data), index, options))
    }
    const finish = (id: number) => call('training step', () => this.#native.finishTrainBatch(id))
    const source = batches[Symbol.iterator]()
    // The launched step whose report is read next; the native side keeps it under this id until then.
    let queued: number | undefined
    try {
      let next = source.next()
      if (next.done) return
      queued = await launch(next.value)
      while (queued !== undefined) {
        const current: number = queued
        next = source.next()
        // Queued before the report below is asked for: the libtorch thread takes calls in the order they are made.
        const launched = next.done ? undefined : launch(next.value)
        const settled: [PromiseSettledResult<StepResult>, PromiseSettledResult<number | undefined>] = await Promise.allSettled([
          finish(current),
          launched,
        ])
        const [report, queuing] = settled
        queued = queuing.status === 'fulfilled' ? queuing.value : undefined
        if (report.status === 'rejected') throw report.reason
        // A step that trained is reported even when the next one could not be queued.
        yield report.value
        if (queuing.status === 'rejected') throw queuing.reason
      }
    } finally {
      // Stopped early (or failed): read back the step still queued, and let `batches` clean up.
      if (queued !== undefined) await finish(queued).catch(() => {})
      source.return?.()
    }
  }

  /**
   * One training step on uint8 images `[N, C, H, W]` (of `shape`, at least the model's input size) sent from
   * JavaScript, as a streamed batch arrives: normalized with `normalization` (the model's by default) and augmented
   * on the device as `options` says.
   */
  async trainBatchPixels(
    pixels: Uint8Array,
    labels: Int32Array | readonly number[],
    shape: readonly [number, number, number],
    options: StepOptions & { normalization?: Normalization } = {},
  ): Promise<StepResult> {
    checkSeed('batchSeed', options.batchSeed)
    checkSeed('runSeed', options.runSeed)
    const norm = options.normalization ?? this.normalization ?? halfNormalization(shape[0])
    const { normalization: _n, ...step } = options
    return call('training step', () =>
      this.#native.trainBatchPixels(pixels, toInt32(labels, 'labels'), [...shape], norm.mean, norm.std, step),
    )
  }

  /** One training step on normalized floats `[N, C, H, W]` and their labels, sent from JavaScript. */
  async trainBatchFloats(pixels: Float32Array, labels: Int32Array | readonly number[]): Promise<StepResult> {
    return call('training step', () => this.#native.trainBatchFloats(pixels, toInt32(labels, 'labels')))
  }

  /**
   * Loss, top-1, top-5, per-class top-1 and the confusion matrix, computed on the device. For multi-label data
   * (`data.targets`), the metrics of `multiLabelMetrics` (mAP, F1, exact match) at `options.thresholds`.
   */
  async evaluate(data: TensorDataset, options: EvaluateOptions = {}): Promise<EvalMetrics> {
    if (data.targets) return this.evaluateMultiLabel(data, data.targets, options)
    return metricsFromCounts(await this.evaluateCounts(data, options), data.classes)
  }

  private async evaluateMultiLabel(data: TensorDataset, targets: Uint8Array, options: EvaluateOptions): Promise<EvalMetrics> {
    if (options.group)
      throw new InputError(
        'INVALID_OPTION',
        'option group: multi-label evaluation runs in one process (evaluate each share and gather the probabilities)',
      )
    const indices = options.indices ? toInt32(options.indices, 'indices') : null
    const scores = await this.cancellable('evaluation', options, (token) =>
      call('evaluation', () =>
        this.#native.evaluateMultiLabel(
          datasetHandle(data),
          indices,
          evaluationBatchSize(options),
          options.tta,
          options.averaged ?? true,
          token,
        ),
      ),
    )
    const k = data.classes.length
    const n = Number(scores.count)
    const picked = indices ? rowsAt(targets, indices, k) : targets
    const thresholds =
      options.thresholds === 'fit'
        ? fitThresholds(scores.probabilities, picked, n, k)
        : (options.thresholds ?? this.#multiLabel?.thresholds ?? new Array<number>(k).fill(DEFAULT_THRESHOLD))
    return multiLabelMetrics(scores.probabilities, picked, n, data.classes, scores.lossSum, thresholds)
  }

  /** Runs `work` with a native cancel token that `options.signal` sets. */
  private async cancellable<T>(
    what: string,
    options: { signal?: AbortSignal },
    work: (token: Native.CancelToken) => Promise<T>,
  ): Promise<T> {
    const signal = options.signal
    if (signal?.aborted) throw new CancelledError('CANCELLED', `${what}: cancelled before it started`, { cause: signal.reason })
    const token = new native.CancelToken()
    const onAbort = () => token.cancel()
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      return await work(token)
    } finally {
      signal?.removeEventListener('abort', onAbort)
    }
  }

  /**
   * The counts that {@link Model.evaluate} derives its metrics from. Counts of disjoint image sets add up
   * (`addEvalCounts`), which is how a set too large to hold is evaluated a part at a time.
   */
  async evaluateCounts(data: TensorDataset, options: EvaluateOptions = {}): Promise<EvalCounts> {
    if (data.targets) throw new InputError('INVALID_OPTION', 'evaluateCounts: multi-label data has no counts to add up; use evaluate()')
    const batchSize = evaluationBatchSize(options)
    const indices = options.indices ? toInt32(options.indices, 'indices') : null
    const counts = await this.cancellable('evaluation', options, (token) =>
      call('evaluation', () =>
        this.#native.evaluate(datasetHandle(data), indices, batchSize, options.tta, options.averaged ?? true, token),
      ),
    )
    return options.group ? await allreduceEvalCounts(options.group, counts) : counts
  }

  /**
   * Embeddings of dataset images, for comparing them by what the network sees: the spatial mean of a layer's feature
   * map (by default the last one, which feeds the classifier), in evaluation mode. Images stored at another size
   * than the model's input are resized to it bilinearly. `convkit inspect` finds near-duplicates and label errors
   * with a pretrained network's.
   *
   * @example
   * const net = await Model.create(null, { pretrained: 'efficientnet_lite0', inputSize: [64, 64] })
   * const { values, dim } = await net.embed(await TensorDataset.create(set, { normalization: net.normalization }))
   */
  async embed(data: TensorDataset, options: EmbedOptions = {}): Promise<Embeddings> {
    const indices = options.indices ? toInt32(options.indices, 'indices') : Int32Array.from({ length: data.length }, (_, i) => i)
    const e = await this.cancellable('embedding', options, (token) =>
      call('embedding', () => this.#native.embed(datasetHandle(data), indices, evaluationBatchSize(options), options.layer, token)),
    )
    return { values: e.values, dim: Number(e.dim), layer: e.layer }
  }

  /**
   * Data-parallel training: from now on each training step averages the gradients over `group`'s ranks between
   * backward and the update (sums in buckets of at most `bucketMb` MiB, then divides by the world size), as
   * PyTorch's DistributedDataParallel does. With `syncBatchNorm`, batch norms that learn normalize with the
   * statistics of every rank's batch together (`torch.nn.SyncBatchNorm`: one all-reduce in each one's forward and
   * one in its backward); without it each rank uses its own batch's, as DDP does by default. Pass `null` to train
   * alone again. Start from equal weights on every rank: see {@link Model.broadcastWeights}.
   */
  attachProcessGroup(group: ProcessGroup | null, options: { bucketMb?: number; syncBatchNorm?: boolean } = {}): void {
    callSync('attaching the process group', () =>
      this.#native.attachProcessGroup(group ? groupHandle(group) : null, options.bucketMb, options.syncBatchNorm),
    )
  }

  /** Copies rank `root`'s weights and buffers into this model on every rank of `group` (a collective). */
  async broadcastWeights(group: ProcessGroup, root = 0): Promise<void> {
    await call('broadcasting the weights', () => groupHandle(group).broadcastModel(this.#native, root))
  }

  /**
   * Predicts the class of each image: paths, encoded bytes or raw pixels, any format and size sharp reads.
   * Images are resized and converted to the model's input and normalized as in training; arrays run in
   * batches, one native call per batch.
   *
   * @example
   * const [{ label, probability, topK }] = await model.predict(['cat.png'], { topK: 3 })
   */
  async predict(images: readonly ImageInput[], options: PredictOptions = {}): Promise<Prediction[]> {
    if (!Array.isArray(images)) {
      throw new InputError(
        'INVALID_OPTION',
        `model.predict(images): expected an array of images, got ${typeof images}; for one image, pass [image] or call predict(image, modelPath)`,
      )
    }
    const k = this.topK(options.topK)
    const batchSize = positiveInt(options.batchSize ?? 512, 'batchSize')
    const decode = this.imageDecoding()
    const names = this.classNames ?? []
    const results: Prediction[] = []
    for (let start = 0; start < images.length; start += batchSize) {
      const batch = images.slice(start, start + batchSize)
      const pixels = await prepareImages(batch, start, decode)
      const probs = await this.predictPixels(pixels, batch.length, { tta: options.tta })
      for (const row of probs) results.push(rankScores(row, names, k, this.#multiLabel?.thresholds))
    }
    return results
  }

  /**
   * Heatmaps of where the network found the evidence for a class (Grad-CAM): for each image, the predicted class or
   * the one `targets` names. Images are prepared as for predict().
   *
   * @example
   * const [e] = await model.explain(['cat.png'])
   * fs.writeFileSync('cat.gradcam.png', await heatmapOverlay(e))
   */
  async explain(images: readonly ImageInput[], options: ExplainOptions = {}): Promise<Explanation[]> {
    if (!Array.isArray(images))
      throw new InputError(
        'INVALID_OPTION',
        `model.explain(images): expected an array of images, got ${typeof images}; for one image, pass [image]`,
      )
    const k = this.topK(options.topK)
    const batchSize = positiveInt(options.batchSize ?? 32, 'batchSize')
    const targets = targetIndices(options.targets, images.length, this.classNames ?? [], this.classes)
    const decode = this.imageDecoding()
    const results: Explanation[] = []
    for (let start = 0; start < images.length; start += batchSize) {
      const batch = images.slice(start, start + batchSize)
      const pixels = await prepareImages(batch, start, decode)
      results.push(
        ...(await this.explainPixels(pixels, batch.length, {
          ...options,
          topK: k,
          targets: targets && Array.from(targets.subarray(start, start + batchSize)),
        })),
      )
    }
    return results
  }

  /** [explain()](#explain) for `count` uint8 images `[N, C, H, W]` already at the model's evaluation input size. */
  async explainPixels(pixels: Uint8Array, count: number, options: ExplainOptions = {}): Promise<Explanation[]> {
    const method = options.method ?? 'gradcam'
    if (!EXPLAIN_METHODS.includes(method))
      throw new InputError('INVALID_OPTION', `option method: expected one of ${EXPLAIN_METHODS.join(', ')}, got ${String(method)}`)
    const names = this.classNames ?? []
    const targets = targetIndices(options.targets, count, names, this.classes)
    const k = this.topK(options.topK)
    const norm = this.normalization ?? halfNormalization(this.spec.inputShape[0])
    const cam = await call('explanation', () => this.#native.explainPixels(pixels, count, norm.mean, norm.std, targets, options.layer))
    const [height, width] = [Number(cam.height), Number(cam.width)]
    const channels = this.spec.inputShape[0]
    const plane = height * width
    const probs = this.rows(cam.probabilities, count)
    return probs.map((row, i) => {
      const target = cam.targets[i]!
      return {
        heatmap: cam.heatmaps.subarray(i * plane, (i + 1) * plane),
        height,
        width,
        target: { label: names[target] ?? String(target), index: target, probability: row[target]! },
        prediction: rankScores(row, names, k, this.#multiLabel?.thresholds),
        layer: cam.layer,
        image: pixels.subarray(i * channels * plane, (i + 1) * channels * plane),
        channels,
      }
    })
  }

  /** How predict() and explain() turn images into the model's input. */
  private imageDecoding(): DecodeOptions {
    const channels = this.spec.inputShape[0]
    if (channels !== 1 && channels !== 3)
      throw new InputError('BAD_SHAPE', `model input has ${channels} channels; prediction from images supports 1 or 3`)
    return {
      size: [...this.evalInputSize] as [number, number],
      channels,
      resizeShorter: this.preprocessing?.resizeShorter,
      resize: this.preprocessing?.resize,
      interpolation: this.preprocessing?.interpolation,
    }
  }

  private topK(requested: number | undefined): number {
    const k = Math.min(requested ?? 5, this.classes)
    if (!Number.isInteger(k) || k < 1) throw new InputError('INVALID_OPTION', `option topK: expected an integer >= 1, got ${requested}`)
    return k
  }

  /**
   * Class probabilities for `count` uint8 images `[N, C, H, W]` at the model's evaluation input size, normalized as in
   * training: one Float32Array of `classes` per image.
   */
  async predictPixels(pixels: Uint8Array, count: number, options: { tta?: Tta } = {}): Promise<Float32Array[]> {
    const norm = this.normalization ?? halfNormalization(this.spec.inputShape[0])
    const probs = await call('prediction', () => this.#native.predictPixels(pixels, count, norm.mean, norm.std, options.tta ?? this.tta))
    return this.rows(probs, count)
  }

  /**
   * Class probabilities (or, with `logits`, the raw scores) for `count` normalized images `[N, C, H, W]`: one
   * Float32Array of `classes` per image.
   */
  async predictFloats(pixels: Float32Array, count: number, options: { tta?: Tta; logits?: boolean } = {}): Promise<Float32Array[]> {
    const out = await call('prediction', () => this.#native.predictFloats(pixels, count, options.tta ?? 'none', options.logits ?? false))
    return this.rows(out, count)
  }

  private rows(flat: Float32Array, count: number): Float32Array[] {
    const k = this.classes
    return Array.from({ length: count }, (_, i) => flat.subarray(i * k, (i + 1) * k))
  }

  /**
   * Writes the weights as safetensors (PyTorch's tensor names), with spec, class names, normalization and
   * preprocessing in the header. The write is atomic: a crash leaves the previous file or the new one, never a
   * truncated one.
   */
  async save(file: string, options: SaveOptions = {}): Promise<void> {
    const metadata: Record<string, string> = {}
    for (const [key, value] of Object.entries(options.metadata ?? {})) {
      if (key === META.spec) throw new InputError('INVALID_OPTION', `metadata key ${key} is reserved for the model spec`)
      metadata[key] = typeof value === 'string' ? value : JSON.stringify(value)
    }
    if (this.classNames) metadata[META.classes] = JSON.stringify(this.classNames)
    if (this.normalization) metadata[META.normalization] = JSON.stringify(this.normalization)
    if (this.preprocessing) metadata[META.preprocessing] = JSON.stringify(this.preprocessing)
    if (this.tta !== 'none') metadata[META.tta] = JSON.stringify(this.tta)
    if (this.#evalInputSize) metadata[META.evalInputSize] = JSON.stringify(this.#evalInputSize)
    if (this.#multiLabel) metadata[META.multiLabel] = JSON.stringify(this.#multiLabel)
    await call(`saving ${file}`, () => this.#native.save(file, metadata, options.withOptimizer ?? true, options.averaged ?? false))
  }

  /**
   * Writes the model as an ONNX file for onnxruntime (Node, web, Python, C++) and other ONNX runtimes: opset 17,
   * input `input` (float32 `[N, C, H, W]`, any batch size N), output `logits` (`[N, classes]`, before softmax).
   * `metadata_props` say how to prepare an image: `convkit.input_shape` (`[C, H, W]`, at `evalInputSize`), `convkit.normalization`
   * (`{ mean, std }` per channel, on pixels scaled to [0, 1]), `convkit.classes` (the class names, as JSON) and
   * `convkit.preprocessing` when set; `convkit.version` says which ConvKit wrote it. A multi-label model adds
   * `convkit.multi_label` (`{ thresholds }`: apply a sigmoid to each logit and predict the classes at or above their threshold). Test-time augmentation is not
   * part of the graph. The write is atomic. A layer with no ONNX form (an adaptive pool whose windows are uneven) is
   * a SpecError with code `NOT_EXPORTABLE` naming the layer.
   *
   * @example
   * await model.exportOnnx('model.onnx')
   * // onnxruntime-node: const session = await InferenceSession.create('model.onnx')
   * // const { logits } = await session.run({ input: new Tensor('float32', pixels, [1, 3, 32, 32]) })
   */
  async exportOnnx(file: string, options: ExportOnnxOptions = {}): Promise<void> {
    if (options.opset !== undefined && options.opset !== 17) {
      throw new InputError('INVALID_OPTION', `option opset: expected 17, got ${JSON.stringify(options.opset)}`)
    }
    const metadata: Record<string, string> = {}
    for (const [key, value] of Object.entries(options.metadata ?? {})) {
      if (key.startsWith('convkit.'))
        throw new InputError('INVALID_OPTION', `option metadata: key ${key} is reserved for ConvKit's own entries`)
      metadata[key] = typeof value === 'string' ? value : JSON.stringify(value)
    }
    metadata[META.inputShape] = JSON.stringify([this.spec.inputShape[0], ...this.evalInputSize])
    metadata[META.normalization] = JSON.stringify(this.normalization ?? halfNormalization(this.spec.inputShape[0]))
    if (this.classNames) metadata[META.classes] = JSON.stringify(this.classNames)
    if (this.preprocessing) metadata[META.preprocessing] = JSON.stringify(this.preprocessing)
    if (this.#multiLabel) metadata[META.multiLabel] = JSON.stringify(this.#multiLabel)
    await call(`exporting ${file}`, () => this.#native.exportOnnx(file, metadata))
  }

  /**
   * Loads weights alone into this model, as `load_state_dict(strict=True)` does: a safetensors file (such as
   * `safetensors.torch.save_file(model.state_dict(), …)`) or a PyTorch `.pth`/`.pt` file (zip or legacy format,
   * read without running anything). A mismatch lists every missing, unexpected and mis-shaped key.
   */
  async loadWeights(file: string, options: LoadWeightsOptions = {}): Promise<void> {
    if (path.extname(file) === '.safetensors' && !options.mapKey && !options.keep?.length) {
      await call(`loading weights from ${file}`, () => this.#native.loadWeights(file))
      return
    }
    const tensors = path.extname(file) === '.safetensors' ? await this.safetensorsAsTorch(file) : await readTorchStateDict(file)
    await this.loadStateDict(tensors, { ...options, source: file })
  }

  /** Loads a state dict of raw tensors (as `readTorchStateDict` returns them) into this model, strictly. */
  async loadStateDict(
    tensors: ReadonlyMap<string, TorchTensor> | readonly TorchTensor[],
    options: LoadWeightsOptions & { source?: string } = {},
  ): Promise<void> {
    const list = tensors instanceof Map ? [...tensors.values()] : [...(tensors as readonly TorchTensor[])]
    const mapped: Native.BindingTensor[] = []
    for (const t of list) {
      const name = options.mapKey ? options.mapKey(t.name) : t.name
      if (name !== null) mapped.push({ name, dtype: t.dtype, shape: t.shape, data: t.data })
    }
    const source = options.source ?? '(a state dict)'
    await call(`loading weights from ${source}`, () =>
      this.#native.loadStateDict(mapped, source, options.keep ? [...options.keep] : undefined),
    )
  }

  private async safetensorsAsTorch(file: string): Promise<TorchTensor[]> {
    const { readSafetensors } = await import('../weights/safetensors-file.ts')
    return readSafetensors(file)
  }
}
