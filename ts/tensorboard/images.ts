// Images for TensorBoard: any encoded image as a Summary.Image, and the test confusion matrix drawn as the run report draws it.
import sharp from 'sharp'
import type { HistoryFile } from '../callbacks/history.ts'
import type { EpochRecord } from '../callbacks/callback.ts'
import { historyCharts } from '../report/history-charts.ts'
import { chartSvg, svgToPng } from '../report/render-chart.ts'
import type { SummaryImage } from './event-proto.ts'

/** Wraps encoded image bytes (PNG, JPEG or GIF: what TensorBoard's browser view shows) with the size and colorspace TensorBoard lists. */
export async function summaryImage(encoded: Uint8Array): Promise<SummaryImage> {
  const meta = await sharp(encoded).metadata()
  if (!meta.width || !meta.height) throw new Error('TensorBoard image: the bytes are not an image sharp can read')
  // Summary.Image's colorspace counts channels: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA.
  return { width: meta.width, height: meta.height, colorspace: meta.channels ?? 3, encoded_image_string: encoded }
}

/**
 * The test confusion matrix of `record` as the run report's heatmap (true class down, predicted across, counts in
 * the cells), 800×500 PNG.
 */
export async function confusionPng(record: EpochRecord, classNames: readonly string[] | undefined): Promise<Buffer> {
  const matrix = record.test?.confusion ?? []
  const classes = classNames && classNames.length >= matrix.length ? [...classNames] : matrix.map((_, i) => String(i))
  // The report's chart reads a history; this one holds only the epoch to draw, so that epoch is the one drawn.
  const history: HistoryFile = { classes, config: {}, epochs: [record], best: null, stoppedEarly: false, stopReason: null }
  return svgToPng(await chartSvg(historyCharts(history).confusion))
}
