// `npm run package`: writes the npm tarballs into dist/, the way napi ships native addons:
//   convkit-<version>.tgz                 compiled ES modules and CommonJS with type declarations, the napi loader,
//                                         the `convkit` command (bin/convkit.js), and the code that finds or
//                                         provisions libtorch (run by the install script, or by the first load);
//   convkit-linux-x64-gnu-<version>.tgz   the prebuilt addon, an optional dependency of the first.
// Installing them needs no Rust. A checkout's own `npm install` still builds from source.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { transformSync } from 'esbuild'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
const PLATFORM = 'linux-x64-gnu'
const ADDON = `${manifest.napi.binaryName}.${PLATFORM}.node`
const platformName = `${manifest.name}-${PLATFORM}`
const stage = path.join(root, 'target', 'package')
const dist = path.join(root, 'dist')
/** The rpath entry an installed addon resolves libtorch through; see crates/node/build.rs. */
const PORTABLE_RPATH = '$ORIGIN/libtorch/lib'

function run(cmd, args, options = {}) {
  const result = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...options })
  if (result.status !== 0) {
    console.error(`package: ${cmd} ${args.join(' ')} failed (${result.error?.message ?? `exit ${result.status}`})`)
    process.exit(1)
  }
  return result
}

function writeJson(file, value) {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`)
}

function filesUnder(dir) {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath ?? e.path, e.name)))
}

/**
 * The CommonJS twin of each compiled ES module, converted file by file so relative paths stay as they are;
 * `import.meta.url` becomes the file's own URL. Declarations are copied: a `{"type": "commonjs"}` beside them
 * makes TypeScript read them as CommonJS for `require` callers.
 */
function commonJsFrom(esm, cjs) {
  for (const rel of filesUnder(esm)) {
    const to = path.join(cjs, rel)
    fs.mkdirSync(path.dirname(to), { recursive: true })
    if (rel.endsWith('.d.ts')) {
      fs.copyFileSync(path.join(esm, rel), to)
    } else if (rel.endsWith('.js')) {
      const { code } = transformSync(fs.readFileSync(path.join(esm, rel), 'utf8'), {
        format: 'cjs',
        platform: 'node',
        target: 'node20',
        sourcefile: rel,
        define: { 'import.meta.url': '__convkit_module_url' },
        banner: "const __convkit_module_url = require('node:url').pathToFileURL(__filename).href;",
      })
      fs.writeFileSync(to, code)
    }
  }
  writeJson(path.join(cjs, 'package.json'), { type: 'commonjs' })
}

/**
 * Cuts the addon's RUNPATH to its first entry in place: the string only gets shorter, so nothing else in the
 * ELF moves. What follows the entry (the builder's libtorch folder) is overwritten with zeros.
 */
function portableAddon(from, to) {
  const bytes = fs.readFileSync(from)
  const prefix = Buffer.from(`${PORTABLE_RPATH}:`)
  const at = bytes.indexOf(prefix)
  if (at < 0 || bytes.indexOf(prefix, at + 1) >= 0) {
    console.error(`package: ${from} has no single RUNPATH starting with ${PORTABLE_RPATH}; rebuild it with \`npm run build\`.`)
    process.exit(1)
  }
  const end = bytes.indexOf(0, at)
  bytes.fill(0, at + PORTABLE_RPATH.length, end)
  fs.writeFileSync(to, bytes, { mode: 0o755 })
}

const common = {
  version: manifest.version,
  description: manifest.description,
  license: manifest.license,
  engines: manifest.engines,
}

fs.rmSync(stage, { recursive: true, force: true })
fs.mkdirSync(dist, { recursive: true })
// Only this package's earlier tarballs go; anything else in dist/ is left alone.
for (const file of fs.readdirSync(dist)) if (file.startsWith(`${manifest.name}-`) && file.endsWith('.tgz')) fs.rmSync(path.join(dist, file))

// Up to date in seconds when nothing changed; makes sure the addon matches this checkout.
run(process.execPath, [path.join(root, 'scripts', 'build-addon.mjs')])

const main = path.join(stage, manifest.name)
const lib = path.join(main, 'lib')
run(process.execPath, [
  path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
  '-p',
  'tsconfig.build.json',
  '--outDir',
  path.join(lib, 'esm'),
])
commonJsFrom(path.join(lib, 'esm'), path.join(lib, 'cjs'))
for (const file of ['index.cjs', 'index.d.cts']) {
  fs.mkdirSync(path.join(lib, 'native'), { recursive: true })
  fs.copyFileSync(path.join(root, 'native', file), path.join(lib, 'native', file))
}
for (const file of ['scripts/install.mjs', 'scripts/libtorch.mjs', 'scripts/libtorch.cjs', 'bin/convkit.js']) {
  fs.mkdirSync(path.dirname(path.join(main, file)), { recursive: true })
  fs.copyFileSync(path.join(root, file), path.join(main, file))
}
for (const file of ['README.md', 'LICENSE']) fs.copyFileSync(path.join(root, file), path.join(main, file))
writeJson(path.join(main, 'package.json'), {
  name: manifest.name,
  ...common,
  type: 'module',
  main: './lib/cjs/index.js',
  types: './lib/cjs/index.d.ts',
  exports: {
    '.': {
      import: { types: './lib/esm/index.d.ts', default: './lib/esm/index.js' },
      require: { types: './lib/cjs/index.d.ts', default: './lib/cjs/index.js' },
    },
    './package.json': './package.json',
  },
  bin: manifest.bin,
  files: ['lib', 'scripts', 'bin', 'README.md', 'LICENSE'],
  scripts: { install: 'node scripts/install.mjs' },
  dependencies: manifest.dependencies,
  optionalDependencies: { [platformName]: manifest.version },
})

const platform = path.join(stage, PLATFORM)
fs.mkdirSync(platform, { recursive: true })
portableAddon(path.join(root, 'native', ADDON), path.join(platform, ADDON))
fs.copyFileSync(path.join(root, 'LICENSE'), path.join(platform, 'LICENSE'))
fs.writeFileSync(
  path.join(platform, 'README.md'),
  `# ${platformName}\n\nThe prebuilt native addon of [${manifest.name}](../${manifest.name}) for Linux x64 with glibc 2.34 or newer. ` +
    `Install \`${manifest.name}\`, not this package: its install script links libtorch beside this addon.\n`,
)
writeJson(path.join(platform, 'package.json'), {
  name: platformName,
  ...common,
  os: ['linux'],
  cpu: ['x64'],
  libc: ['glibc'],
  main: ADDON,
  files: [ADDON, 'README.md', 'LICENSE'],
})

for (const dir of [main, platform])
  run('npm', ['pack', '--silent', '--pack-destination', dist], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] })
for (const file of fs.readdirSync(dist))
  console.log(`package: dist/${file} (${(fs.statSync(path.join(dist, file)).size / 2 ** 20).toFixed(1)} MiB)`)
