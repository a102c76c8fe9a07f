// Finds import cycles between the modules of each crate and between the files of ts/: modules should form a tree,
// so a cycle usually means a helper lives in the wrong file. Exits 1 on a cycle not allowed below.
//
// Usage: node scripts/module-cycles.mjs [--graph]
//
// Rust: a module is a top-level module of a crate (`src/a.rs` or `src/a/mod.rs`); `src/a/b.rs` counts as part of
// `a`, since a folder is one module to its users and its files may use each other freely. Edges come from
// `crate::X` paths (in `use` lists too) and from `super::` paths in `a/b.rs` that climb out of `a`; unit-test
// modules (`#[cfg(test)]`) are left out.
//
// TypeScript: a module is a file under ts/; edges are its relative imports and re-exports, `import type` included
// (a type-only cycle is the same knot for a reader, even though it vanishes at run time).

import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..')

/** Pairs of modules that may import each other, `crate:a<->b`, each with why. */
const ALLOWED = new Map([
  // Each layer writes its own ONNX form (layers → onnx's graph builder), and the exporter walks the layers
  // (onnx → layers): splitting either side would scatter one layer type over two files.
  ['crates/core:layers<->onnx', 'each layer type exports itself to ONNX'],
])

/** Strongly connected components with more than one node (Tarjan). `graph`: Map<node, Map<node, example>>. */
export function cyclesOf(graph) {
  let index = 0
  const stack = []
  const onStack = new Set()
  const indices = new Map()
  const low = new Map()
  const components = []
  const visit = (v) => {
    indices.set(v, index)
    low.set(v, index)
    index += 1
    stack.push(v)
    onStack.add(v)
    for (const w of graph.get(v)?.keys() ?? []) {
      if (!indices.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v), low.get(w)))
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v), indices.get(w)))
      }
    }
    if (low.get(v) === indices.get(v)) {
      const component = []
      let w
      do {
        w = stack.pop()
        onStack.delete(w)
        component.push(w)
      } while (w !== v)
      if (component.length > 1) components.push(component.sort())
    }
  }
  for (const v of [...graph.keys()].sort()) if (!indices.has(v)) visit(v)
  return components
}

function filesUnder(dir, ext) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return filesUnder(path, ext)
    return path.endsWith(ext) ? [path] : []
  })
}

/** The module graph of a Rust crate: Map<module, Map<module, 'file:line'>>, over top-level modules. */
export function rustGraph(crateDir) {
  const src = join(crateDir, 'src')
  const files = filesUnder(src, '.rs')
  const moduleOf = (file) => {
    const parts = relative(src, file).split(sep)
    return parts[0].replace(/\.rs$/, '')
  }
  const roots = new Set(['lib', 'main'])
  const modules = new Set(files.map(moduleOf).filter((m) => !roots.has(m)))
  const graph = new Map([...modules].map((m) => [m, new Map()]))
  for (const file of files) {
    const from = moduleOf(file)
    if (roots.has(from)) continue
    const nested = relative(src, file).split(sep).length > 1
    const lines = readFileSync(file, 'utf8').split('\n')
    // Unit tests (`#[cfg(test)] mod tests { … }`) may reach anywhere: they are not part of the module structure.
    let testDepth = null
    let braces = 0
    lines.forEach((line, i) => {
      const code = line.replace(/\/\/.*$/, '')
      const before = braces
      braces += (code.match(/\{/g) ?? []).length - (code.match(/\}/g) ?? []).length
      if (/^\s*#\[cfg\(test\)\]/.test(code)) testDepth = before
      if (testDepth !== null) {
        if (braces <= testDepth && /\}/.test(code)) testDepth = null
        return
      }
      const targets = []
      // `crate::x`, and `crate::{x, y::z}` in a use list.
      for (const m of code.matchAll(/\bcrate::(\{[^}]*\}?|\w+)/g)) {
        if (m[1].startsWith('{')) targets.push(...[...m[1].matchAll(/(?:^|[{,])\s*(\w+)/g)].map((n) => n[1]))
        else targets.push(m[1])
      }
      // `super::x` from `a/b.rs` names a sibling inside `a`; `super::super::x` from `a/b/c.rs` too. Only a
      // `super` that climbs above the top-level module reaches another one.
      const depth = relative(src, file).split(sep).length - 1 - (file.endsWith(`${sep}mod.rs`) ? 1 : 0)
      for (const m of code.matchAll(/\b((?:super::)+)(\w+)/g)) {
        const ups = m[1].length / 'super::'.length
        if (nested && ups > depth - 1) targets.push(m[2])
        else if (!nested && ups >= 1) targets.push(m[2])
      }
      for (const to of targets) {
        if (to === from || !modules.has(to)) continue
        const edges = graph.get(from)
        if (!edges.has(to)) edges.set(to, `${relative(ROOT, file)}:${i + 1}`)
      }
    })
  }
  return graph
}

