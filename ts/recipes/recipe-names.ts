// The recipes' names alone, so that the option table can offer them without importing the recipes (which are
// values of its options).

/** The recipes' names; `recipe: 'airbench94'` in train() or `--recipe airbench94` selects one. */
export const RECIPE_NAMES = ['airbench94', 'finetune'] as const

export type RecipeName = (typeof RECIPE_NAMES)[number]
