// Specs for training: the reference CNN, and a spec fitted to the data it will train on.
import { InputError } from '../errors.ts'
import type { ModelSpec, Shape3 } from './layers.ts'
import { isZooName, zooModel, ZOO, type ZooName } from '../zoo/architectures.ts'

/** Builds a network once the data is known: its classes and the shape of its images. */
export type ModelBuilder = (data: { classes: number; shape: Shape3 }) => ModelSpec

/**
 * The reference network: conv 3→32 (3×3, pad 1), ReLU, maxpool 2; conv 32→64 (3×3, pad 1), ReLU, maxpool 2;
 * linear →512, ReLU; linear →classes. The first linear layer's input size follows from `inputShape`.
 *
 * @example
 * const spec = referenceCnn({ classes: 10 }) // CIFAR-10: 3×32×32 in, 10 scores out
 */
export function referenceCnn(options: { classes: number; inputShape?: Shape3 }): ModelSpec {
  return {
    inputShape: options.inputShape ?? [3, 32, 32],
    layers: [
      { type: 'conv2d', outChannels: 32, kernelSize: 3, padding: 1 },
      { type: 'relu' },
      { type: 'maxpool2d', kernelSize: 2 },
      { type: 'conv2d', outChannels: 64, kernelSize: 3, padding: 1 },
      { type: 'relu' },
      { type: 'maxpool2d', kernelSize: 2 },
      { type: 'flatten' },
      { type: 'linear', outFeatures: 512 },
      { type: 'relu' },
      { type: 'linear', outFeatures: options.classes },
    ],
  }
}

/**
 * The spec to train on data of `shape` with `classes` classes: `spec` with its input shape filled in from the data,
 * or the reference CNN when there is none. Fails when the spec's input or output disagrees with the data. Images
 * may be stored larger than the model's input (random crops take the input size from them).
 */
export function specForData(
  model: ModelSpec | ModelBuilder | ZooName | null,
  shape: Shape3,
  classes: number,
  inputSize?: [number, number] | null,
): ModelSpec {
  const spec =
    typeof model === 'function'
      ? model({ classes, shape })
      : typeof model === 'string' && isZooName(model)
        ? zooModel(model, { classes, inputSize: inputSize ?? ([...ZOO[model].defaultInputSize] as [number, number]) })
        : (model as ModelSpec | null)
  const input: Shape3 = inputSize ? [shape[0], inputSize[0], inputSize[1]] : shape
  const resolved = spec ? { ...spec, inputShape: spec.inputShape ?? input } : referenceCnn({ classes, inputShape: input })
  const [c, h, w] = resolved.inputShape
  if (c !== shape[0] || h > shape[1] || w > shape[2]) {
    const hint =
      h > shape[1] || w > shape[2] ? `; images read from files take --size ${h}x${w} (size), or give the model a smaller inputSize` : ''
    throw new InputError(
      'INVALID_OPTION',
      `option model: inputShape [${resolved.inputShape}] does not match the data's images [${shape}]${hint}`,
    )
  }
  const last = resolved.layers.at(-1)
  if (last?.type === 'linear' && last.outFeatures !== classes) {
    throw new InputError('INVALID_OPTION', `option model: the last layer has ${last.outFeatures} outputs, the data has ${classes} classes`)
  }
  return resolved
}
