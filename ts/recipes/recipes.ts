// Named recipes: complete sets of train options a run starts from (the options given beside them win).
import type { TrainOptions } from '../train/train-options.ts'
import { AIRBENCH94 } from './airbench94.ts'
import { FINETUNE } from './finetune.ts'
import type { RecipeName } from './recipe-names.ts'

export { RECIPE_NAMES, type RecipeName } from './recipe-names.ts'

/**
 * Every recipe by name. airbench94: its network and recipe (arXiv 2404.00498), 94 % on the official CIFAR-10.
 * finetune: pretrained weights adapted to new photos (the default with `pretrained`).
 */
export const RECIPES: Record<RecipeName, Partial<TrainOptions>> = {
  airbench94: AIRBENCH94,
  finetune: FINETUNE,
}
