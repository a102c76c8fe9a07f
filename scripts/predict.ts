// The predict CLI: `npx tsx scripts/predict.ts --model <checkpoint> <images...>`, a table or JSON lines.
import { parseArgs } from 'node:util'
import { loadModel } from '../ts/predict.ts'
import type { Device } from '../ts/device.ts'
import { runCli } from './cli.ts'

const HELP = `Predict the class of images with a trained checkpoint.

usage: npx tsx scripts/predict.ts --model <checkpoint.safetensors> [options] <image> [<image> ...]

  --model <file>     a checkpoint written by training (required)
  --top-k <n>        how many classes to list per image                 (default: 3 in the table, 5 in JSON)
  --json             one JSON object per line: { file, label, probability, topK }
  --device <d>       auto | cpu | cuda | cuda:N                          (default: auto)
  --help             this text
`

async function main(): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        model: { type: 'string' },
        'top-k': { type: 'string' },
        json: { type: 'boolean' },
        device: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    })
  } catch (err) {
    console.error(`predict: ${(err as Error).message}\n\n${HELP}`)
    return 2
  }
  const { values, positionals: files } = parsed
  if (values.help) {
    console.log(HELP)
    return 0
  }
  if (!values.model || files.length === 0) {
    console.error(`predict: ${values.model ? 'no images given' : '--model is required'}\n\n${HELP}`)
    return 2
  }
  const topK = values['top-k'] !== undefined ? Number(values['top-k']) : values.json ? 5 : 3
  const model = await loadModel(values.model, { device: (values.device ?? 'auto') as Device })
  const predictions = await model.predict(files, { topK })
  if (values.json) {
    for (const [i, p] of predictions.entries()) {
      console.log(JSON.stringify({ file: files[i], label: p.label, index: p.index, probability: p.probability, topK: p.topK.map(({ label, probability }) => ({ label, probability })) }))
    }
    return 0
  }
  const width = Math.max(4, ...files.map((f) => f.length))
  console.log(`${'file'.padEnd(width)}  ${'label'.padEnd(14)} prob    top-${topK}`)
  for (const [i, p] of predictions.entries()) {
    const others = p.topK.map((s) => `${s.label} ${(100 * s.probability).toFixed(1)}%`).join(', ')
    console.log(`${files[i]!.padEnd(width)}  ${p.label.padEnd(14)} ${(100 * p.probability).toFixed(1).padStart(5)}%  ${others}`)
  }
  return 0
}

runCli(main)
