// The options of train(), each declared once: its check, default, CLI flag and help, and what a resumed run may
// change. TrainOptions, TrainConfig, validation, defaults, the train CLI's flags and --help all follow from TRAIN_OPTIONS.
import fs from 'node:fs'
import type { Callback, EpochRecord, TrainContext } from '../callbacks/callback.ts'
import { resolveDistributed, type DistributedOptions } from '../distributed/env.ts'
import type { ImageSet } from '../data/image-set.ts'
import { InputError } from '../errors.ts'
import type { StepResult } from '../model/model.ts'
import {
  bad,
  boolean,
  choice,
  int,
  json,
  number,
  numberOr,
  optionalInt,
  optionalNumber,
  optionalSize,
  optionalText,
  size,
  text,
  value,
  type InputsOf,
  type ResolvedOf,
} from '../options/option.ts'
import type { ParamGroup } from '../binding.ts'
import type { ModelSpec } from '../model/layers.ts'
import type { ModelBuilder } from '../model/spec.ts'
import { RECIPE_NAMES, type RecipeName } from '../recipes/recipe-names.ts'
import { isZooName, ZOO_NAMES, type ZooName } from '../zoo/architectures.ts'
import { PRETRAINED_WEIGHTS_NAMES, pretrainedWeights } from '../zoo/weights.ts'
import { deviceOption } from '../options/device-option.ts'
import { checkClassWeights, type ClassWeights } from './class-balance.ts'
import { resolveLrFind, type LrFindOptions, type LrFindSettings } from './lr-find-options.ts'

function paramGroups(v: unknown, field: string): ParamGroup[] {
  if (!Array.isArray(v)) throw bad(field, 'an array of { names?, layer?, field?, lrScale?, weightDecay? }', v)
  const allowed = ['names', 'layer', 'field', 'lrScale', 'weightDecay']
  v.forEach((g: unknown, i) => {
    if (typeof g !== 'object' || g === null) throw bad(`${field}[${i}]`, 'an object', g)
    const unknown = Object.keys(g).filter((k) => !allowed.includes(k))
    if (unknown.length > 0) throw bad(`${field}[${i}]`, `only the keys ${allowed.join(', ')}`, unknown)
  })
  return v as ParamGroup[]
}

/** A spec, a builder, or the path of a JSON spec file. */
export type ModelSource = ModelSpec | ModelBuilder | string

/** Parameters trainable only from epoch `from` to epoch `until` (1-based, inclusive), frozen otherwise. */
export interface TrainableSpan {
  /** A glob over parameter names, as in `setTrainable`. */
  names: string
  /** Defaults to 1. */
  from?: number
  /** 0 keeps them frozen for the whole run. Defaults to the last epoch. */
  until?: number
}

function trainableSpans(v: unknown, field: string): TrainableSpan[] {
  if (!Array.isArray(v)) throw bad(field, 'an array of { names, from?, until? }', v)
  v.forEach((span: unknown, i) => {
    const s = span as Record<string, unknown>
    const ok =
      typeof s === 'object' &&
      s !== null &&
      typeof s.names === 'string' &&
      Object.keys(s).every((k) => ['names', 'from', 'until'].includes(k)) &&
      ['from', 'until'].every((k) => s[k] === undefined || (Number.isInteger(s[k]) && (s[k] as number) >= 0))
    if (!ok) throw bad(`${field}[${i}]`, '{ names: string, from?: epoch, until?: epoch }', span)
  })
  return v as TrainableSpan[]
}

/**
 * Every option of train() and `npm run train`. The JSDoc of each key is what editors show for `TrainOptions`.
 * Adding an option is one entry here (and the code that uses it in train.ts).
 */
