// One of TrivialAugmentWide's and RandAugment's operations on every image of a set, computed as training computes it
// (and as torchvision's `_apply_op` does): to see what an operation does to one's photos.
import { call, native } from '../binding.ts'
import type { Device } from '../util/device.ts'
import type { ImageSet } from './image-set.ts'

/** The operations the automatic policies draw from, named as in torchvision's augmentation spaces. */
export type AugmentOperation = Parameters<typeof native.applyAugmentOperation>[2]

/**
 * The images of `set` after `operation` at `magnitude` (degrees for `rotate`, pixels for translations, the shear's
 * tangent, `factor − 1` for `brightness`, `color`, `contrast` and `sharpness`, bits for `posterize`, the threshold for
 * `solarize`; unused by `identity`, `autoContrast` and `equalize`). Runs off the JS thread; the set is not changed.
 *
 * @example
 * const turned = await applyAugmentOperation(await readImageFolder('photos'), 'rotate', 30)
 */
export async function applyAugmentOperation(
  set: ImageSet,
  operation: AugmentOperation,
  magnitude = 0,
  options: { device?: Device } = {},
): Promise<ImageSet> {
  const pixels = await call(`augmentation operation ${operation}`, () =>
    native.applyAugmentOperation(set.pixels, [...set.shape], operation, magnitude, options.device ?? 'cpu'),
  )
  return { ...set, pixels }
}
