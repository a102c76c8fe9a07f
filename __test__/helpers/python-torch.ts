// Finds a Python with torch 2.11 (and, per test, other modules) for the PyTorch reference tests; `npm run test:setup` installs one.
import { spawnSync } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'

const found = new Map<string, string | null>()

/**
 * `$CONVKIT_PYTHON`, the venv `npm run test:setup` makes in the cache, or `python3`: the first that has torch 2.11 and can import
 * `modules` (always with safetensors and numpy). Null when none does.
 */
export function pythonWith(modules: readonly string[] = []): string | null {
  const wanted = ['torch', 'safetensors', 'numpy', ...modules]
  const key = wanted.join(',')
  if (found.has(key)) return found.get(key)!
  const cache = process.env.CONVKIT_CACHE_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'convkit')
  const candidates = [process.env.CONVKIT_PYTHON, path.join(cache, 'pytorch-venv', 'bin', 'python'), 'python3'].filter(
    (c): c is string => !!c,
  )
  let result: string | null = null
  for (const python of candidates) {
    const probe = spawnSync(python, ['-c', `import ${wanted.join(', ')}; print(torch.__version__)`], { encoding: 'utf8', timeout: 120_000 })
    if (probe.status === 0 && probe.stdout.startsWith('2.11.')) {
      result = python
      break
    }
  }
  found.set(key, result)
  return result
}

/** A Python with torch 2.11, safetensors and numpy. */
export function pythonWithTorch(): string | null {
  return pythonWith()
}

/** What `needs()` should say is missing when `pythonWith(modules)` finds nothing. */
export function missingPython(modules: readonly string[] = []): string | null {
  return pythonWith(modules)
    ? null
    : `a python with torch 2.11, safetensors, numpy${modules.map((m) => `, ${m}`).join('')} (or set CONVKIT_PYTHON)`
}
