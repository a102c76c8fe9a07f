// TensorBoard: writes each epoch's metrics, the test confusion matrix and the training samples as TensorBoard event files.
import path from 'node:path'
import { InputError } from '../errors.ts'
import type { SummaryImage, SummaryValue } from '../tensorboard/event-proto.ts'
import { EventFileWriter } from '../tensorboard/event-file-writer.ts'
import { confusionPng, summaryImage } from '../tensorboard/images.ts'
import type { Callback, EpochLogs, EpochRecord, SplitMetrics, TrainContext } from './callback.ts'

export interface TensorBoardOptions {
  /**
   * The folder TensorBoard is pointed at (`tensorboard --logdir <logDir>`). Each split gets a run folder under it:
   * `train`, `validation` (as Keras names it) and `test`.
   *
   * @example 'runs/2024-05-01/tensorboard'
   */
  logDir: string
  /**
   * Whether to log images: the training samples once, and the test confusion matrix every epoch. Defaults to true.
   *
   * @default true
   * @example false
   */
  images?: boolean
}

export interface TensorBoardState {
  /** Whether the sample grid is in an earlier file of this run already, so a resumed run does not log it again. */
  samplesLogged: boolean
}

/** The run folder of each split, as Keras lays them out; `test` is ConvKit's own. */
const RUNS = [
  ['train', 'train'],
  ['val', 'validation'],
  ['test', 'test'],
] as const

/** Tag names, as Keras' TensorBoard callback writes them for `metrics=['accuracy', 'top_k_categorical_accuracy']`. */
export const TENSORBOARD_TAGS = {
  loss: 'epoch_loss',
  top1: 'epoch_accuracy',
  top5: 'epoch_top_k_categorical_accuracy',
  learningRate: 'epoch_learning_rate',
  confusion: 'epoch_confusion_matrix',
  samples: 'samples',
} as const

/** Scalars of one split; TensorBoard (and Keras) keep accuracies as fractions, ConvKit's records as percentages. */
function splitScalars(m: SplitMetrics): SummaryValue[] {
  return [
    { tag: TENSORBOARD_TAGS.loss, simple_value: m.loss },
    { tag: TENSORBOARD_TAGS.top1, simple_value: m.top1 / 100 },
    { tag: TENSORBOARD_TAGS.top5, simple_value: m.top5 / 100 },
  ]
}

/**
 * Writes TensorBoard event files (`events.out.tfevents.<secs>.<host>.<pid>.<n>`) in Keras' layout, so
 * `tensorboard --logdir <logDir>` shows a run beside a Keras one with the same names:
 *
 * | ConvKit | run folder | tag | step |
 * |---|---|---|---|
 * | `train.loss`, `val.loss`, `test.loss` | `train`, `validation`, `test` | `epoch_loss` | epoch |
 * | `top1` (÷ 100: a fraction, as Keras' `accuracy`) | each | `epoch_accuracy` | epoch |
 * | `top5` (÷ 100) | each | `epoch_top_k_categorical_accuracy` (k = 5) | epoch |
 * | `lr`, the rate the epoch trained with | `train` | `epoch_learning_rate` | epoch |
 * | `test.confusion`, drawn as the report's heatmap | `test` | `epoch_confusion_matrix` (image) | epoch |
 * | `ctx.samplesPng`, the run's `samples.png` | `train` | `samples` (image) | 0 |
 *
 * Epochs count from 1, as in history.json (Keras' steps count from 0). Each epoch's events are appended and synced
 * to disk at its end, the sample grid with the first epoch's, so a crash loses at most the epoch it interrupted.
 * Each training session (`onTrainBegin`) starts new files and never rewrites old ones; TensorBoard merges all the
 * files of a run folder, so a resumed run (`loadState`) continues the same curves. `reset()` forgets the state, so
 * the next run logs its samples again.
 *
 * @example
 * await train({ data: 'images/', callbacks: [new TensorBoard({ logDir: 'logs/cnn' })] })
 * // then: tensorboard --logdir logs
 */