export const TRAIN_OPTIONS = {
  /**
   * Start from a named recipe's options (the options given beside it win): `'finetune'` (AdamW, warmup and cosine,
   * a frozen first epoch, discriminative rates, crops, flips, label smoothing, mirror TTA, epochs by data size; see
   * ts/recipes/finetune.ts) or `'airbench94'`. @default 'finetune' with pretrained, else 'none'
   */
  recipe: choice<'none' | RecipeName>(['none', ...RECIPE_NAMES], {
    help: "start from a recipe's options",
    group: 'recipe',
    default: 'none',
    shownDefault: 'finetune with --pretrained, else none',
  }),
  /**
   * The network: a spec, or the path of a JSON file holding one. Defaults to the reference CNN.
   * @example { inputShape: [3, 32, 32], layers: [...] }
   */
  model: value<ModelSource | null | undefined, ModelSpec | ModelBuilder | ZooName | null>(
    {
      help: `a zoo architecture (${ZOO_NAMES.join(', ')}) or a layer-spec JSON file (default: the reference CNN, or the pretrained weights' architecture)`,
      group: 'model',
      default: null,
      cli: true,
      metavar: '<name|spec.json>',
    },
    (v, field) => {
      if (v === null || v === undefined) return null
      if (typeof v === 'object' || typeof v === 'function') return v
      if (isZooName(v) && !fs.existsSync(v)) return v
      try {
        return JSON.parse(fs.readFileSync(v, 'utf8')) as ModelSpec
      } catch (err) {
        throw new InputError('INVALID_OPTION', `option ${field}: ${v} is not a readable JSON model spec (${(err as Error).message})`, {
          cause: err,
        })
      }
    },
  ),
  /**
   * Start from pretrained weights: a weight set's name (its architecture, preprocessing and ImageNet labels come with
   * it), or the path or URL of a `.pth`/`.safetensors` state dict for `model`. The classifier is replaced to fit the
   * data's classes. Off by default.
   * @example 'efficientnet_lite0'
   */
  pretrained: optionalText({
    help: `pretrained weights: ${PRETRAINED_WEIGHTS_NAMES.join(', ')}, or a .pth/.safetensors path or URL`,
    group: 'model',
    default: null,
    shownDefault: 'none',
    metavar: '<name|path|url>',
  }),
  /** The model's input `[height, width]`; images stored larger are cropped (randomly for training, centred for evaluation). @default the pretrained weights' size, else `size` */
  inputSize: optionalSize({
    help: 'model input (crops of larger stored images)',
    group: 'model',
    default: null,
    shownDefault: "the weights' or --size",
  }),
  /** Epochs the pretrained body stays frozen (batch norm statistics too) while only the classifier trains. @default 0 (recipe finetune: 1) */
  freezeEpochs: int({
    help: 'epochs the body stays frozen while the classifier trains',
    group: 'optimization',
    default: 0,
    shownDefault: '0; finetune 1',
    min: 0,
  }),
  /** The body's learning rate relative to the classifier's, once unfrozen (discriminative rates). @default 1 (recipe finetune: 0.2) */
  backboneLrScale: number({
    help: "the body's rate relative to the classifier's",
    group: 'optimization',
    default: 1,
    shownDefault: '1; finetune 0.2',
    ok: (v) => v >= 0,
    expected: 'a number >= 0',
  }),
  /**
   * Passes over the training data; a fraction ends the last epoch early. `'auto'`: by the training set's size, about
   * 8 000·√(n/1 000) images seen (8 epochs of 1 000 images, 25 of 100, 3 of 10 000; 2 to 30), printed when the data
   * is read. @default 40 (recipe finetune: 'auto')
   */
  epochs: numberOr('auto', {
    help: "passes over the training data (a fraction ends the last one early; auto: by the data's size)",
    group: 'optimization',
    default: 40,
    shownDefault: '40; finetune auto',
    onResume: 'override',
    ok: (v) => v > 0,
    expected: 'a number > 0',
  }),
  /** Images per training step. @default 128 */
  batchSize: int({ help: 'images per training step', group: 'optimization', default: 128, min: 1 }),
  /**
   * Gradient accumulation: the gradients of this many batches add up to one update, as one batch of `accumulate ×
   * batchSize` images would give (without its memory); each batch's loss counts 1/accumulate. An epoch's last update
   * takes the batches left. Data-parallel ranks average gradients only before an update. @default 1
   */
  accumulate: int({ help: 'batches whose gradients add up to one update', group: 'optimization', default: 1, min: 1, metavar: '<n>' }),
  /** Skip the last, smaller batch of each epoch. @default false */
  dropLast: boolean({ help: 'skip the last, smaller batch of each epoch', group: 'optimization', default: false }),
  /** @default 'adam' */
  optimizer: choice(['adam', 'adamw', 'sgd'], { help: 'the optimizer', group: 'optimization', default: 'adam' }),
  /**
   * The peak learning rate (schedules multiply it), or `'find'`: a learning-rate sweep on a copy of the prepared model
   * (`lrFind`; see findLearningRate) picks it; the run prints it and records it in `history.chosen.lr`, and a resumed
   * run keeps it. @default 1e-3 (1e-2 for sgd)
   * @example 'find'
   */
  lr: numberOr('find', {
    help: 'peak learning rate (find: a sweep picks it, see convkit lr-find)',
    group: 'optimization',
    default: (c) => (c.optimizer === 'sgd' ? 1e-2 : 1e-3),
    shownDefault: '1e-3; sgd 1e-2',
    ok: (v) => v > 0,
    expected: 'a number > 0',
  }),
  /**
   * The sweep of `lr: 'find'`: its first and last rate, and its batches. @default { startLr: 1e-7, endLr: 10, steps: 100 }
   * @example { steps: 50 }
   */
  lrFind: value<LrFindOptions | undefined, LrFindSettings>(
    {
      help: 'the sweep of --lr find, as JSON, e.g. {"steps":50}',
      group: 'optimization',
      default: () => resolveLrFind({}),
      shownDefault: '{"startLr":1e-7,"endLr":10,"steps":100}',
      // The rate a sweep chose is kept by a resumed run (`chosen.lr`); only an interrupted sweep runs again.
      onResume: 'override',
      cli: true,
      metavar: '<json>',
    },
    (v, field) => resolveLrFind(v, `${field}.`),
  ),
  /** SGD momentum. @default 0.9 with sgd */
  momentum: number({
    help: 'sgd momentum',
    group: 'optimization',
    default: (c) => (c.optimizer === 'sgd' ? 0.9 : 0),
    shownDefault: '0.9',
    ok: (v) => v >= 0 && v < 1,
    expected: 'a number in [0, 1)',
  }),
  /** Nesterov momentum for sgd. @default false */
  nesterov: boolean({ help: 'sgd with Nesterov momentum', group: 'optimization', default: false }),
  /** L2 penalty (adam, sgd) or decoupled decay (adamw). @default 0 (0.01 for adamw) */
  weightDecay: number({
    help: 'weight decay',
    group: 'optimization',
    default: (c) => (c.optimizer === 'adamw' ? 0.01 : 0),
    shownDefault: '0; adamw 0.01',
    ok: (v) => v >= 0,
    expected: 'a number >= 0',
  }),
  /**
   * Parameters with their own learning-rate scale or weight decay, picked by name glob, layer type or field.
   * @example [{ layer: 'batchnorm2d', field: 'bias', lrScale: 64 }]
   */
  paramGroups: json<ParamGroup[]>(
    {
      help: 'parameter groups as JSON, e.g. \'[{"layer":"batchnorm2d","field":"bias","lrScale":64}]\'',
      group: 'optimization',
      default: [],
      shownDefault: 'none',
    },
    paramGroups,
  ),
  /** Clip each update's gradients to this global 2-norm (`torch.nn.utils.clip_grad_norm_`); off by default. */
  gradClipNorm: optionalNumber({
    help: 'clip the gradients to this global 2-norm (as torch.nn.utils.clip_grad_norm_)',
    group: 'optimization',
    default: null,
    shownDefault: 'off',
    ok: (v) => v > 0,
    expected: 'a number > 0',
  }),
  /** Label smoothing ε of the training loss. @default 0 */
  labelSmoothing: number({
    help: 'label smoothing of the training loss',
    group: 'recipe',
    default: 0,
    ok: (v) => v >= 0 && v < 1,
    expected: 'a number in [0, 1)',
  }),
  /** How per-image losses combine: `mean` (PyTorch's default) or `sum`. @default 'mean' */
  lossReduction: choice(['mean', 'sum'], { help: 'combine per-image losses by', group: 'recipe', default: 'mean' }),
  /**
   * Weights of the training loss per class, for unbalanced data (PyTorch's `cross_entropy(weight=…)`): `'auto'`
   * weighs each class by the inverse of its frequency in the training images, `'sqrt'` by its square root, both
   * scaled so that the mean weight over the training images is 1; or a map of class names to weights (classes not
   * named weigh 1; JSON on the command line). Validation and test losses stay unweighted. @default 'none'
   * @example 'auto'
   * @example { cat: 2, dog: 0.5 }
   */
  classWeights: value<ClassWeights | undefined, ClassWeights>(
    {
      help: 'class weights of the training loss: auto (inverse frequency), sqrt, none, or JSON {"<class>": weight}',
      group: 'optimization',
      default: 'none',
      cli: true,
      metavar: '<auto|sqrt|none|json>',
    },
    checkClassWeights,
  ),
  /**
   * The order of training images in each epoch: `'shuffle'` shows each once; `'balanced'` draws the classes equally
   * (images with replacement, as many as the training set holds), seeded by `seed` and the epoch. Streamed shards
   * take `'shuffle'` only. @default 'shuffle'
   */
  sampler: choice(['shuffle', 'balanced'], {
    help: 'order of each epoch: shuffle, or classes drawn equally',
    group: 'data',
    default: 'shuffle',
  }),
  /** The learning-rate schedule, stepped per batch. @default 'constant' */
  schedule: choice(['constant', 'linear', 'cosine', 'onecycle', 'piecewise'], {
    help: 'learning-rate schedule, stepped per batch',
    group: 'recipe',
    default: 'constant',
  }),
  /** Fraction of all steps spent warming the rate up linearly. @default 0 (0.3 for onecycle) */
  warmup: number({
    help: 'fraction of the steps spent warming up',
    group: 'recipe',
    default: (c) => (c.schedule === 'onecycle' ? 0.3 : 0),
    shownDefault: '0; onecycle 0.3',
    ok: (v) => v >= 0 && v < 1,
    expected: 'a number in [0, 1)',
  }),
  /** The rate's multiplier at the first step of the warmup. @default 0 (1/25 for onecycle) */
  warmupStart: number({
    help: 'multiplier of the rate where warmup starts',
    group: 'recipe',
    default: (c) => (c.schedule === 'onecycle' ? 1 / 25 : 0),
    shownDefault: '0; onecycle 0.04',
    ok: (v) => v >= 0,
    expected: 'a number >= 0',
  }),
  /** The rate's multiplier at the last step (linear, cosine and onecycle). @default 0 (4e-6 for onecycle) */
  finalLr: number({
    help: 'multiplier of the rate at the last step',
    group: 'recipe',
    default: (c) => (c.schedule === 'onecycle' ? 1 / 25 / 1e4 : 0),
    shownDefault: '0; onecycle 4e-6',
    ok: (v) => v >= 0,
    expected: 'a number >= 0',
  }),
  /**
   * Piecewise-linear schedule: `[progress, multiplier]` points, progress from 0 (first step) to 1 (last step).
   * @example [[0, 0.2], [0.23, 1], [1, 0.07]]
   */
  lrPoints: json<[number, number][]>(
    { help: 'points [[progress, multiplier], ...] of the piecewise schedule', group: 'recipe', default: [], shownDefault: 'none' },
    (v, field) => {
      const ok =
        Array.isArray(v) &&
        v.length !== 1 &&
        v.every((p) => Array.isArray(p) && p.length === 2 && p.every((x) => typeof x === 'number' && Number.isFinite(x)))
      if (!ok) throw bad(field, 'at least two [progress, multiplier] pairs', v)
      if (v.length === 0) return []
      const points = v as [number, number][]
      if (points[0]![0] !== 0 || points.at(-1)![0] !== 1 || points.some((p, i) => i > 0 && p[0] <= points[i - 1]![0])) {
        throw bad(
          field,
          'progress increasing from 0 to 1',
          points.map((p) => p[0]),
        )
      }
      return points
    },
  ),
  /** Multiply the rate by `lrFactor` after this many epochs without improvement of the monitor. Off by default. */
  lrPatience: optionalInt({
    help: 'multiply the rate by --lr-factor after n epochs without improvement',
    group: 'optimization',
    default: null,
    shownDefault: 'off',
    min: 1,
  }),
  /** @default 0.1 */
  lrFactor: number({
    help: 'factor for --lr-patience',
    group: 'optimization',
    default: 0.1,
    ok: (v) => v > 0 && v < 1,
    expected: 'a number in (0, 1)',
  }),
  /** Weight averaging: an exponential moving average of the weights, or Lookahead. @default 'none' */
  averaging: choice(['none', 'ema', 'lookahead'], {
    help: 'weight averaging; evaluation uses the averaged weights',
    group: 'recipe',
    default: 'none',
  }),
  /** How much of the average each update keeps. @default 0.999 (ema), 0.5 (lookahead) */
  averagingDecay: number({
    help: 'decay of the average',
    group: 'recipe',
    default: (c) => (c.averaging === 'lookahead' ? 0.5 : 0.999),
    shownDefault: '0.999; lookahead 0.5',
    ok: (v) => v >= 0 && v <= 1,
    expected: 'a number in [0, 1]',
  }),
  /** Average every this many steps. @default 1 (5 for lookahead) */
  averagingEvery: int({
    help: 'average every n steps',
    group: 'recipe',
    default: (c) => (c.averaging === 'lookahead' ? 5 : 1),
    shownDefault: '1; lookahead 5',
    min: 1,
  }),
  /** `cubic` scales the decay by (progress)³: weak early, full at the end. @default 'none' */
  averagingWarmup: choice(['none', 'cubic'], { help: 'ramp the decay with training progress', group: 'recipe', default: 'none' }),
  /** Early-stopping patience in epochs. @default 5 */
  patience: int({ help: 'early-stopping patience in epochs', group: 'output', default: 5, min: 1, onResume: 'override' }),
  /** The least change of the monitor that counts as an improvement. @default 0 */
  minDelta: number({
    help: 'least change that counts as an improvement',
    group: 'output',
    default: 0,
    ok: (v) => v >= 0,
    expected: 'a number >= 0',
  }),
  /**
   * `'frozen'`: batch norm layers keep normalizing with their (pretrained) running statistics while they train,
   * as Keras's fine-tuning guide advises; `'update'`: batch statistics while training, as usual.
   * @default 'update' (recipe finetune: 'frozen')
   */
  batchNormStatistics: choice(['update', 'frozen'], {
    help: 'batch norm running statistics while training',
    group: 'optimization',
    default: 'update',
    shownDefault: 'update; finetune frozen',
  }),
  /** Fraction of the training data held out for validation. @default 0.1 */
  valSplit: number({
    help: 'fraction of the training data held out for validation',
    group: 'data',
    default: 0.1,
    ok: (v) => v >= 0 && v < 1,
    expected: 'a fraction in [0, 1)',
  }),
  /** Evaluate the test split every n epochs (and after the last); 0 only after the last. Validation runs every epoch. @default 1 (recipe finetune: 0) */
  testEvery: int({
    help: 'evaluate the test data every n epochs (0: after the last only)',
    group: 'evaluation',
    default: 1,
    shownDefault: '1; finetune 0',
    min: 0,
    onResume: 'override',
  }),
  /**
   * The metric early stopping and the best checkpoint follow. @default 'val_loss' ('test_loss' when valSplit is 0,
   * 'train_loss' when the test data is not evaluated every epoch either)
   */
  monitor: text<string>({
    help: 'metric for early stopping and the best checkpoint',
    group: 'output',
    default: (c) => ((c.valSplit as number) > 0 ? 'val_loss' : c.testEvery === 1 ? 'test_loss' : 'train_loss'),
    shownDefault: 'val_loss',
    metavar: '<metric>',
  }),
  /**
   * Test images when `data` has none of its own: a folder, an archive or a shard pattern (read into memory). Without
   * it, `testSplit` holds test images out of `data`.
   */
  testData: optionalText({
    help: 'test images (folder, archive or shard pattern) when data has none',
    group: 'data',
    default: null,
    shownDefault: 'held out of --data',
    metavar: '<source>',
  }),
  /**
   * Shards (`data: 'shards/train-{000000..000099}.tar'`, written by `convkit shard`) are read into memory when they
   * fit `memoryBudget`, else streamed from disk batch by batch; `'always'` or `'never'` decides it. An image folder
   * whose training images do not fit (or with `'always'`) is written once into the dataset cache as shards of its
   * original bytes and streamed the same way. Streamed, the validation and test splits are whole shards (a folder's
   * `test/` stays resident).
   * @default 'auto'
   */
  stream: choice(['auto', 'always', 'never'], {
    help: 'stream shards (or a folder, as shards in the cache) from disk instead of holding them in memory',
    group: 'data',
    default: 'auto',
  }),
  /** The most memory the training images may take resident before shards are streamed, in MiB. @default half the machine's memory */
  memoryBudgetMb: optionalInt({
    help: 'resident data above this many MiB streams from shards',
    group: 'data',
    default: null,
    shownDefault: "half the machine's memory",
    min: 1,
    stored: false,
    onResume: 'override',
  }),
  /** Fraction held out as the test set when the data has none. @default 0.2 */
  testSplit: number({
    help: 'fraction held out as test set when the data has none',
    group: 'data',
    default: 0.2,
    ok: (v) => v > 0 && v < 1,
    expected: 'a fraction in (0, 1)',
  }),
  /**
   * A label file's column holding each image's path (relative to the label file's folder, or absolute), matched
   * case-insensitively. @default the first of file, filename, path, image, image_path, fname
   * @example 'image_id'
   */
  pathColumn: optionalText({
    help: "a label file's column of image paths",
    group: 'data',
    default: null,
    shownDefault: 'file, filename, path, image, image_path or fname',
    metavar: '<name>',
  }),
  /**
   * A label file's column holding each image's label, matched case-insensitively.
   * @default the first of label, labels, class, category, tags
   * @example 'breed'
   */
  labelColumn: optionalText({
    help: "a label file's column of labels",
    group: 'data',
    default: null,
    shownDefault: 'label, labels, class, category or tags',
    metavar: '<name>',
  }),
  /**
   * A label file's column saying each row's split: `train`, `valid` (`val`, `validation`) or `test`, or fastai's
   * `is_valid` true/false. `valid` rows are the validation set (`valSplit` then takes nothing from the training
   * rows), `test` rows the test set. @default a column named split or is_valid, if there is one
   * @example 'fold'
   */
  splitColumn: optionalText({
    help: "a label file's column of splits (train/valid/test, or is_valid true/false)",
    group: 'data',
    default: null,
    shownDefault: 'split or is_valid, if present',
    metavar: '<name>',
  }),
  /**
   * What separates several labels in a label file's label field. @default ';', and whitespace too in a column named
   * labels or tags
   * @example '|'
   */
  labelDelimiter: optionalText({
    help: 'separator of several labels in one label field',
    group: 'data',
    default: null,
    shownDefault: "';' (and spaces in a labels/tags column)",
    metavar: '<text>',
  }),
  /**
   * Multi-label classification: a sigmoid per class trained with binary cross-entropy, a decision threshold per class
   * chosen on the validation images to maximise F1, and mAP, micro- and macro-F1 and the exact-match ratio as metrics
   * (`top1` is then the exact-match ratio). Only label files can say several labels per image. @default false: on
   * when any row of the label file has several labels
   */
  multiLabel: boolean({
    help: 'several labels per image (sigmoid outputs, binary cross-entropy)',
    group: 'data',
    default: false,
    shownDefault: 'when a label file row has several',
  }),
  /** Shorthand for `cropPadding: 4` and `flip: 'random'`. @default false */
  augment: boolean({ help: 'random crop (4-px padding) and horizontal flip', group: 'data', default: false }),
  /** Random crop from this much padding on each side while training. @default 0 (4 with augment) */
  cropPadding: int({
    help: 'random crop from this much padding',
    group: 'data',
    default: (c) => (c.augment ? 4 : 0),
    shownDefault: '0; --augment 4',
    min: 0,
  }),
  /** How the crop padding is filled. @default 'zeros' */
  padMode: choice(['zeros', 'reflect'], { help: 'crop padding', group: 'data', default: 'zeros' }),
  /** Horizontal flips while training: random each time, or alternating by epoch. @default 'none' ('random' with augment) */
  flip: choice(['none', 'random', 'alternating'], {
    help: 'horizontal flips while training',
    group: 'data',
    default: (c) => (c.augment ? 'random' : 'none'),
    shownDefault: 'none; --augment random',
  }),
  /** Zero a square of this side at a random place in each training image. @default 0 */
  cutout: int({ help: 'cutout square side', group: 'data', default: 0, min: 0 }),
  /**
   * Mixup (Zhang et al. 2018) as timm's `Mixup`: each training batch blended with itself reversed by one λ from
   * Beta(α, α), the targets alike (soft targets; label smoothing applies to them). This α; 0 is off. @default 0
   * @example 0.8
   */
  mixup: number({
    help: "mixup's α (blend each batch with itself reversed)",
    group: 'data',
    default: 0,
    ok: (v) => v >= 0 && Number.isFinite(v),
    expected: 'a number >= 0',
    metavar: '<alpha>',
  }),
  /**
   * CutMix (Yun et al. 2019) as timm's `Mixup`: a box of area 1 − λ (λ from Beta(α, α)) pasted from the batch
   * reversed, the targets mixed by the box's share. This α; 0 is off. With mixup on too, `mixSwitchProbability` picks
   * one per batch. @default 0
   * @example 1
   */
  cutmix: number({
    help: "CutMix's α (paste a box from the batch reversed)",
    group: 'data',
    default: 0,
    ok: (v) => v >= 0 && Number.isFinite(v),
    expected: 'a number >= 0',
    metavar: '<alpha>',
  }),
  /** The chance that a batch is mixed at all (mixup or CutMix). @default 1 */
  mixProbability: number({
    help: 'chance that a batch is mixed (mixup/CutMix)',
    group: 'data',
    default: 1,
    ok: (v) => v >= 0 && v <= 1,
    expected: 'a number in [0, 1]',
    metavar: '<p>',
  }),
  /** With mixup and CutMix both on, the chance that a mixed batch uses CutMix. @default 0.5 */
  mixSwitchProbability: number({
    help: 'chance of CutMix rather than mixup when both are on',
    group: 'data',
    default: 0.5,
    ok: (v) => v >= 0 && v <= 1,
    expected: 'a number in [0, 1]',
    metavar: '<p>',
  }),
  /**
   * An automatic augmentation policy on each training image after its crop and flip, as torchvision's:
   * `trivial-augment-wide` (TrivialAugment, Müller & Hutter 2021: one of 14 operations per image at a random strength)
   * or `rand-augment` (RandAugment, Cubuk et al. 2020: `randAugmentOps` operations at strength `randAugmentMagnitude`
   * of 31). Each image draws its own from the batch's seed, so runs repeat and resume. @default 'none'
   * @example 'trivial-augment-wide'
   */
  autoAugment: choice(['none', 'trivial-augment-wide', 'rand-augment'], {
    help: "torchvision's TrivialAugmentWide or RandAugment on each training image",
    group: 'data',
    default: 'none',
  }),
  /** RandAugment's operations per image. @default 2 */
  randAugmentOps: int({ help: "RandAugment's operations per image", group: 'data', default: 2, min: 1, max: 16 }),
  /** RandAugment's strength, a bin of 0–30 (torchvision's `magnitude`). @default 9 */
  randAugmentMagnitude: int({ help: "RandAugment's magnitude bin (0-30)", group: 'data', default: 9, min: 0, max: 30 }),
  /**
   * Random erasing (Zhong et al. 2020) as torchvision's `RandomErasing`: with this probability, a box of 2–33 % of
   * each training image's area and aspect 0.3–3.3 is set to the mean (0 after normalization). @default 0 (off)
   * @example 0.25
   */
  randomErasing: number({
    help: 'chance of erasing a random box of each training image',
    group: 'data',
    default: 0,
    ok: (v) => v >= 0 && v <= 1,
    expected: 'a number in [0, 1]',
    metavar: '<p>',
  }),
  /** Test-time augmentation of validation and test data (and of predict() with the checkpoint). @default 'none' */
  tta: choice(['none', 'mirror', 'mirrorTranslate'], { help: 'test-time augmentation', group: 'evaluation', default: 'none' }),
  /**
   * `[height, width]` that validation, test and predict() (with the checkpoint) feed the model: a centre crop of the
   * stored images (`size`: the whole image), larger than the `inputSize` crops it trained on. FixRes's effect:
   * random-resized crops show objects larger than a centre crop of the same size. Networks that end in global
   * pooling take it. @default the input size
   */
  evalInputSize: optionalSize({
    help: 'evaluate and predict at this input, e.g. the whole stored image (FixRes)',
    group: 'evaluation',
    default: null,
    shownDefault: 'the input size',
  }),
  /** `running`: train metrics from the epoch's own forward passes (as Keras reports); `full`: an extra pass. @default 'running' */
  trainMetrics: choice(['running', 'full'], {
    help: 'train metrics from the training passes, or a full extra pass',
    group: 'evaluation',
    default: 'running',
  }),
  /**
   * `'half'` (mean 0.5, std 0.5), `'dataset'` (per-channel statistics of the training data), or the fixed
   * statistics of `'cifar10'` or `'imagenet'`. @default 'half'
   */
  normalize: choice(['half', 'dataset', 'cifar10', 'imagenet', 'weights'], {
    help: "pixel normalization ('weights': the pretrained weights' own)",
    group: 'data',
    default: (c) => (c.pretrained ? 'weights' : 'half'),
    shownDefault: "half; with --pretrained, the weights'",
  }),
  /** Random-resized crops of `[minScale, maxScale]` of the area (aspect 3/4–4/3) while training, resized to the input. Off by default. */
  resizedCrop: value<[number, number] | null | undefined, [number, number] | null>(
    {
      help: 'random-resized crops of [min, max] of the area while training, e.g. 0.25,1',
      group: 'data',
      default: null,
      shownDefault: 'off',
      cli: true,
      metavar: '<min>,<max>',
    },
    (v, field) => {
      if (v === null || v === undefined) return null
      const pair = typeof v === 'string' ? (v as string).split(',').map(Number) : v
      if (!Array.isArray(pair) || pair.length !== 2 || !(pair[0]! > 0 && pair[0]! <= pair[1]! && pair[1]! <= 1))
        throw bad(field, '[min, max] with 0 < min <= max <= 1', v)
      return [pair[0]!, pair[1]!]
    },
  ),
  /** Initialize the first convolution as a patch-whitening filter bank from this many training images (0: off). @default 0 */
  whiten: int({ help: 'whiten the first conv from n training images (0: off)', group: 'recipe', default: 0, min: 0 }),
  /** The ε added to the patch eigenvalues by whitening. @default 5e-4 */
  whitenEps: number({ help: 'epsilon of the whitening', group: 'recipe', default: 5e-4, ok: (v) => v > 0, expected: 'a number > 0' }),
  /**
   * Parameters trainable only for a span of epochs, e.g. a layer's bias for the first 3 epochs.
   * @example [{ names: 'whiten.bias', until: 3 }]
   */
  trainableSpans: json<TrainableSpan[]>(
    {
      help: 'spans [{"names":"<glob>","from":1,"until":3}] outside which parameters are frozen',
      group: 'recipe',
      default: [],
      shownDefault: 'none',
    },
    trainableSpans,
  ),
  /**
   * `'bf16'` computes convolutions and linear layers in bfloat16 from fp32 weights, as PyTorch's autocast does;
   * `'auto'` picks bf16 where the CPU has native bf16 and a short probe finds it at least 10 % faster, fp32 elsewhere;
   * the run prints and records its choice (`history.chosen`), and a resumed run keeps it.
   * @default 'auto'
   */
  precision: choice(['fp32', 'bf16', 'auto'], {
    help: 'compute precision of conv and linear layers (auto: bf16 where it is clearly faster)',
    group: 'model',
    default: 'auto',
  }),
  /** Seeds weights, shuffling, splits and augmentation. @default 0 */
  seed: int({ help: 'seeds weights, shuffles, splits and augmentation', group: 'model', default: 0, min: 0 }),
  /** @default 'auto' */
  device: deviceOption('model'),
  /** Train on a seeded subset of this many images. */
  limitTrain: optionalInt({ help: 'train on a seeded subset of n images', group: 'data', default: null, shownDefault: 'all', min: 1 }),
  /** Test on a seeded subset of this many images. */
  limitTest: optionalInt({ help: 'test on a seeded subset of n images', group: 'data', default: null, shownDefault: 'all', min: 1 }),
  /** Images are resized to `[height, width]` when read from files. @default [32, 32] (with pretrained, the weights' input size) */
  size: size({
    help: 'resize images read from files',
    group: 'data',
    default: (c) =>
      (c.inputSize as [number, number] | null) ??
      (c.pretrained
        ? ([...(pretrainedWeights(c.pretrained as string)?.preprocessing.inputSize ?? [224, 224])] as [number, number])
        : [32, 32]),
    shownDefault: "32x32; with --pretrained, the weights' input (224x224)",
  }),
  /**
   * Leave out the images a list names: `convkit inspect`'s inspect.json (its `exclude` array), or a text file with
   * one image path per line (relative to the list's folder). Names are files as the data source lists them, or
   * `<split>:<index>` for CIFAR-10's binary batches and idx files. Resident data only. @default none
   * @example 'inspect/inspect.json'
   */
  exclude: optionalText({
    help: "leave out the images a list names (inspect.json's exclude, or one path per line)",
    group: 'data',
    default: null,
    metavar: '<file>',
  }),
  /** Skip unreadable images instead of failing; they are counted in the run's report. @default false */
  skipBadImages: boolean({ help: 'skip unreadable images instead of failing', group: 'data', default: false }),
  /** Where downloads and decoded datasets are cached. @default '~/.cache/convkit/datasets' */
  cacheDir: optionalText({
    help: 'dataset cache',
    group: 'data',
    default: null,
    shownDefault: '~/.cache/convkit/datasets',
    stored: false,
    onResume: 'override',
    metavar: '<dir>',
  }),
  /** The run directory. @default 'runs/<date-time>' */
  out: optionalText({
    help: 'run directory',
    group: 'output',
    default: null,
    shownDefault: 'runs/<date-time>',
    stored: false,
    onResume: 'override',
    metavar: '<dir>',
  }),
  /** Continue the run in this directory at its next epoch, with its weights, optimizer state and configuration. */
  resume: optionalText({
    help: 'continue a run at its next epoch',
    group: 'output',
    default: null,
    shownDefault: undefined,
    stored: false,
    onResume: 'override',
    metavar: '<run-dir>',
  }),
  /** Write samples.png at the start, and plots/ and report.html at the end. @default true */
  report: boolean({
    help: 'skip samples.png, plots/ and report.html',
    group: 'output',
    default: true,
    stored: false,
    onResume: 'override',
  }),
  /** Write TensorBoard event files here (`<dir>/train`, `<dir>/validation`, `<dir>/test`), as Keras does. Off by default. */
  tensorboard: optionalText({
    help: 'write TensorBoard logs to this folder',
    group: 'output',
    default: null,
    shownDefault: 'off',
    stored: false,
    onResume: 'override',
    metavar: '<dir>',
  }),
  /** No table, no progress bars. @default false */
  quiet: boolean({ help: 'no summary, table or progress bars', group: 'output', default: false, stored: false, onResume: 'override' }),
  /**
   * The train CLI only (as torchrun's `--nproc-per-node`): start this many worker processes on this machine, one
   * rank each, and wait for them. With `NNODES` and `NODE_RANK` set (and `MASTER_ADDR`, `MASTER_PORT` naming
   * node 0), several machines form one run. From code, start one process per rank and pass `distributed`.
   * @default 1
   */
  nprocPerNode: optionalInt({
    help: "start n local worker processes, one rank each (torchrun's --nproc-per-node)",
    group: 'distributed',
    default: null,
    shownDefault: '1',
    min: 1,
    stored: false,
    onResume: 'override',
  }),
  /**
   * Train as one rank of a data-parallel run: `true` reads torchrun's `MASTER_ADDR`, `MASTER_PORT`, `RANK`,
   * `WORLD_SIZE` and `LOCAL_RANK`; an object gives any of them (and the timeouts) in code. Every rank trains on its
   * own share of each epoch with `batchSize` images per step (the global batch is `batchSize` × world size) and
   * averages gradients with the others; rank 0 alone writes the run's files. Off by default.
   * @example { rank: 0, worldSize: 2, masterAddr: '127.0.0.1', masterPort: 29500 }
   */
  distributed: value<DistributedOptions | boolean | null | undefined, DistributedOptions | null>(
    {
      help: 'join a data-parallel run (true: from torchrun variables)',
      group: 'distributed',
      default: null,
      stored: false,
      onResume: 'override',
    },
    (v) => (v === null || v === undefined || v === false ? null : resolveDistributed(v === true ? {} : v)),
  ),
  /** The largest bucket of gradients a data-parallel step all-reduces at once, in MiB (DDP's `bucket_cap_mb`). @default 25 */
  bucketMb: number({
    help: 'gradient bucket size of a data-parallel step, in MiB',
    group: 'distributed',
    default: 25,
    ok: (v) => v > 0,
    expected: 'a number > 0',
    stored: false,
    onResume: 'override',
  }),
  /**
   * Data-parallel runs: batch norms that learn normalize with the statistics of every rank's batch together, as
   * `torch.nn.SyncBatchNorm` does (two small all-reduces per batch norm and step), instead of each rank's own batch
   * (DDP's default). Worth it when each rank's batch is small. Ignored in a single process. @default false
   */
  syncBatchNorm: boolean({
    help: "batch norm statistics over every rank's batch (torch.nn.SyncBatchNorm)",
    group: 'distributed',
    default: false,
  }),
} as const

