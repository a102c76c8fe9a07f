// Finds a Python with torch 2.11 and safetensors for the PyTorch interop tests; .ci/run installs one.
import { spawnSync } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'

/** `$CONVKIT_PYTHON`, the venv `.ci/run` makes in the cache, or `python3`: the first that imports torch 2.11 and safetensors. */
export function pythonWithTorch(): string | null {
  const cache = process.env.CONVKIT_CACHE_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'convkit')
  const candidates = [process.env.CONVKIT_PYTHON, path.join(cache, 'pytorch-venv', 'bin', 'python'), 'python3'].filter((c): c is string => !!c)
  for (const python of candidates) {
    const probe = spawnSync(python, ['-c', 'import torch, safetensors, numpy; print(torch.__version__)'], { encoding: 'utf8', timeout: 120_000 })
    if (probe.status === 0 && probe.stdout.startsWith('2.11.')) return python
  }
  return null
}