export class TensorBoard implements Callback {
  readonly logDir: string
  readonly images: boolean
  private current: TensorBoardState = { samplesLogged: false }
  private writers = new Map<string, EventFileWriter>()
  /** The run whose sample grid (`ctx.samplesPng`) is still to be logged, with its first epoch. */
  private samplesOf?: TrainContext
  private written: string[] = []
  private drawFailed = false

  constructor(options: TensorBoardOptions) {
    if (typeof options?.logDir !== 'string' || options.logDir === '') {
      throw new InputError('INVALID_OPTION', `TensorBoard option logDir: expected a folder path, got ${JSON.stringify(options?.logDir)}`)
    }
    if (options.images !== undefined && typeof options.images !== 'boolean') {
      throw new InputError('INVALID_OPTION', `TensorBoard option images: expected true or false, got ${JSON.stringify(options.images)}`)
    }
    this.logDir = options.logDir
    this.images = options.images ?? true
  }

  /** The event files this instance has written since it was made or reset, oldest first. */
  get files(): string[] {
    return [...this.written]
  }

  /** Forgets the state and the open files: the next event starts a new file, and the next run logs its samples. */
  reset(): void {
    this.current = { samplesLogged: false }
    this.writers = new Map()
    this.samplesOf = undefined
    this.written = []
    this.drawFailed = false
  }

  onTrainBegin(ctx: TrainContext): void {
    this.writers = new Map()
    this.drawFailed = false
    // Logged with the first epoch rather than now: train() loads a resumed run's state after this call (a resumed
    // run has logged its samples already), and the grid is drawn by the run report's own onTrainBegin.
    this.samplesOf = this.images ? ctx : undefined
  }

  async onEpochEnd(record: EpochRecord, _logs: EpochLogs, ctx: TrainContext): Promise<void> {
    await this.queueSamples()
    for (const [split, run] of RUNS) {
      const metrics = record[split]
      if (!metrics) continue
      const values = splitScalars(metrics)
      if (split === 'train') values.push({ tag: TENSORBOARD_TAGS.learningRate, simple_value: record.lr })
      if (split === 'test' && this.images && metrics.confusion) {
        const image = await this.drawConfusion(record, ctx)
        if (image) values.push({ tag: TENSORBOARD_TAGS.confusion, image })
      }
      this.writer(run).add(record.epoch, values)
    }
    await this.flush()
  }

  async onTrainEnd(): Promise<void> {
    await this.queueSamples()
    await this.flush()
    // The next session starts new files, as Keras closes its writers at the end of fit().
    this.writers = new Map()
  }

  state(): TensorBoardState {
    return { ...this.current }
  }

  loadState(state: unknown): void {
    const s = state as Partial<TensorBoardState> | undefined
    this.current = { samplesLogged: s?.samplesLogged === true }
  }

  private writer(run: string): EventFileWriter {
    let w = this.writers.get(run)
    if (!w) {
      w = new EventFileWriter(path.join(this.logDir, run))
      this.writers.set(run, w)
    }
    return w
  }

  /** A drawing that fails is reported once and skipped: the scalars of a long run matter more than one picture. */
  private async drawConfusion(record: EpochRecord, ctx: TrainContext): Promise<SummaryImage | undefined> {
    try {
      // `?.`: callback tests drive this without a model (and without the addon).
      return await summaryImage(await confusionPng(record, ctx.classNames ?? ctx.model?.classNames))
    } catch (err) {
      if (!this.drawFailed)
        console.error(`convkit: TensorBoard could not draw the confusion matrix (epoch ${record.epoch}): ${(err as Error).message}`)
      this.drawFailed = true
      return undefined
    }
  }

  /** Queues the sample grid unless this run has logged it already; it goes out with the next flush. */
  private async queueSamples(): Promise<void> {
    const samples = this.samplesOf?.samplesPng
    if (samples && !this.current.samplesLogged) {
      this.writer('train').add(0, [{ tag: TENSORBOARD_TAGS.samples, image: await summaryImage(samples) }])
      this.current = { ...this.current, samplesLogged: true }
    }
    this.samplesOf = undefined
  }

  private async flush(): Promise<void> {
    for (const w of this.writers.values()) {
      await w.flush()
      if (w.file && !this.written.includes(w.file)) this.written.push(w.file)
    }
  }
}
