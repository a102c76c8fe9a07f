// Finds libtorch for the build and the addon, provisioning it from PyPI's torch wheel when it is missing, and links
// it beside the prebuilt addon. The one implementation behind `npm install` (scripts/install.mjs) and the addon's
// first load (ts/binding.ts, when install scripts were skipped). Plain CommonJS on purpose: it runs at `npm install`,
// before (or without) any TypeScript tooling, and the loader `require`s it synchronously from ES module and
// CommonJS builds alike. scripts/libtorch.mjs is its ES module face.
'use strict'
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const { createRequire } = require('node:module')
const os = require('node:os')
const path = require('node:path')

/** The libtorch version that tch 0.24 is written against; the GPU machines we check on run the same. */
const TORCH_VERSION = '2.11.0'

/**
 * `libtorch_cpu.so` in the CUDA 13 wheel links these two libraries, so a CPU-only machine needs them too.
 * Versions are the ones torch 2.11.0 pins through `cuda-toolkit==13.0.2`.
 */
const CPU_RUNTIME_WHEELS = ['nvidia-cuda-runtime==13.0.96', 'nvidia-cuda-cupti==13.0.85']

/** Parts of the torch wheel that a C++ consumer needs; the Python sources are left behind. */
const TORCH_MEMBERS = ['torch/lib/', 'torch/include/', 'torch/share/']
const SKIPPED_MEMBERS = ['torch/lib/libtorch_python.so']

/** The platform the prebuilt addon is built for, as napi names it. */
const PREBUILT_PLATFORM = 'linux-x64-gnu'

/** A lock older than this is taken for abandoned even when its owner cannot be checked (another host). */
const STALE_LOCK_MS = 2 * 60 * 60 * 1000

class LibtorchError extends Error {
  constructor(message) {
    super(`${message}\nSet LIBTORCH to the root of a libtorch ${TORCH_VERSION} (the folder holding lib/ and include/) to use your own.`)
    this.name = 'LibtorchError'
    this.code = 'LIBTORCH_NOT_FOUND'
  }
}

/** The prebuilt addon is missing or cannot exist here; `code` says which. */
class AddonError extends Error {
  constructor(code, message) {
    super(message)
    this.name = 'AddonError'
    this.code = code
  }
}

const defaultLog = (line) => console.log(`convkit: ${line}`)

/** Where downloads and decoded datasets live: `$CONVKIT_CACHE_DIR`, else `$XDG_CACHE_HOME/convkit`, else `~/.cache/convkit`. */
function cacheRoot() {
  if (process.env.CONVKIT_CACHE_DIR) return path.resolve(process.env.CONVKIT_CACHE_DIR)
  const xdg = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache')
  return path.join(xdg, 'convkit')
}

/** The folder a provisioned libtorch lands in; it mirrors site-packages so the wheel's own rpaths resolve. */
function provisionedRoot() {
  return path.join(cacheRoot(), `torch-${TORCH_VERSION}`)
}

function isLibtorch(dir) {
  return fs.existsSync(path.join(dir, 'lib', 'libtorch_cpu.so')) && fs.existsSync(path.join(dir, 'include'))
}

function python() {
  return process.env.PYTHON || 'python3'
}

function pythonTorch() {
  if (process.env.CONVKIT_REUSE_PYTHON_TORCH === '0') return null
  const probe = spawnSync(python(), ['-c', 'import os, torch; print(torch.__version__); print(os.path.dirname(torch.__file__))'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
    timeout: 60_000,
  })
  if (probe.status !== 0) return null
  const [version, dir] = probe.stdout.trim().split('\n')
  if (version?.split('+')[0] !== TORCH_VERSION || !dir || !isLibtorch(dir)) return null
  return dir
}

/** The copy provisioned earlier into the cache, if it is whole. */
function cachedLibtorch() {
  const cached = path.join(provisionedRoot(), 'torch')
  return fs.existsSync(path.join(provisionedRoot(), 'convkit.json')) && isLibtorch(cached) ? { dir: cached, source: 'cache' } : null
}