/** The module graph of the TypeScript under `dir`: Map<file, Map<file, 'file:line'>>, one node per file. */
export function typescriptGraph(dir) {
  const files = filesUnder(dir, '.ts')
  const name = (file) => relative(dir, file).split(sep).join('/')
  const graph = new Map(files.map((f) => [name(f), new Map()]))
  for (const file of files) {
    const edges = graph.get(name(file))
    const text = readFileSync(file, 'utf8')
    // `import … from './x.ts'`, `export … from './x.ts'` (across lines) and `await import('./x.ts')`.
    for (const m of text.matchAll(/^(?:import|export)\b[^;'"]*?from\s*'(\.[^']+)'|\bimport\(\s*'(\.[^']+)'\s*\)/gm)) {
      const target = name(join(file, '..', m[1] ?? m[2]))
      if (!graph.has(target) || edges.has(target)) continue
      const line = text.slice(0, m.index).split('\n').length
      edges.set(target, `${relative(ROOT, file)}:${line}`)
    }
  }
  return graph
}

/** Every pair of modules of `component` that import each other directly, as `a<->b`. */
function pairsOf(component, graph) {
  const pairs = []
  for (const a of component)
    for (const b of component) {
      if (a < b && graph.get(a).has(b) && graph.get(b).has(a)) pairs.push(`${a}<->${b}`)
    }
  return pairs
}

function main() {
  const showGraph = process.argv.includes('--graph')
  const crates = readdirSync(join(ROOT, 'crates'))
    .map((name) => join('crates', name))
    .filter((dir) => statSync(join(ROOT, dir, 'src'), { throwIfNoEntry: false })?.isDirectory())
  const summary = []
  const allowedSeen = []
  let failed = false
  const graphs = [...crates.map((dir) => [dir, rustGraph(join(ROOT, dir))]), ['ts', typescriptGraph(join(ROOT, 'ts'))]]
  for (const [dir, graph] of graphs) {
    if (showGraph) {
      for (const [from, edges] of graph) console.log(`${dir}: ${from} -> ${[...edges.keys()].sort().join(', ')}`)
    }
    for (const component of cyclesOf(graph)) {
      const pairs = pairsOf(component, graph)
      const allowed = component.length === 2 && pairs.length === 1 && ALLOWED.has(`${dir}:${pairs[0]}`)
      if (allowed) {
        allowedSeen.push(pairs[0])
        continue
      }
      failed = true
      console.log(`${dir}: cycle of ${component.length} modules: ${component.join(', ')}`)
      for (const from of component) {
        for (const [to, where] of graph.get(from)) {
          if (component.includes(to)) console.log(`  ${from} -> ${to}  (${where})`)
        }
      }
    }
    summary.push(`${dir} ${graph.size} modules`)
  }
  const allowed = allowedSeen.length ? ` (allowed: ${allowedSeen.join(', ')})` : ''
  if (failed) {
    console.log(`module-cycles: ${summary.join(', ')}: cycles found${allowed}`)
    process.exit(1)
  }
  console.log(`module-cycles: ${summary.join(', ')}: no cycles${allowed}`)
}

main()
