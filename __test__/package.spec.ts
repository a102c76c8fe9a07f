// `npm run package`, then what a user does with the tarballs: install them into a new project that cannot see
// this checkout, with no Rust on the PATH, train one epoch from an ES module, predict from CommonJS, type-check
// both kinds of importer, and run the `convkit` command; install them again with `--ignore-scripts`, where the first
// load links libtorch itself. And provisioning libtorch from PyPI, with a stand-in for pip.
import test from 'ava'
import { execFile, execFileSync, spawnSync, type SpawnSyncOptions } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { TRAIN_HELP } from '../ts/cli/train-command.ts'
import type { Prediction } from '../ts/index.ts'
import { cifarSubset } from './helpers/cifar-subset.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const consumer = path.join(repo, '__test__', 'fixtures', 'consumer')
const manifest = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')) as { name: string; version: string }
const tmp = tempDirs('package')
const CLASSES = ['airplane', 'cat', 'ship']

/** PATH without any folder that holds cargo or rustc, so an install that tried to build would fail. */
function pathWithoutRust(): string {
  const dirs = (process.env.PATH ?? '').split(path.delimiter)
  return dirs.filter((d) => !['cargo', 'rustc'].some((tool) => fs.existsSync(path.join(d, tool)))).join(path.delimiter)
}

function run(cmd: string, args: string[], options: SpawnSyncOptions): string {
  return runSplit(cmd, args, options).output
}