/**
 * Locates libtorch without downloading anything: LIBTORCH, then the cache, then a Python torch.
 * @returns {{ dir: string, source: 'LIBTORCH' | 'cache' | 'python' } | null}
 */
function findLibtorch() {
  const fromEnv = process.env.LIBTORCH
  if (fromEnv) {
    if (!isLibtorch(fromEnv)) throw new LibtorchError(`LIBTORCH=${fromEnv} has no lib/libtorch_cpu.so and include/.`)
    return { dir: path.resolve(fromEnv), source: 'LIBTORCH' }
  }
  const cached = cachedLibtorch()
  if (cached) return cached
  const fromPython = pythonTorch()
  return fromPython ? { dir: fromPython, source: 'python' } : null
}

/** Runs a tool with its output on stderr: stdout belongs to whoever loads the addon (`convkit predict --json`). */
function run(cmd, args, what) {
  const result = spawnSync(cmd, args, { stdio: ['ignore', 2, 2] })
  if (result.error) throw new LibtorchError(`${what} failed: ${cmd} could not be started (${result.error.message}).`)
  if (result.status !== 0)
    throw new LibtorchError(`${what} failed: ${cmd} ${args.join(' ')} exited with ${result.status ?? result.signal}.`)
}

function pipDownload(specs, into, log, { deps = false } = {}) {
  log(`downloading ${specs.join(', ')} from PyPI with pip`)
  run(
    python(),
    [
      '-m',
      'pip',
      'download',
      ...(deps ? [] : ['--no-deps']),
      '--only-binary=:all:',
      '--platform',
      'manylinux_2_28_x86_64',
      '--platform',
      'manylinux_2_25_x86_64',
      '--platform',
      'manylinux_2_17_x86_64',
      '--platform',
      'manylinux2014_x86_64',
      '--python-version',
      '3.11',
      '--implementation',
      'cp',
      '--dest',
      into,
      ...specs,
    ],
    'pip download',
  )
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
  run(python(), ['-c', code, into, JSON.stringify(prefixes), JSON.stringify(skipped), ...wheels], 'unpacking')
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
  const out = spawnSync(python(), ['-c', code, wheel], { encoding: 'utf8' })
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

/** Blocks the thread: provisioning is synchronous wherever it runs, and a waiter has nothing else to do. */
function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/** Why the lock at `lock` is abandoned, or null while its owner may still be working. */
function staleLock(lock) {
  let owner
  try {
    owner = JSON.parse(fs.readFileSync(path.join(lock, 'owner.json'), 'utf8'))
  } catch {
    // Made but not yet claimed: its owner writes owner.json right after mkdir, so only a crash leaves it so for long.
    const age = Date.now() - (fs.statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now())
    return age > 60_000 ? 'it names no owner' : null
  }
  if (owner.host === os.hostname()) {
    try {
      process.kill(owner.pid, 0)
    } catch (err) {
      if (err.code === 'ESRCH') return `process ${owner.pid} is gone`
    }
    return null
  }
  return Date.now() - owner.since > STALE_LOCK_MS ? `it is older than ${STALE_LOCK_MS / 3_600_000} hours` : null
}

/**
 * Runs `fn` while holding `lock` (a folder), so that processes starting at once (test workers loading the addon
 * for the first time) download libtorch once, not once each. Correctness does not depend on it: every copy is
 * staged under its own name and renamed into place.
 */
function withLock(lock, log, fn) {
  let told = false
  for (;;) {
    try {
      fs.mkdirSync(lock)
      break
    } catch (err) {
      if (err.code !== 'EEXIST') throw err
    }
    const stale = staleLock(lock)
    if (stale) {
      log(`removing the abandoned lock ${lock} (${stale})`)
      fs.rmSync(lock, { recursive: true, force: true })
      continue
    }
    if (!told) log(`another process is provisioning libtorch (${lock}); waiting for it`)
    told = true
    sleep(1000)
  }
  try {
    fs.writeFileSync(path.join(lock, 'owner.json'), JSON.stringify({ pid: process.pid, host: os.hostname(), since: Date.now() }))
    return fn()
  } finally {
    fs.rmSync(lock, { recursive: true, force: true })
  }
}

function provisionInto(root, log) {
  const staging = `${root}.partial-${process.pid}`
  const downloads = path.join(staging, 'wheels')
  fs.rmSync(staging, { recursive: true, force: true })
  fs.mkdirSync(downloads, { recursive: true })
  try {
    const withCuda = process.env.CONVKIT_LIBTORCH_CUDA === '1'
    log(
      `libtorch ${TORCH_VERSION} not found; provisioning it into ${root} (about 540 MB to download, 1 GB on disk${withCuda ? ', plus about 2 GB of CUDA libraries' : ''})`,
    )
    pipDownload([`torch==${TORCH_VERSION}`, ...CPU_RUNTIME_WHEELS], downloads, log)
    const torchWheel = fs.readdirSync(downloads).find((f) => f.startsWith('torch-'))
    if (!torchWheel) throw new LibtorchError(`pip download left no torch wheel in ${downloads}.`)
    if (withCuda) {
      // cuda-toolkit is a meta package whose extras name the nvidia-* wheels, so only it is resolved with deps.
      const requirements = cudaRequirements(path.join(downloads, torchWheel))
      pipDownload(
        requirements.filter((r) => !r.startsWith('cuda-toolkit')),
        downloads,
        log,
      )
      pipDownload(
        requirements.filter((r) => r.startsWith('cuda-toolkit')),
        downloads,
        log,
        { deps: true },
      )
    }
    const wheels = fs
      .readdirSync(downloads)
      .filter((f) => f.endsWith('.whl'))
      .map((f) => path.join(downloads, f))
    log(`unpacking ${wheels.length} wheels`)
    extractWheels(wheels, staging, [...TORCH_MEMBERS, 'nvidia/'], SKIPPED_MEMBERS)
    fs.rmSync(downloads, { recursive: true, force: true })
    fs.writeFileSync(path.join(staging, 'torch', 'build-version'), TORCH_VERSION)
    fs.writeFileSync(
      path.join(staging, 'convkit.json'),
      JSON.stringify({ version: TORCH_VERSION, cuda: withCuda, wheels: wheels.map((w) => path.basename(w)) }, null, 2),
    )
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

/**
 * Downloads torch's wheel plus the CUDA runtime and CUPTI (what `libtorch_cpu.so` links) into the cache.
 * With `CONVKIT_LIBTORCH_CUDA=1` it also fetches cuDNN, cuBLAS, NCCL and the rest, for CUDA machines.
 * The result appears under its final name only once it is whole, so an interrupted install leaves nothing that
 * looks ready; a process that finds another one provisioning waits for it and uses its copy.
 */
function provisionLibtorch(log = defaultLog) {
  const root = provisionedRoot()
  fs.mkdirSync(path.dirname(root), { recursive: true })
  return withLock(`${root}.lock`, log, () => cachedLibtorch() ?? provisionInto(root, log))
}

/** Finds libtorch, or provisions it. */
function ensureLibtorch(log = defaultLog) {
  return findLibtorch() ?? provisionLibtorch(log)
}

/** Whether `root` is a git checkout, which builds its addon from source instead of using a prebuilt one. */
function isCheckout(root) {
  return fs.existsSync(path.join(root, 'crates', 'node', 'Cargo.toml'))
}

/** The folder of the prebuilt addon package installed beside the package at `root`; throws an AddonError when there is none. */
function prebuiltAddonDir(root) {
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
  const name = `${manifest.name}-${PREBUILT_PLATFORM}`
  try {
    return path.dirname(fs.realpathSync(createRequire(path.join(root, 'package.json')).resolve(`${name}/package.json`)))
  } catch {
    // Checked only now: the report is slow, and the package is there on every platform it installs on.
    const glibc = process.report?.getReport().header.glibcVersionRuntime
    if (process.platform !== 'linux' || process.arch !== 'x64' || !glibc) {
      throw new AddonError(
        'PLATFORM_UNSUPPORTED',
        `there is no prebuilt addon for ${process.platform}-${process.arch}${glibc ? '' : ' without glibc'}: ConvKit ships one for Linux x64 with glibc. ` +
          'Elsewhere, build from a git checkout (`npm install` there needs Rust and a libtorch for your platform in LIBTORCH).',
      )
    }
    throw new AddonError(
      'ADDON_NOT_INSTALLED',
      `the prebuilt addon package ${name} is not installed; it is an optional dependency, so \`npm install --omit=optional\` or ` +
        'a lockfile made on another platform leaves it out. Install it next to convkit.',
    )
  }
}

/** The link through which the prebuilt addon in `addonDir` loads libtorch (its rpath is `$ORIGIN/libtorch/lib`). */
function libtorchLink(addonDir) {
  return path.join(addonDir, 'libtorch')
}

/** Whether that link leads to a libtorch. Cheap: the addon's loader checks it on every start. */
function isLinked(addonDir) {
  return fs.existsSync(path.join(libtorchLink(addonDir), 'lib', 'libtorch_cpu.so'))
}

/**
 * Points `<addon package>/libtorch` at libtorch's root, replacing an older link in one rename, so a process that
 * loads the addon meanwhile sees the old link or the new one, never none.
 */
function linkLibtorch(addonDir, libtorchDir) {
  const link = libtorchLink(addonDir)
  const temp = `${link}.${process.pid}`
  fs.rmSync(temp, { force: true })
  try {
    fs.symlinkSync(libtorchDir, temp, 'dir')
    fs.renameSync(temp, link)
  } catch (err) {
    fs.rmSync(temp, { force: true })
    throw new AddonError(
      'LINK_FAILED',
      `could not link libtorch into ${addonDir} (${err.code ?? err.message}): that folder must be writable by whoever ` +
        'installs or first loads convkit; run `npm rebuild convkit` as the user who installed it.',
    )
  }
  return link
}

/**
 * What installing the published package does: finds (or provisions) libtorch and links it beside the prebuilt
 * addon, logging each step. The addon is looked for first, so a missing one fails before any download.
 */
function linkPrebuilt(root, log = defaultLog) {
  const addonDir = prebuiltAddonDir(root)
  const libtorch = ensureLibtorch(log)
  log(`libtorch ${TORCH_VERSION} from ${libtorch.dir} (${libtorch.source})`)
  const link = linkLibtorch(addonDir, libtorch.dir)
  log(`the prebuilt addon in ${addonDir} loads libtorch through ${link}`)
  return libtorch
}

/**
 * The addon's loader calls this before loading: when libtorch is not linked beside the prebuilt addon (install
 * scripts were skipped), it does what the install script does, saying so on stderr through `log`. Returns null
 * without touching anything in a checkout and once the link leads to a libtorch.
 */
function linkPrebuiltIfMissing(root, log) {
  if (isCheckout(root)) return null
  const addonDir = prebuiltAddonDir(root)
  if (isLinked(addonDir)) return null
  const link = libtorchLink(addonDir)
  const target = fs.lstatSync(link, { throwIfNoEntry: false })?.isSymbolicLink() ? fs.readlinkSync(link) : null
  log(
    target
      ? `${link} leads to ${target}, which holds no libtorch any more; linking libtorch again`
      : `libtorch is not linked beside the prebuilt addon yet (its install script did not run, e.g. \`npm i --ignore-scripts\`); doing what it does now, once`,
  )
  log(
    `this first load waits while libtorch is looked up (LIBTORCH, ${provisionedRoot()}, a Python torch) and, if none is found, downloaded (about 540 MB with pip)`,
  )
  return linkPrebuilt(root, log)
}

module.exports = {
  TORCH_VERSION,
  LibtorchError,
  AddonError,
  cacheRoot,
  provisionedRoot,
  findLibtorch,
  provisionLibtorch,
  ensureLibtorch,
  isCheckout,
  prebuiltAddonDir,
  isLinked,
  linkLibtorch,
  linkPrebuilt,
  linkPrebuiltIfMissing,
}