export type TrainOptionTable = typeof TRAIN_OPTIONS

/** Options whose values only code can pass. */
interface RuntimeOptions {
  /**
   * What to train on: `'cifar10'` (downloaded and cached), a folder (`root/train/<class>`, `root/test/<class>`;
   * or `root/<class>` with `testSplit`), a folder of MNIST idx files, a `.tar.gz` of any of these, tar shards written
   * by `convkit shard` (a brace pattern, or their `.shards.json` index), or images in memory.
   * @example 'cifar10'
   * @example 'shards/train-{000000..000019}.tar'
   * @example '../shared/datasets/cifar10-jpg.tar.gz'
   */
  data: string | { train: ImageSet; test?: ImageSet }
  /** Stops at the end of the current batch; the last checkpoint and history are on disk. */
  signal?: AbortSignal
  /** More callbacks, run after the built-in History, EarlyStopping and ModelCheckpoint. Each is reset when the run starts. */
  callbacks?: Callback[]
  onEpochEnd?: (record: EpochRecord, ctx: TrainContext) => void | Promise<void>
  /**
   * After each training step's report is read back. On resident data steps are pipelined (`Model.trainBatches`),
   * so by then the next step of the epoch is already queued: the model's weights and `learningRate` are that step's.
   */
  onBatchEnd?: (batch: number, step: StepResult, ctx: TrainContext) => void | Promise<void>
}

