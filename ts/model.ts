// Model: a CNN and its optimizer on a device. Build it from a spec, step it, evaluate it, save and load it.
import { call, callSync, native, type Native } from './binding.ts'
import type { TensorDataset } from './data/tensor-dataset.ts'
import type { Normalization } from './data/image-set.ts'
import type { Device } from './device.ts'
import { CancelledError, CheckpointError, InputError } from './errors.ts'
import { metricsFromCounts, type EvalMetrics } from './metrics.ts'
import { predictWith, type ImageInput, type Prediction, type PredictOptions } from './predict-images.ts'
import { formatSummary } from './report/model-summary.ts'
import type { ModelSpec } from './spec.ts'

/** Adam with PyTorch's defaults unless told otherwise. */
export interface AdamOptions {
  type: 'adam' | 'adamw'
  /** Defaults to 1e-3. */
  lr?: number
  /** Defaults to 0.9. */
  beta1?: number
  /** Defaults to 0.999. */
  beta2?: number
  /** Defaults to 1e-8. */
  eps?: number
  /** L2 penalty for adam, decoupled decay for adamw. Defaults to 0 (adam) or 0.01 (adamw). */
  weightDecay?: number
}

export interface SgdOptions {
  type: 'sgd'
  /** Defaults to 1e-2. */
  lr?: number
  /** Defaults to 0. */
  momentum?: number
  /** Defaults to 0. */
  dampening?: number
  /** Defaults to false. */
  nesterov?: boolean
  /** Defaults to 0. */
  weightDecay?: number
}

export type OptimizerOptions = AdamOptions | SgdOptions

/**
 * The type convolutions and linear layers compute in. `'bf16'` does what PyTorch's autocast does for these
 * layers: bfloat16 copies of inputs and weights, fp32 weights trained and saved, fp32 logits, loss and softmax.
 */
export type Precision = 'fp32' | 'bf16'

export interface ModelOptions {
  /** Defaults to `'auto'`: CUDA when available, else the CPU. */
  device?: Device
  /** Defaults to `{ type: 'adam', lr: 1e-3 }`. */
  optimizer?: OptimizerOptions
  /** Seeds libtorch before the weights are drawn, so two models with one seed start equal. */
  seed?: number
  /** Run convolutions in channels_last memory order. Defaults to true on the CPU (about 20 % faster there, see bench/RESULTS.md), false on CUDA. */
  channelsLast?: boolean
  /** Defaults to `'fp32'`. */
  precision?: Precision
  /** Class names, saved in checkpoints so predictions can be named. */
  classNames?: string[]
  /** The normalization the training data used, saved in checkpoints so prediction repeats it. */
  normalization?: Normalization
}

export interface LoadOptions {
  /** Defaults to `'auto'`: CUDA when available, else the CPU. */
  device?: Device
  /** As in {@link ModelOptions.channelsLast}. */
  channelsLast?: boolean
  /** Defaults to `'fp32'`. */
  precision?: Precision
}

export interface StepResult {
  /** Mean cross-entropy of the batch, before the update. */
  loss: number
  /** Images the model got right, before the update. */
  correct: number
  count: number
}

export interface EvaluateOptions {
  /** Which images; all of them when omitted. */
  indices?: Int32Array | readonly number[]
  /** Images per forward pass. Defaults to 500. */
  batchSize?: number
  /** Stops between batches; the promise rejects with a CancelledError. */
  signal?: AbortSignal
}

export interface SaveOptions {
  /** Extra header entries; objects are stored as JSON. */
  metadata?: Record<string, unknown>
  /** Also write the optimizer state beside the weights (`<name>.optim.safetensors`), for resuming. Defaults to true. */
  withOptimizer?: boolean
}

/** One row of a model summary. */
export interface LayerSummary {
  kind: string
  name?: string
  inputShape: number[]
  outputShape: number[]
  params: number
}

const DEVICE = /^(auto|cpu|cuda(:\d+)?)$/

function checkDevice(device: string): void {
  if (!DEVICE.test(device)) throw new InputError('INVALID_OPTION', `option device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got ${JSON.stringify(device)}`)
}

