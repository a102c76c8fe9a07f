// Terminal progress bars: one line redrawn in place, shown only on a TTY (and never with `quiet`).

/** What a bar shows after its counter: units and extra fields. */
export interface ProgressOptions {
  /** Total units, when known. */
  total?: number
  /** Formats a count of units: bytes as MB, batches as plain numbers. Defaults to plain numbers. */
  format?: (units: number) => string
  /** Unit of the rate (`img/s`, `MB/s`); the rate is `units / s` passed through `format`. Defaults to `/s`. */
  rateUnit?: string
  /** Where to draw. Defaults to `process.stderr`. */
  stream?: NodeJS.WriteStream
  /** Draw nothing. Defaults to false; bars are also silent when the stream is not a TTY. */
  quiet?: boolean
}

export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)} GB`
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MB`
  if (bytes >= 2 ** 10) return `${(bytes / 2 ** 10).toFixed(0)} kB`
  return `${bytes} B`
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--'
  const s = Math.round(seconds)
  const h = Math.floor(s / 3600)
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0')
  const ss = String(s % 60).padStart(2, '0')
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`
}

/**
 * A progress bar: `label [#####-----] 12.3/170.5 MB  4.1 MB/s  ETA 00:38  loss 1.23`.
 *
 * @example
 * const bar = new ProgressBar('download', { total: bytes, format: formatBytes, rateUnit: '/s' })
 * bar.update(received)
 * bar.done()
 */
export class ProgressBar {
  readonly label: string
  readonly total: number | undefined
  private readonly options: ProgressOptions
  private readonly stream: NodeJS.WriteStream
  private readonly enabled: boolean
  private readonly started = performance.now()
  private lastDraw = 0
  private current = 0
  private fields = ''

  constructor(label: string, options: ProgressOptions = {}) {
    this.label = label
    this.total = options.total
    this.options = options
    this.stream = options.stream ?? process.stderr
    this.enabled = !options.quiet && this.stream.isTTY === true
  }

  /** Sets the count (and extra `key value` fields) and redraws, at most ten times a second. */
  update(current: number, fields: Record<string, string | number> = {}): void {
    this.current = current
    this.fields = Object.entries(fields)
      .map(([k, v]) => `${k} ${typeof v === 'number' ? v.toFixed(3) : v}`)
      .join('  ')
    const now = performance.now()
    if (now - this.lastDraw >= 100 || (this.total !== undefined && current >= this.total)) {
      this.lastDraw = now
      this.draw()
    }
  }

  /** The bar's line as it would be drawn now. */
  render(width = 24): string {
    const fmt = this.options.format ?? ((n: number) => String(n))
    const elapsed = (performance.now() - this.started) / 1000
    const rate = elapsed > 0 ? this.current / elapsed : 0
    const parts = [this.label]
    if (this.total !== undefined && this.total > 0) {
      const frac = Math.min(1, this.current / this.total)
      const filled = Math.round(frac * width)
      parts.push(`[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`, `${fmt(this.current)}/${fmt(this.total)}`)
      const eta = rate > 0 ? (this.total - this.current) / rate : Number.NaN
      parts.push(`${fmt(rate)}${this.options.rateUnit ?? '/s'}`, `ETA ${formatDuration(eta)}`)
    } else {
      parts.push(fmt(this.current), `${fmt(rate)}${this.options.rateUnit ?? '/s'}`)
    }
    if (this.fields) parts.push(this.fields)
    return parts.join('  ')
  }

  private draw(): void {
    if (!this.enabled) return
    const columns = this.stream.columns ?? 100
    this.stream.write(`\r${this.render().slice(0, columns - 1)}\x1b[K`)
  }

  /** Clears the line, leaving the terminal as it was. */
  done(): void {
    if (this.enabled) this.stream.write('\r\x1b[K')
  }
}
