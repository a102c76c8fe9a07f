// An ImageSet moved onto the model's device as uint8; batches are gathered, augmented and normalized there.
import { call, native, type AugmentOptions, type Native } from '../binding.ts'
import { InputError } from '../errors.ts'
import type { Shape3 } from '../model/layers.ts'
import { halfNormalization, type ImageSet, type Normalization } from './image-set.ts'
import type { Device } from '../util/device.ts'

export interface TensorDatasetOptions {
  /** Where the data lives; use the model's device. Defaults to `'auto'` (CUDA when present). */
  device?: Device
  /** Defaults to mean 0.5, std 0.5 per channel. */
  normalization?: Normalization
}

/** Each dataset's native handle, kept out of the public object: only Model hands it to native calls. */
const handles = new WeakMap<TensorDataset, Native.NativeDataset>()

/** The native handle of a dataset, for Model's calls. Not exported from the package. */
export function datasetHandle(data: TensorDataset): Native.NativeDataset {
  const handle = handles.get(data)
  if (!handle) throw new InputError('INVALID_OPTION', 'expected a TensorDataset made by TensorDataset.create')
  return handle
}

/** Images resident on a device. Training and evaluation pass indices into it, never pixels. */
export class TensorDataset {
  readonly shape: Shape3
  readonly classes: string[]
  /** The images' labels (the set's own array, not a copy); for multi-label data, each image's first label. */
  readonly labels: Int32Array
  /** Multi-label data: `length × classes` bytes, 1 where an image has a label (the set's own array). */
  readonly targets?: Uint8Array
  readonly normalization: Normalization
  readonly length: number
  readonly device: string

  private constructor(handle: Native.NativeDataset, set: ImageSet, normalization: Normalization) {
    handles.set(this, handle)
    this.shape = set.shape
    this.classes = set.classes
    this.labels = set.labels
    if (set.targets) this.targets = set.targets
    this.normalization = normalization
    this.length = handle.length
    this.device = handle.device
  }

  /**
   * The images at `indices` as a training step (with `augment`) or an evaluation (without) gets them: normalized
   * floats `[N, C, H, W]` at `size` (defaults to the stored size), each image's centre, or augmented with the draws a
   * step with these seeds makes. For looking at what an augmentation does to the data.
   *
   * @example
   * const x = await data.batch([0, 1, 2], { augment: { randomErasing: { probability: 1 } }, batchSeed: 7 })
   */
  async batch(
    indices: Int32Array | readonly number[],
    options: { size?: readonly [number, number]; augment?: AugmentOptions; batchSeed?: number; runSeed?: number; epoch?: number } = {},
  ): Promise<Float32Array> {
    const size = options.size ?? [this.shape[1], this.shape[2]]
    const { augment, batchSeed, runSeed, epoch } = options
    return call('a dataset batch', () =>
      datasetHandle(this).batch(Int32Array.from(indices), [...size], augment ? { augment, batchSeed, runSeed, epoch } : undefined),
    )
  }

  /**
   * Copies an ImageSet onto a device, once, off the JS thread (leave its pixels unchanged until this resolves).
   *
   * @example
   * const data = await TensorDataset.create(await readImageFolder('cifar/train'), { device: model.device })
   */
  static async create(set: ImageSet, options: TensorDatasetOptions = {}): Promise<TensorDataset> {
    const normalization = options.normalization ?? halfNormalization(set.shape[0])
    if (set.classes.length === 0) throw new InputError('INVALID_OPTION', 'image set: expected at least one class name in `classes`')
    const handle = await call('creating a dataset', () =>
      native.NativeDataset.create(set.pixels, set.labels, {
        shape: [...set.shape],
        classes: set.classes.length,
        mean: normalization.mean,
        std: normalization.std,
        device: options.device ?? 'auto',
        targets: set.targets,
      }),
    )
    return new TensorDataset(handle, set, normalization)
  }
}