function runSplit(cmd: string, args: string[], options: SpawnSyncOptions): { stdout: string; stderr: string; output: string } {
  const result = spawnSync(cmd, args, { encoding: 'utf8', timeout: 240_000, ...options })
  const [stdout, stderr] = [String(result.stdout ?? ''), String(result.stderr ?? '')]
  const output = `${stdout}${stderr}`
  if (result.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${result.status ?? result.signal}:\n${output}`)
  return { stdout, stderr, output }
}

/** What a user's shell has: no cargo, no LIBTORCH (so libtorch is found the way a fresh install finds it). */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: pathWithoutRust() }
  delete env.LIBTORCH
  return env
}

/** `npx convkit …` in `project`; `--no` so that a missing bin fails instead of fetching a package from the registry. */
function convkit(project: string, args: string[]): { stdout: string; stderr: string; output: string } {
  return runSplit('npx', ['--no', '--', 'convkit', ...args], { cwd: project, env: userEnv() })
}

/** A new project holding copies of the tarballs: nothing in it points back into the checkout. */
function newProject(tarballs: readonly string[]): string {
  const project = tmp()
  for (const file of tarballs) fs.copyFileSync(path.join(repo, 'dist', file), path.join(project, file))
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'convkit-consumer', version: '1.0.0', private: true }))
  return project
}

/** Packs once for both installs; `npm run package` compiles the TypeScript, so it is the slow part. */
let packed: Promise<string[]> | undefined
function pack(): Promise<string[]> {
  packed ??= Promise.resolve().then(() => {
    run(process.execPath, [path.join(repo, 'scripts', 'package.mjs')], { cwd: repo })
    return fs
      .readdirSync(path.join(repo, 'dist'))
      .filter((f) => f.startsWith(`${manifest.name}-`) && f.endsWith('.tgz'))
      .sort()
  })
  return packed
}

/** The first install: its project, and the checkpoint its run wrote and what it predicted. */
let installed: { project: string; checkpoint: string; prediction: Prediction } | undefined

test.serial('the packed tarballs install without Rust and train, predict and type-check from ESM and CommonJS', async (t) => {
  const tarballs = await pack()
  t.deepEqual(tarballs, [`${manifest.name}-${manifest.version}.tgz`, `${manifest.name}-linux-x64-gnu-${manifest.version}.tgz`])

  const project = newProject(tarballs)
  for (const file of fs.readdirSync(consumer)) fs.copyFileSync(path.join(consumer, file), path.join(project, file))
  const source = path.dirname(cifarSubset().train)
  for (const name of CLASSES) {
    fs.mkdirSync(path.join(project, 'images', name), { recursive: true })
    for (let i = 0; i < 40; i++) {
      const file = `${String(i).padStart(4, '0')}.jpg`
      fs.copyFileSync(path.join(source, 'train', name, file), path.join(project, 'images', name, file))
    }
  }

  const env = userEnv()
  t.not(spawnSync('cargo', ['--version'], { env }).status, 0, 'cargo is off the PATH')
  const devTools = ['typescript', '@types/node'].map((name) => {
    const version = (JSON.parse(fs.readFileSync(path.join(repo, 'node_modules', name, 'package.json'), 'utf8')) as { version: string })
      .version
    return `${name}@${version}`
  })
  const installLog = run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs.map((f) => `./${f}`), ...devTools], {
    cwd: project,
    env,
  })
  t.notRegex(installLog, /building the native addon/)
  const addonDir = path.join(project, 'node_modules', `${manifest.name}-linux-x64-gnu`)
  t.true(fs.lstatSync(path.join(addonDir, 'libtorch')).isSymbolicLink(), 'the install script linked libtorch beside the addon')
  const readelf = spawnSync('readelf', ['-d', path.join(addonDir, `convkit.linux-x64-gnu.node`)], { encoding: 'utf8' })
  if (readelf.status === 0)
    t.regex(readelf.stdout, /RUNPATH.*\[\$ORIGIN\/libtorch\/lib\]/, 'the shipped addon looks for libtorch only beside itself')

  const esm = JSON.parse(run(process.execPath, ['train-and-predict.mjs'], { cwd: project, env }).trim().split('\n').at(-1)!) as {
    checkpoint: string
    classes: string[]
    epochs: number
    prediction: Prediction
  }
  t.is(esm.epochs, 1)
  t.deepEqual(esm.classes, CLASSES)
  t.true(CLASSES.includes(esm.prediction.label))
  t.true(esm.prediction.probability > 0 && esm.prediction.probability <= 1)
  t.true(fs.existsSync(path.resolve(project, esm.checkpoint)))

  const cjs = JSON.parse(run(process.execPath, ['predict.cjs', esm.checkpoint], { cwd: project, env }).trim()) as { prediction: Prediction }
  t.deepEqual(cjs.prediction, esm.prediction, 'CommonJS and ES module builds give the same prediction')
  installed = { project, checkpoint: path.resolve(project, esm.checkpoint), prediction: esm.prediction }

  // The fixtures' expect-error lines fail this check if the declarations resolved to `any`.
  run(process.execPath, [path.join(project, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: project, env })
  const traced = execFileSync(
    process.execPath,
    [path.join(project, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json', '--traceResolution'],
    {
      cwd: project,
      encoding: 'utf8',
      maxBuffer: 64 * 2 ** 20,
    },
  )
  t.regex(traced, /'convkit' was successfully resolved to '.*\/node_modules\/convkit\/lib\/esm\/index\.d\.ts'/)
  t.regex(traced, /'convkit' was successfully resolved to '.*\/node_modules\/convkit\/lib\/cjs\/index\.d\.ts'/)
})

test.serial("the installed package has a convkit command with the checkout's commands, help and results", (t) => {
  if (!installed) return t.fail('the first install failed')
  const { project } = installed

  const help = convkit(project, ['--help']).stdout
  for (const command of ['train', 'predict', 'plot', 'summary']) t.regex(help, new RegExp(`^  ${command} `, 'm'))
  t.is(convkit(project, ['--version']).stdout.trim(), manifest.version)
  t.is(convkit(project, ['train', '--help']).stdout, `${TRAIN_HELP}\n`, 'the same help as `npm run train -- --help` in the checkout')
  const unknown = spawnSync('npx', ['--no', '--', 'convkit', 'fit'], { cwd: project, env: userEnv(), encoding: 'utf8' })
  t.is(unknown.status, 2)
  const listed = /unknown command "fit"; the commands are (.+) \(convkit --help\)/.exec(unknown.stderr)?.[1]?.split(', ') ?? []
  for (const command of ['train', 'predict', 'plot', 'summary']) t.true(listed.includes(command), `${command} in ${unknown.stderr}`)

  convkit(project, [
    'train',
    '--data',
    'images',
    '--test-split',
    '0.25',
    '--val-split',
    '0',
    '--epochs',
    '1',
    '--out',
    'cli-run',
    '--quiet',
    '--no-report',
    '--device',
    'cpu',
  ])
  const checkpoint = path.join('cli-run', 'last.safetensors')
  t.true(fs.existsSync(path.join(project, checkpoint)))
  const lines = convkit(project, ['predict', '--json', '--model', checkpoint, 'images/cat/0001.jpg', 'images/ship/0001.jpg'])
    .stdout.trim()
    .split('\n')
  const predictions = lines.map((line) => JSON.parse(line) as { file: string; label: string; probability: number })
  t.deepEqual(
    predictions.map((p) => p.file),
    ['images/cat/0001.jpg', 'images/ship/0001.jpg'],
  )
  for (const p of predictions) t.true(CLASSES.includes(p.label) && p.probability > 0 && p.probability <= 1)
  // The reference CNN on 32×32 RGB with 3 classes: 896 + 18,496 + 2,097,664 + 1,539 parameters.
  t.regex(convkit(project, ['summary', '--model', checkpoint]).stdout, /Total params: 2,118,595/)
  t.regex(convkit(project, ['summary', '--model', 'mobilenet_v2']).stdout, /Total params: 3,504,872/, "torchvision's count")
})

test.serial('installed with --ignore-scripts, the first load links libtorch itself, in two processes at once', async (t) => {
  if (!installed) return t.fail('the first install failed')
  const trained = installed
  const project = newProject(await pack())
  const env = userEnv()
  run('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', ...(await pack()).map((f) => `./${f}`)], {
    cwd: project,
    env,
  })
  const link = path.join(project, 'node_modules', `${manifest.name}-linux-x64-gnu`, 'libtorch')
  t.false(fs.existsSync(link), 'no install script ran, so nothing linked libtorch')

  // Two first loads at once: each may link, by renaming its own link into place, and both load.
  const load = "const { runtimeInfo } = require('convkit'); console.log(JSON.stringify(runtimeInfo()))"
  const loads = await Promise.all(
    [0, 1].map(() => promisify(execFile)(process.execPath, ['-e', load], { cwd: project, env, encoding: 'utf8' })),
  )
  for (const { stdout } of loads) t.is((JSON.parse(stdout) as { torchVersion: string }).torchVersion, '2.11.0')
  const stderr = loads.map((l) => l.stderr).join('')
  t.regex(stderr, /libtorch is not linked beside the prebuilt addon yet/)
  // Found, not downloaded: the first install (or the checkout's) left libtorch in the cache.
  t.regex(stderr, /convkit: libtorch 2\.11\.0 from .+ \((cache|python)\)/)
  t.notRegex(stderr, /downloading|provisioning it/)
  t.true(fs.lstatSync(link).isSymbolicLink())
  t.true(fs.existsSync(path.join(link, 'lib', 'libtorch_cpu.so')))
  t.deepEqual(
    fs.readdirSync(path.dirname(link)).filter((f) => f.startsWith('libtorch.')),
    [],
    'no temporary links left behind',
  )

  // From then on a load is silent, and the package works: predict from CommonJS with the first install's checkpoint.
  fs.copyFileSync(path.join(consumer, 'predict.cjs'), path.join(project, 'predict.cjs'))
  fs.mkdirSync(path.join(project, 'images', 'cat'), { recursive: true })
  fs.copyFileSync(path.join(path.dirname(cifarSubset().train), 'train', 'cat', '0001.jpg'), path.join(project, 'images', 'cat', '0001.jpg'))
  const predicted = runSplit(process.execPath, ['predict.cjs', trained.checkpoint], { cwd: project, env })
  t.is(predicted.stderr, '')
  t.deepEqual((JSON.parse(predicted.stdout) as { prediction: Prediction }).prediction, trained.prediction)
})

/**
 * A stand-in for `python3` whose `-m pip download` writes a tiny torch wheel (libtorch_cpu.so and a header, both
 * empty) after a pause and logs the call; everything else goes to the real python3.
 */
function fakePython(dir: string): { python: string; calls: string } {
  const python = path.join(dir, 'python3')
  const calls = path.join(dir, 'pip-calls.log')
  const wheel = [
    'import sys, time, zipfile',
    'time.sleep(1)',
    "with zipfile.ZipFile(sys.argv[1] + '/torch-2.11.0-cp311-cp311-manylinux_2_28_x86_64.whl', 'w') as z:",
    "    z.writestr('torch/lib/libtorch_cpu.so', b'')",
    "    z.writestr('torch/include/torch.h', b'')",
  ].join('\n')
  fs.writeFileSync(
    python,
    [
      '#!/bin/sh',
      'if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then',
      `  echo "$$" >> '${calls}'`,
      '  while [ "$1" != "--dest" ]; do shift; done',
      `  exec python3 -c '${wheel.replaceAll("'", "'\\''")}' "$2"`,
      'fi',
      'exec python3 "$@"',
      '',
    ].join('\n'),
    { mode: 0o755 },
  )
  return { python, calls }
}

test.serial('provisioning libtorch: processes starting at once download it once, and an abandoned lock is taken over', async (t) => {
  const dir = tmp('provision')
  const { python, calls } = fakePython(dir)
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PYTHON: python,
    CONVKIT_CACHE_DIR: path.join(dir, 'cache'),
    CONVKIT_REUSE_PYTHON_TORCH: '0',
  }
  delete env.LIBTORCH
  const script = path.join(repo, 'scripts', 'libtorch.mjs')
  const provisioned = path.join(dir, 'cache', 'torch-2.11.0')
  const provision = () => promisify(execFile)(process.execPath, [script], { env, encoding: 'utf8' })

  const both = await Promise.all([provision(), provision()])
  for (const { stdout } of both) t.regex(stdout, new RegExp(`using libtorch 2\\.11\\.0 from ${provisioned}/torch \\(cache\\)`))
  t.is(fs.readFileSync(calls, 'utf8').trim().split('\n').length, 1, 'one pip download for both')
  t.deepEqual(fs.readdirSync(path.join(dir, 'cache')), ['torch-2.11.0'], 'no lock or partial copy left behind')
  t.true(fs.existsSync(path.join(provisioned, 'torch', 'lib', 'libtorch_cpu.so')))

  // A lock whose process is gone (killed mid-download) does not block the next install.
  fs.rmSync(provisioned, { recursive: true })
  const gone = spawnSync('true').pid
  fs.mkdirSync(`${provisioned}.lock`)
  fs.writeFileSync(path.join(`${provisioned}.lock`, 'owner.json'), JSON.stringify({ pid: gone, host: os.hostname(), since: Date.now() }))
  const again = await provision()
  t.regex(`${again.stdout}${again.stderr}`, new RegExp(`removing the abandoned lock .* \\(process ${gone} is gone\\)`))
  t.is(fs.readFileSync(calls, 'utf8').trim().split('\n').length, 2)
  t.deepEqual(fs.readdirSync(path.join(dir, 'cache')), ['torch-2.11.0'])
})