/** The options of train(): `data`, and any of TRAIN_OPTIONS. */
export type TrainOptions = RuntimeOptions & InputsOf<TrainOptionTable>

type Resolved = ResolvedOf<TrainOptionTable>
type StoredKeys = { [K in keyof TrainOptionTable]: TrainOptionTable[K]['stored'] extends false ? never : K }[keyof TrainOptionTable]

/** The options a run is reproduced from: what history.json stores as `config`, with `data` as given. */
export type TrainConfig = Pick<Resolved, StoredKeys> & { data: string }

/** What steers one invocation: the stored config plus the options that are not stored. */
export type ResolvedTrainOptions = TrainConfig & Omit<Resolved, StoredKeys>

/** What history.json records as `data` for images passed in memory. */
export const IN_MEMORY = '<in-memory>'

/**
 * The metric names a run reports: loss, top-1, top-5, balanced accuracy and macro-F1 of train, val (when held out) and
 * test; mAP and micro-F1 of val and test too where the data may be multi-label.
 */
export function runMetrics(withVal: boolean, multiLabel = false): string[] {
  const evaluated = [...(withVal ? ['val'] : []), 'test']
  return [
    ...['train', ...evaluated].flatMap((s) => [`${s}_loss`, `${s}_top1`, `${s}_top5`, `${s}_balanced_accuracy`, `${s}_macro_f1`]),
    ...(multiLabel ? evaluated.flatMap((s) => [`${s}_map`, `${s}_micro_f1`]) : []),
  ]
}

