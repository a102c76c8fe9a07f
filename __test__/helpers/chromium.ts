// Headless Chromium for the specs that load a page (the run report, inspect.html, onnxruntime-web): where it is, and
// a page opened with its problems collected.
import fs from 'node:fs'
import type { Page } from 'puppeteer-core'

/** `$CHROMIUM_PATH`, else Debian's Chromium; undefined when there is none (the specs then skip, or fail under CI). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p))

/**
 * Opens `url` in a new headless Chromium and waits for it to load. `problems` collects uncaught page errors, failed
 * requests and, unless `consoleErrors` is false, console errors; `close` ends the browser (call it in a `finally`).
 */
export async function openPage(
  url: string,
  options: { consoleErrors?: boolean } = {},
): Promise<{ page: Page; problems: string[]; close: () => Promise<void> }> {
  const { default: puppeteer } = await import('puppeteer-core')
  const browser = await puppeteer.launch({ executablePath: CHROMIUM!, args: ['--no-sandbox', '--disable-gpu'] })
  try {
    const page = await browser.newPage()
    const problems: string[] = []
    page.on('pageerror', (e) => problems.push(String(e)))
    page.on('requestfailed', (r) => problems.push(`failed: ${r.url().slice(0, 80)}`))
    if (options.consoleErrors !== false)
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(m.text())
      })
    await page.goto(url, { waitUntil: 'load' })
    return { page, problems, close: () => browser.close() }
  } catch (err) {
    await browser.close()
    throw err
  }
}
