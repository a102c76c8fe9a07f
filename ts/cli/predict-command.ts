// `convkit predict` (and `npm run predict`): a table or JSON lines of the classes of images.
import path from 'node:path'
import { InputError } from '../errors.ts'
import { heatmapOverlay } from '../explain/heatmap-overlay.ts'
import type { Model } from '../model/model.ts'
import { int, choice, text, type OptionTable } from '../options/option.ts'
import { loadModel } from '../predict/predict.ts'
import { writeFileAtomic } from '../util/atomic-write.ts'
import type { Device } from '../util/device.ts'
import { helpText, parseFlags, type ExtraFlag } from './flags.ts'
import { deviceOption } from '../options/device-option.ts'

const PREDICT_OPTIONS = {
  model: text({ help: 'a checkpoint written by training (required)', group: 'model', default: '', metavar: '<file>' }),
  topK: int({ help: 'classes to list per image', group: 'output', default: 3, shownDefault: '3 in the table, 5 in JSON', min: 1 }),
  device: deviceOption('model'),
  tta: choice(['none', 'mirror', 'mirrorTranslate'], {
    help: 'test-time augmentation',
    group: 'model',
    default: 'none',
    shownDefault: "the checkpoint's",
  }),
} satisfies OptionTable

const EXTRA: ExtraFlag[] = [
  {
    name: 'json',
    boolean: true,
    help: 'one JSON object per line: { file, label, index, probability, topK } (labels for a multi-label model, heatmap with --explain)',
  },
  {
    name: 'explain',
    boolean: false,
    metavar: '<dir>',
    help: 'also write a Grad-CAM heatmap over each image, for its predicted class, to <dir>/<name>.gradcam.png',
  },
  { name: 'explain-layer', boolean: false, metavar: '<layer>', help: 'the layer Grad-CAM weights (default: the last feature map)' },
  { name: 'help', boolean: true, help: 'this text', short: 'h' },
]

export const PREDICT_HELP = helpText(
  `Predict the class of images with a trained checkpoint.

usage: convkit predict --model <checkpoint.safetensors> [options] <image> [<image> ...]
       npm run predict -- --model <checkpoint.safetensors> [options] <image> [<image> ...]`,
  PREDICT_OPTIONS,
  EXTRA,
)

export async function predictCommand(argv: string[]): Promise<number> {
  const { options, extra, positionals: files } = parseFlags(PREDICT_OPTIONS, argv, EXTRA)
  if (extra.help) {
    console.log(PREDICT_HELP)
    return 0
  }
  if (options.model === undefined) throw new InputError('INVALID_OPTION', 'option model: --model <checkpoint> is required (see --help)')
  if (files.length === 0)
    throw new InputError('INVALID_OPTION', 'no images given: pass one or more image files after the options (see --help)')
  const device = PREDICT_OPTIONS.device.check((options.device ?? 'auto') as Device, 'device')
  const topK = PREDICT_OPTIONS.topK.check((options.topK as number | undefined) ?? (extra.json ? 5 : 3), 'topK')
  const model = await loadModel(options.model as string, { device })
  const tta = options.tta === undefined ? undefined : PREDICT_OPTIONS.tta.check(options.tta as 'none', 'tta')
  const predictions = await model.predict(files, { topK, ...(tta ? { tta } : {}) })
  const heatmaps = extra.explain
    ? await writeHeatmaps(model, files, extra.explain as string, extra['explain-layer'] as string | undefined)
    : undefined
  if (extra.json) {
    for (const [i, p] of predictions.entries()) {
      console.log(
        JSON.stringify({
          file: files[i],
          label: p.label,
          index: p.index,
          probability: p.probability,
          topK: p.topK.map(({ label, probability }) => ({ label, probability })),
          ...(p.labels ? { labels: p.labels.map(({ label, probability }) => ({ label, probability })) } : {}),
          ...(heatmaps ? { heatmap: heatmaps[i] } : {}),
        }),
      )
    }
    return 0
  }
  const width = Math.max(4, ...files.map((f) => f.length))
  console.log(`${'file'.padEnd(width)}  ${'label'.padEnd(14)} prob    top-${topK}`)
  for (const [i, p] of predictions.entries()) {
    const others = p.topK.map((s) => `${s.label} ${(100 * s.probability).toFixed(1)}%`).join(', ')
    // A multi-label model names every label at or over its threshold (or none) where a single-label one names its best class.
    const label = p.labels ? p.labels.map((l) => l.label).join(', ') || '(none)' : p.label
    console.log(`${files[i]!.padEnd(width)}  ${label.padEnd(14)} ${(100 * p.probability).toFixed(1).padStart(5)}%  ${others}`)
  }
  if (heatmaps) console.log(`Grad-CAM heatmaps: ${heatmaps.length} in ${extra.explain}`)
  return 0
}

/** Small images are drawn larger, each pixel as a block, so the overlay is at least this many pixels on a side. */
const OVERLAY_MIN_SIDE = 192

/**
 * Writes a Grad-CAM overlay per image to `dir` as `<file name without extension>.gradcam.png` (with the image's
 * position in front where two files share a name); returns the paths in the order of `files`.
 */
async function writeHeatmaps(model: Model, files: string[], dir: string, layer: string | undefined): Promise<string[]> {
  const explanations = await model.explain(files, layer === undefined ? {} : { layer })
  const stems = files.map((f) => path.parse(f).name)
  const written: string[] = []
  for (const [i, e] of explanations.entries()) {
    const stem = stems.indexOf(stems[i]!) === stems.lastIndexOf(stems[i]!) ? stems[i]! : `${i}-${stems[i]}`
    const file = path.join(dir, `${stem}.gradcam.png`)
    const scale = Math.max(1, Math.ceil(OVERLAY_MIN_SIDE / Math.min(e.height, e.width)))
    await writeFileAtomic(file, await heatmapOverlay(e, { scale }))
    written.push(file)
  }
  return written
}
