// Renders a Vega-Lite spec to SVG (no browser, no native canvas), and SVG to PNG with sharp.
import sharp from 'sharp'
import type { TopLevelSpec } from 'vega-lite'

/**
 * Vega and Vega-Lite are ES modules only and large: importing them when the first chart is drawn keeps
 * `require('convkit')` working on every Node 20, and keeps them out of apps that only predict.
 */
async function vegaModules(): Promise<{ vega: typeof import('vega'); vegaLite: typeof import('vega-lite') }> {
  const [vega, vegaLite] = await Promise.all([import('vega'), import('vega-lite')])
  return { vega, vegaLite }
}

/** The SVG text of a Vega-Lite chart. */
export async function chartSvg(spec: TopLevelSpec): Promise<string> {
  const { vega, vegaLite } = await vegaModules()
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' })
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
