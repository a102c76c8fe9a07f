// Named recipes: complete sets of train options a run starts from (the options given beside them win).
import type { TrainOptions } from '../train/train-options.ts'
import { AIRBENCH94 } from './airbench94.ts'

/** The recipes' names; `recipe: 'airbench94'` in train() or `--recipe airbench94` selects one. */
export const RECIPE_NAMES = ['airbench94'] as const

export type RecipeName = (typeof RECIPE_NAMES)[number]

/** Every recipe by name. airbench94: its network and recipe (arXiv 2404.00498), 94 % on the official CIFAR-10. */
export const RECIPES: Record<RecipeName, Partial<TrainOptions>> = {
  airbench94: AIRBENCH94,
}
