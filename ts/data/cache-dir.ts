// Where downloaded, extracted and decoded datasets are kept on disk.
import os from 'node:os'
import path from 'node:path'

/**
 * ConvKit's cache root: `$CONVKIT_CACHE_DIR`, else `$XDG_CACHE_HOME/convkit`, else `~/.cache/convkit`.
 * Mirrors `cacheRoot()` in `scripts/libtorch.cjs`, which must stay plain JavaScript for `npm install`.
 */
export function cacheRoot(): string {
  if (process.env.CONVKIT_CACHE_DIR) return path.resolve(process.env.CONVKIT_CACHE_DIR)
  const xdg = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache')
  return path.join(xdg, 'convkit')
}

/**
 * The folder datasets live in: `cacheDir` when given, else `<cache root>/datasets`.
 *
 * @example
 * datasetCacheDir()            // ~/.cache/convkit/datasets
 * datasetCacheDir('/tmp/data') // /tmp/data
 */
export function datasetCacheDir(cacheDir?: string): string {
  return cacheDir ? path.resolve(cacheDir) : path.join(cacheRoot(), 'datasets')
}
