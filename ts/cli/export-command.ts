// `convkit export` (and `npm run export`): a trained checkpoint as an ONNX file for onnxruntime and other runtimes.
import fs from 'node:fs'
import { InputError } from '../errors.ts'
import { int, text, type OptionTable } from '../options/option.ts'
import { loadModel } from '../predict/predict.ts'
import { helpText, parseFlags, type ExtraFlag } from './flags.ts'

const EXPORT_OPTIONS = {
  model: text({
    help: 'a checkpoint written by training (required)',
    group: 'model',
    default: '',
    shownDefault: 'none',
    metavar: '<file>',
  }),
  out: text({ help: 'the ONNX file to write (required)', group: 'output', default: '', shownDefault: 'none', metavar: '<file.onnx>' }),
  opset: int({ help: 'the ONNX operator set; 17 is the one written', group: 'output', default: 17, min: 17 }),
} satisfies OptionTable

const EXTRA: ExtraFlag[] = [{ name: 'help', boolean: true, help: 'this text', short: 'h' }]

export const EXPORT_HELP = helpText(
  `Export a trained checkpoint to ONNX (opset 17, dynamic batch size; input size, normalization and class names
in metadata_props), for onnxruntime in Node, the browser, Python or C++.

usage: convkit export --model <checkpoint.safetensors> --out <file.onnx>
       npm run export -- --model <checkpoint.safetensors> --out <file.onnx>`,
  EXPORT_OPTIONS,
  EXTRA,
)

export async function exportCommand(argv: string[]): Promise<number> {
  const { options, extra, positionals } = parseFlags(EXPORT_OPTIONS, argv, EXTRA)
  if (extra.help) {
    console.log(EXPORT_HELP)
    return 0
  }
  if (options.model === undefined) throw new InputError('INVALID_OPTION', 'option model: --model <checkpoint> is required (see --help)')
  if (options.out === undefined) throw new InputError('INVALID_OPTION', 'option out: --out <file.onnx> is required (see --help)')
  if (positionals.length > 0)
    throw new InputError(
      'INVALID_OPTION',
      `unexpected argument ${JSON.stringify(positionals[0])}: export takes --model and --out (see --help)`,
    )
  const opset = (options.opset as number | undefined) ?? 17
  if (opset !== 17) throw new InputError('INVALID_OPTION', `option opset: expected 17, got ${opset}`)
  const out = options.out as string
  const model = await loadModel(options.model as string, { device: 'cpu' })
  await model.exportOnnx(out, { opset })
  const megabytes = fs.statSync(out).size / 2 ** 20
  const c = model.spec.inputShape[0]
  const [h, w] = model.evalInputSize
  console.log(`wrote ${out} (${megabytes.toFixed(1)} MiB): opset 17, input [N, ${c}, ${h}, ${w}] float32, logits [N, ${model.classes}]`)
  return 0
}