/** A path (or shard pattern) is stored absolute so `--resume` works from any folder; names such as 'cifar10' stay as they are. */
/** The part of a resolved config that history.json stores. */
export function storedConfig(config: ResolvedTrainOptions): TrainConfig {
  const out: Record<string, unknown> = { data: config.data }
  for (const [key, decl] of Object.entries(TRAIN_OPTIONS) as [string, { stored: boolean }][])
    if (decl.stored) out[key] = (config as unknown as Record<string, unknown>)[key]
  return out as TrainConfig
}

/**
 * The stored options of `config` whose value differs from their default (given the others as they are), in
 * declaration order: what a run changed, for the report. `data` is always listed.
 */
export function changedOptions(config: Record<string, unknown>): string[] {
  const changed = ['data']
  for (const [key, decl] of Object.entries(TRAIN_OPTIONS) as [
    string,
    { stored: boolean; fallback: (r: Record<string, unknown>) => unknown },
  ][]) {
    if (!decl.stored || !(key in config)) continue
    let fallback: unknown
    try {
      fallback = decl.fallback(config)
    } catch {
      // A default that cannot be worked out from a stored config (an older one) counts as changed.
      fallback = Symbol('unknown')
    }
    if (JSON.stringify(config[key]) !== JSON.stringify(fallback)) changed.push(key)
  }
  return changed
}
