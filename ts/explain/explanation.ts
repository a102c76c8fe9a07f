// What model.explain() takes and returns: Grad-CAM heatmaps with the class each explains and the prediction.
import { InputError } from '../errors.ts'
import type { ClassScore, Prediction } from '../predict/predict-images.ts'

/** How a heatmap is computed. Only Grad-CAM (Selvaraju et al. 2017, as pytorch-grad-cam's `GradCAM`) today. */
export const EXPLAIN_METHODS = ['gradcam'] as const
export type ExplainMethod = (typeof EXPLAIN_METHODS)[number]

export interface ExplainOptions {
  /** Defaults to `'gradcam'`. */
  method?: ExplainMethod
  /**
   * The layer whose feature maps are weighted: a layer path from `model.layers()` (`layer4`, `layer4.1`,
   * `features`), or its place in the spec (`layers[5]`) for a layer without tensors. Defaults to the last top-level
   * layer whose output is a feature map larger than 1×1 (the last convolutional stage).
   */
  layer?: string
  /**
   * The class to explain: one for every image, or one per image, as a class index or name. Defaults to each image's
   * predicted class.
   */
  targets?: number | string | readonly (number | string)[]
  /** Classes listed in each explanation's `prediction.topK`. Defaults to 5. */
  topK?: number
  /** Images per native call. Defaults to 32 (the backward pass keeps every activation of a batch). */
  batchSize?: number
}

/** Where the network found the evidence for one class in one image. */
export interface Explanation {
  /** `height × width` values in [0, 1], row-major, at the model's evaluation input size: 1 where the evidence is strongest. */
  heatmap: Float32Array
  height: number
  width: number
  /** The class the heatmap explains, with its probability. */
  target: ClassScore
  /** What the model predicts for the image (no test-time augmentation). */
  prediction: Prediction
  /** The layer whose feature maps were weighted. */
  layer: string
  /** The image as the model saw it: uint8, channel-first, `channels × height × width`. */
  image: Uint8Array
  channels: number
}

/**
 * `targets` as one class index per image for the native call; undefined (each image's prediction) when not given.
 * Names are looked up in `names`; an unknown name or an index outside the classes is an InputError naming it.
 */
export function targetIndices(
  targets: ExplainOptions['targets'],
  count: number,
  names: readonly string[],
  classes: number,
): Int32Array | undefined {
  if (targets === undefined) return undefined
  const list = Array.isArray(targets)
    ? (targets as readonly (number | string)[])
    : Array<number | string>(count).fill(targets as number | string)
  if (list.length !== count)
    throw new InputError('INVALID_OPTION', `option targets: expected one class per image (${count}), got ${list.length}`)
  return Int32Array.from(list, (t, i) => {
    if (typeof t === 'string') {
      const index = names.indexOf(t)
      if (index < 0)
        throw new InputError(
          'INVALID_OPTION',
          `option targets[${i}]: expected one of the model's classes (${names.join(', ')}), got '${t}'`,
        )
      return index
    }
    if (!Number.isInteger(t) || t < 0 || t >= classes)
      throw new InputError('INVALID_OPTION', `option targets[${i}]: expected a class index in 0..${classes - 1} or a class name, got ${t}`)
    return t
  })
}
