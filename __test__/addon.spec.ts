// The built addon links only libtorch's CPU half, and every library it needs resolves without LD_LIBRARY_PATH.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { runtimeInfo } from '../ts/index.ts'

const nativeDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'native')

test('every dynamic dependency of the addon resolves, and libtorch_cuda is not one of them', (t) => {
  const addon = fs.readdirSync(nativeDir).find((f) => f.endsWith('.node'))
  t.truthy(addon, 'the addon is built')
  const env = { ...process.env }
  delete env.LD_LIBRARY_PATH
  const deps = execFileSync('ldd', [path.join(nativeDir, addon!)], { encoding: 'utf8', env })
  t.notRegex(deps, /not found/)
  t.regex(deps, /libtorch_cpu\.so => \S+/)
  t.notRegex(deps, /libtorch_cuda\.so/)
})

test('the runtime reports libtorch 2.11.0 and says why CUDA is or is not in use', (t) => {
  const info = runtimeInfo()
  t.is(info.torchVersion.split('+')[0], '2.11.0')
  t.true(info.threads >= 1)
  if (info.cudaAvailable) t.truthy(info.cudaLoadedFrom)
  else t.truthy(info.cudaLoadError)
})
