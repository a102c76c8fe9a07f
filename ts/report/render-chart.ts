// Renders a Vega-Lite spec to SVG (no browser, no native canvas), and SVG to PNG with sharp.
import sharp from 'sharp'
import * as vega from 'vega'
import { compile, type TopLevelSpec } from 'vega-lite'

/** The SVG text of a Vega-Lite chart. */
export async function chartSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' })
  try {
    return await view.toSVG()
  } finally {
    view.finalize()
  }
}

/** Rasterizes SVG at its own size, one SVG unit to one pixel (density 72), on white. */
export async function svgToPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg), { density: 72 }).flatten({ background: '#ffffff' }).png().toBuffer()
}
