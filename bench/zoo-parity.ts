// Zoo parity on any device: every zoo network in float64 on `--device` against the reference implementation
// (torchvision 0.26 / timm 1.0.31 on the CPU in float64, __test__/fixtures/zoo_reference.py) — eval logits, one
// training step's loss, gradients and batch-norm statistics, within 1e-4: the check __test__/zoo.spec.ts makes on
// the CPU, for scripts/gpu-check.sh to make on a GPU. Exits 1 when an architecture is off.
//
// npx tsx bench/zoo-parity.ts [--device cuda] [--json <file>]      (PYTHON: a python with torch, torchvision, timm)
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import type { Device } from '../ts/index.ts'
import { ZOO_NAMES } from '../ts/zoo/architectures.ts'
import { pythonWith } from '../__test__/helpers/python-torch.ts'
import { describeParity, parityHolds, runZooReference, zooParity } from '../__test__/helpers/zoo-parity.ts'

const { values } = parseArgs({ options: { device: { type: 'string' }, json: { type: 'string' } } })
const device = (values.device ?? 'cuda') as Device
const python = process.env.PYTHON ?? pythonWith(['torchvision', 'timm'])
if (!python) throw new Error('zoo-parity: no python with torch 2.11, torchvision and timm; set PYTHON')

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'convkit-zoo-parity-'))
try {
  await runZooReference(python, dir)
  const results: Record<string, { ok: boolean; logitDiff: number; lossDiff: number; gradient: number; runningStats: number }> = {}
  for (const name of ZOO_NAMES) {
    const p = await zooParity(name, path.join(dir, name), device, dir)
    const ok = parityHolds(p)
    results[name] = { ok, logitDiff: p.logitDiff, lossDiff: p.lossDiff, gradient: p.worstGrad.ratio, runningStats: p.worstStat.ratio }
    console.log(`${ok ? 'ok  ' : 'OFF '} ${device} ${describeParity(name, p)}`)
  }
  if (values.json) fs.writeFileSync(values.json, JSON.stringify({ device, results }, null, 2))
  const off = Object.entries(results).filter(([, r]) => !r.ok)
  console.log(
    off.length === 0
      ? `zoo parity on ${device}: all ${ZOO_NAMES.length} architectures within 1e-4`
      : `zoo parity on ${device}: off for ${off.map(([n]) => n).join(', ')}`,
  )
  process.exitCode = off.length === 0 ? 0 : 1
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}
