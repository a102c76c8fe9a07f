// A Keras-style text table of a model: each layer's type, output shape and parameters, then the totals.
import type { LayerSummary } from '../model.ts'

function formatBytes(bytes: number): string {
  return bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(2)} MiB` : `${(bytes / 2 ** 10).toFixed(1)} KiB`
}

/** The summary table; sizes count float32 weights (4 bytes per parameter). */
export function formatSummary(layers: readonly LayerSummary[], inputShape: readonly number[]): string {
  const rows = [
    ['Layer (type)', 'Output shape', 'Param #'],
    ['input', `[${inputShape.join(', ')}]`, '0'],
    ...layers.map((l) => [l.name ? `${l.name} (${l.kind})` : l.kind, `[${l.outputShape.join(', ')}]`, l.params.toLocaleString('en-US')]),
  ]
  const widths = [0, 1, 2].map((c) => Math.max(...rows.map((r) => r[c]!.length)) + 2)
  const line = (r: string[]) => `${r[0]!.padEnd(widths[0]!)}${r[1]!.padEnd(widths[1]!)}${r[2]!.padStart(widths[2]! - 2)}`
  const total = layers.reduce((a, l) => a + l.params, 0)
  const rule = '─'.repeat(widths[0]! + widths[1]! + widths[2]! - 2)
  return [
    rule,
    line(rows[0]!),
    rule.replace(/─/g, '═'),
    ...rows.slice(1).map(line),
    rule,
    `Total params: ${total.toLocaleString('en-US')} (all trainable)`,
    `Size: ${formatBytes(total * 4)} (float32)`,
    rule,
  ].join('\n')
}
