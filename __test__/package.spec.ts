// `npm run package`, then what a user does with the tarballs: install them into a new project that cannot see
// this checkout, with no Rust on the PATH, train one epoch from an ES module, predict from CommonJS, and
// type-check both kinds of importer.
import test from 'ava'
import { execFileSync, spawnSync, type SpawnSyncOptions } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
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
  const result = spawnSync(cmd, args, { encoding: 'utf8', timeout: 240_000, ...options })
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`
  if (result.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${result.status ?? result.signal}:\n${output}`)
  return output
}

test('the packed tarballs install without Rust and train, predict and type-check from ESM and CommonJS', async (t) => {
  run(process.execPath, [path.join(repo, 'scripts', 'package.mjs')], { cwd: repo })
  const tarballs = fs
    .readdirSync(path.join(repo, 'dist'))
    .filter((f) => f.startsWith(`${manifest.name}-`) && f.endsWith('.tgz'))
    .sort()
  t.deepEqual(tarballs, [`${manifest.name}-${manifest.version}.tgz`, `${manifest.name}-linux-x64-gnu-${manifest.version}.tgz`])

  // The project gets copies of the tarballs and images: nothing in it points back into the checkout.
  const project = tmp()
  for (const file of tarballs) fs.copyFileSync(path.join(repo, 'dist', file), path.join(project, file))
  for (const file of fs.readdirSync(consumer)) fs.copyFileSync(path.join(consumer, file), path.join(project, file))
  const source = path.dirname(cifarSubset().train)
  for (const name of CLASSES) {
    fs.mkdirSync(path.join(project, 'images', name), { recursive: true })
    for (let i = 0; i < 40; i++) {
      const file = `${String(i).padStart(4, '0')}.jpg`
      fs.copyFileSync(path.join(source, 'train', name, file), path.join(project, 'images', name, file))
    }
  }
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'convkit-consumer', version: '1.0.0', private: true }))

  const env: NodeJS.ProcessEnv = { ...process.env, PATH: pathWithoutRust() }
  delete env.LIBTORCH
  t.not(spawnSync('cargo', ['--version'], { env }).status, 0, 'cargo is off the PATH')
  const devTools = ['typescript', '@types/node'].map((name) => {
    const version = (JSON.parse(fs.readFileSync(path.join(repo, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
    return `${name}@${version}`
  })
  const installLog = run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs.map((f) => `./${f}`), ...devTools], { cwd: project, env })
  t.notRegex(installLog, /building the native addon/)
  const addonDir = path.join(project, 'node_modules', `${manifest.name}-linux-x64-gnu`)
  t.true(fs.lstatSync(path.join(addonDir, 'libtorch')).isSymbolicLink(), 'the install script linked libtorch beside the addon')
  const readelf = spawnSync('readelf', ['-d', path.join(addonDir, `convkit.linux-x64-gnu.node`)], { encoding: 'utf8' })
  if (readelf.status === 0) t.regex(readelf.stdout, /RUNPATH.*\[\$ORIGIN\/libtorch\/lib\]/, 'the shipped addon looks for libtorch only beside itself')

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

  // The fixtures' expect-error lines fail this check if the declarations resolved to `any`.
  run(process.execPath, [path.join(project, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: project, env })
  const traced = execFileSync(process.execPath, [path.join(project, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json', '--traceResolution'], {
    cwd: project,
    encoding: 'utf8',
    maxBuffer: 64 * 2 ** 20,
  })
  t.regex(traced, /'convkit' was successfully resolved to '.*\/node_modules\/convkit\/lib\/esm\/index\.d\.ts'/)
  t.regex(traced, /'convkit' was successfully resolved to '.*\/node_modules\/convkit\/lib\/cjs\/index\.d\.ts'/)
})