function optimizerJson(options: OptimizerOptions | undefined): string {
  const opt = options ?? { type: 'adam' }
  if (opt.type !== 'adam' && opt.type !== 'adamw' && opt.type !== 'sgd') {
    throw new InputError('INVALID_OPTION', `option optimizer.type: expected 'adam', 'adamw' or 'sgd', got ${JSON.stringify((opt as { type: unknown }).type)}`)
  }
  return JSON.stringify({ ...opt, lr: opt.lr ?? (opt.type === 'sgd' ? 1e-2 : 1e-3) })
}

function toInt32(values: Int32Array | readonly number[], field: string): Int32Array {
  if (values instanceof Int32Array) return values
  const out = Int32Array.from(values)
  const bad = values.findIndex((v, i) => v !== out[i])
  if (bad >= 0) throw new InputError('INVALID_OPTION', `${field}[${bad}]: expected a 32-bit integer, got ${values[bad]}`)
  return out
}

const META_CLASSES = 'convkit.classes'
const META_NORMALIZATION = 'convkit.normalization'
const META_SPEC = 'convkit.spec'

function parseMeta<T>(metadata: Record<string, string>, key: string, path: string): T | undefined {
  const raw = metadata[key]
  if (raw === undefined) return undefined
  try {
    return JSON.parse(raw) as T
  } catch (err) {
    throw new CheckpointError('CORRUPT_CHECKPOINT', `checkpoint ${path}: header entry ${key} is not valid JSON`, { cause: err })
  }
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
  readonly native: Native.NativeModel
  readonly spec: ModelSpec
  classNames?: string[]
  normalization?: Normalization
  /** The header of the checkpoint this model came from; empty for a new model. */
  readonly metadata: Record<string, string>
  #precision: Precision = 'fp32'

  private constructor(handle: Native.NativeModel, extras: { classNames?: string[]; normalization?: Normalization }) {
    this.native = handle
    this.spec = JSON.parse(handle.specJson) as ModelSpec
    this.metadata = handle.metadata
    if (extras.classNames) this.classNames = extras.classNames
    if (extras.normalization) this.normalization = extras.normalization
  }

  /** Builds a freshly initialized model from a spec. Cheap: it runs synchronously. */
  static create(spec: ModelSpec, options: ModelOptions = {}): Model {
    const device = options.device ?? 'auto'
    checkDevice(device)
    const handle = callSync('creating a model', () =>
      native.NativeModel.create(JSON.stringify(spec), {
        device,
        optimizerJson: optimizerJson(options.optimizer),
        seed: options.seed,
        channelsLast: options.channelsLast,
      }),
    )
    const extras: { classNames?: string[]; normalization?: Normalization } = {}
    if (options.classNames) extras.classNames = options.classNames
    if (options.normalization) extras.normalization = options.normalization
    const model = new Model(handle, extras)
    if (options.precision) model.setPrecision(options.precision)
    return model
  }

  /** Loads a checkpoint written by `save`, with its optimizer state when that was saved beside it. */
  static async load(path: string, options: LoadOptions = {}): Promise<Model> {
    const device = options.device ?? 'auto'
    checkDevice(device)
    const handle = await call(`loading ${path}`, () => native.NativeModel.load(path, device, options.channelsLast))
    const meta = handle.metadata
    const extras: { classNames?: string[]; normalization?: Normalization } = {}
    const classNames = parseMeta<string[]>(meta, META_CLASSES, path)
    const normalization = parseMeta<Normalization>(meta, META_NORMALIZATION, path)
    if (classNames) extras.classNames = classNames
    if (normalization) extras.normalization = normalization
    const model = new Model(handle, extras)
    if (options.precision) model.setPrecision(options.precision)
    return model
  }

  /** The type convolutions and linear layers compute in. */
  get precision(): Precision {
    return this.#precision
  }

  /** Switches the compute type for the following steps, evaluations and predictions; the weights stay fp32. */
  setPrecision(precision: Precision): void {
    callSync('setting the precision', () => this.native.setPrecision(precision))
    this.#precision = precision
  }

  /** `'cpu'` or `'cuda[:N]'`: where the weights live. */
  get device(): string {
    return this.native.device
  }

  /** How many classes the model scores. */
  get classes(): number {
    return this.native.classes
  }

  get paramCount(): number {
    return this.native.paramCount
  }

  /** Steps the optimizer has taken. */
  get optimizerStep(): number {
    return callSync('reading the optimizer', () => this.native.optimizerStep())
  }

  /** Changes the learning rate from the next step on. */
  setLearningRate(lr: number): void {
    callSync('setting the learning rate', () => this.native.setLr(lr))
  }

  /** Each layer with its input and output shapes and parameter count. */
  layers(): LayerSummary[] {
    return callSync('summarizing the model', () => native.resolveSpec(this.native.specJson)).map((l) => {
      const row: LayerSummary = { kind: l.kind, inputShape: l.inputShape, outputShape: l.outputShape, params: l.params }
      if (l.name != null) row.name = l.name
      return row
    })
  }

  /**
   * A Keras-style table: each layer's type, output shape and parameter count, the total, and the size of the weights.
   *
   * @example
   * console.log(model.summary())
   */
  summary(): string {
    return formatSummary(this.layers(), this.spec.inputShape)
  }

  /**
   * One training step (forward, cross-entropy, backward, optimizer) on the dataset images at `indices`.
   * With `augmentSeed` (a 32-bit unsigned integer), each image is randomly cropped from a 4-pixel zero padding
   * and flipped left-right, the draws fixed by the seed.
   */
  async trainBatch(data: TensorDataset, indices: Int32Array | readonly number[], options: { augmentSeed?: number } = {}): Promise<StepResult> {
    const index = toInt32(indices, 'indices')
    const seed = options.augmentSeed
    if (seed !== undefined && !(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32)) {
      throw new InputError('INVALID_OPTION', `option augmentSeed: expected an integer in [0, 2^32), got ${seed}`)
    }
    return call('training step', () => this.native.trainBatch(data.native, index, seed))
  }

  /** One training step on normalized floats `[N, C, H, W]` and their labels, sent from JavaScript. */
  async trainBatchFloats(pixels: Float32Array, labels: Int32Array | readonly number[]): Promise<StepResult> {
    return call('training step', () => this.native.trainBatchFloats(pixels, toInt32(labels, 'labels')))
  }

  /** Loss, top-1, top-5, per-class top-1 and the confusion matrix, computed on the device. */
  async evaluate(data: TensorDataset, options: EvaluateOptions = {}): Promise<EvalMetrics> {
    const batchSize = options.batchSize ?? 500
    if (!Number.isInteger(batchSize) || batchSize <= 0) {
      throw new InputError('INVALID_OPTION', `option batchSize: expected an integer > 0, got ${batchSize}`)
    }
    const signal = options.signal
    if (signal?.aborted) throw new CancelledError('CANCELLED', 'evaluation: cancelled before it started', { cause: signal.reason })
    const token = new native.CancelToken()
    const onAbort = () => token.cancel()
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      const indices = options.indices ? toInt32(options.indices, 'indices') : null
      const counts = await call('evaluation', () => this.native.evaluate(data.native, indices, batchSize, token))
      return metricsFromCounts(counts, data.classes)
    } finally {
      signal?.removeEventListener('abort', onAbort)
    }
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
    return predictWith(this, images, options)
  }

  /** Class probabilities for `count` normalized images `[N, C, H, W]`: one Float32Array of `classes` per image. */
  async predictFloats(pixels: Float32Array, count: number): Promise<Float32Array[]> {
    const probs = await call('prediction', () => this.native.predictFloats(pixels, count))
    const k = this.classes
    return Array.from({ length: count }, (_, i) => probs.subarray(i * k, (i + 1) * k))
  }

  /**
   * Writes the weights as safetensors (PyTorch's tensor names), with spec, class names and normalization in the
   * header. The write is atomic: a crash leaves the previous file or the new one, never a truncated one.
   */
  async save(path: string, options: SaveOptions = {}): Promise<void> {
    const metadata: Record<string, string> = {}
    for (const [key, value] of Object.entries(options.metadata ?? {})) {
      if (key === META_SPEC) throw new InputError('INVALID_OPTION', `metadata key ${key} is reserved for the model spec`)
      metadata[key] = typeof value === 'string' ? value : JSON.stringify(value)
    }
    if (this.classNames) metadata[META_CLASSES] = JSON.stringify(this.classNames)
    if (this.normalization) metadata[META_NORMALIZATION] = JSON.stringify(this.normalization)
    await call(`saving ${path}`, () => this.native.save(path, metadata, options.withOptimizer ?? true))
  }

  /** Loads weights alone, such as a PyTorch `state_dict` saved with `safetensors.torch.save_file`, into this model. */
  async loadWeights(path: string): Promise<void> {
    await call(`loading weights from ${path}`, () => this.native.loadWeights(path))
  }
}
