// A Keras-style text table of a model: each layer's type, output shape and parameters, nested blocks indented,
// then the totals.
import type { LayerRow } from '../binding.ts'

/** One row of a model summary: a layer, depth first (declared in Rust as `LayerRow`). */
export type LayerSummary = LayerRow

function formatBytes(bytes: number): string {
  return bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(2)} MiB` : `${(bytes / 2 ** 10).toFixed(1)} KiB`
}

/** The summary table; sizes count float32 weights (4 bytes per parameter). */
export function formatSummary(layers: readonly LayerSummary[], inputShape: readonly number[]): string {
  const label = (l: LayerSummary) => {
    const local = l.name?.split('.').at(-1)
    const text = local ? `${local} (${l.kind})` : l.kind
    return `${'  '.repeat(l.depth)}${text}${l.params > 0 && !l.trainable ? ' [frozen]' : ''}`
  }
  const rows = [
    ['Layer (type)', 'Output shape', 'Param #'],
    ['input', `[${inputShape.join(', ')}]`, '0'],
    ...layers.map((l) => [label(l), `[${l.outputShape.join(', ')}]`, l.params.toLocaleString('en-US')]),
  ]
  const widths = [0, 1, 2].map((c) => Math.max(...rows.map((r) => r[c]!.length)) + 2)
  const line = (r: string[]) => `${r[0]!.padEnd(widths[0]!)}${r[1]!.padEnd(widths[1]!)}${r[2]!.padStart(widths[2]! - 2)}`
  const total = layers.reduce((a, l) => a + l.params, 0)
  const trainable = layers.reduce((a, l) => a + (l.trainable ? l.params : 0), 0)
  const rule = '─'.repeat(widths[0]! + widths[1]! + widths[2]! - 2)
  const counts =
    trainable === total
      ? `${total.toLocaleString('en-US')} (all trainable)`
      : `${total.toLocaleString('en-US')} (${trainable.toLocaleString('en-US')} trainable, ${(total - trainable).toLocaleString('en-US')} frozen)`
  return [
    rule,
    line(rows[0]!),
    rule.replace(/─/g, '═'),
    ...rows.slice(1).map(line),
    rule,
    `Total params: ${counts}`,
    `Size: ${formatBytes(total * 4)} (float32)`,
    rule,
  ].join('\n')
}
