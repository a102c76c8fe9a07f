// extractArchive(): extracted once per archive content, atomically, with named errors for missing and broken archives.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { extractArchive } from '../ts/data/archive.ts'
import { DataError } from '../ts/errors.ts'
import type { ConvkitError } from '../ts/errors.ts'
import { tempDirs } from './helpers/temp-dir.ts'

const tmpdir = tempDirs('archive')

/** `work/set.tar.gz` holding `set/a/1.txt` and `set/b/2.txt`. */
function makeArchive(name = 'set.tar.gz'): string {
  const work = tmpdir()
  fs.mkdirSync(path.join(work, 'set', 'a'), { recursive: true })
  fs.mkdirSync(path.join(work, 'set', 'b'))
  fs.writeFileSync(path.join(work, 'set', 'a', '1.txt'), 'one')
  fs.writeFileSync(path.join(work, 'set', 'b', '2.txt'), 'two')
  const archive = path.join(work, name)
  execFileSync('tar', ['-czf', archive, '-C', work, 'set'])
  return archive
}

test('extracts into <cache>/extracted/<name>-<sha256> once per content; a changed archive gets a fresh folder', async (t) => {
  const archive = makeArchive()
  const cacheDir = tmpdir()
  const root = await extractArchive(archive, cacheDir)
  t.is(path.dirname(root), path.join(cacheDir, 'extracted'))
  t.regex(path.basename(root), /^set-[0-9a-f]{16}$/)
  t.is(path.basename(root).slice(4), createHash('sha256').update(fs.readFileSync(archive)).digest('hex').slice(0, 16))
  t.is(fs.readFileSync(path.join(root, 'set', 'b', '2.txt'), 'utf8'), 'two')

  // A file removed from the extracted copy stays removed: the second call does not extract again.
  fs.rmSync(path.join(root, 'set', 'a', '1.txt'))
  t.is(await extractArchive(archive, cacheDir), root)
  t.false(fs.existsSync(path.join(root, 'set', 'a', '1.txt')))

  // The key is the content: a new mtime, or a copy at another path, is the same archive.
  const later = new Date(Date.now() + 60_000)
  fs.utimesSync(archive, later, later)
  t.is(await extractArchive(archive, cacheDir), root)
  const copy = path.join(tmpdir(), 'copy.tar.gz')
  fs.copyFileSync(archive, copy)
  t.is(await extractArchive(copy, cacheDir), root)

  // Other bytes are another archive, extracted afresh.
  const changed = makeArchive()
  fs.writeFileSync(path.join(path.dirname(changed), 'set', 'a', '1.txt'), 'uno')
  execFileSync('tar', ['-czf', changed, '-C', path.dirname(changed), 'set'])
  fs.copyFileSync(changed, archive)
  const fresh = await extractArchive(archive, cacheDir)
  t.not(fresh, root)
  t.is(fs.readFileSync(path.join(fresh, 'set', 'a', '1.txt'), 'utf8'), 'uno')
  t.deepEqual(
    fs.readdirSync(path.join(cacheDir, 'extracted')).filter((n) => n.includes('partial')),
    [],
  )
})

test('.tgz works too', async (t) => {
  const root = await extractArchive(makeArchive('set.tgz'), tmpdir())
  t.regex(path.basename(root), /^set-/)
  t.is(fs.readFileSync(path.join(root, 'set', 'a', '1.txt'), 'utf8'), 'one')
})

test('a corrupt archive is DATA_CORRUPT and leaves no folder behind', async (t) => {
  const work = tmpdir()
  const archive = path.join(work, 'broken.tar.gz')
  const good = fs.readFileSync(makeArchive())
  fs.writeFileSync(archive, good.subarray(0, Math.floor(good.length / 2)))
  const cacheDir = tmpdir()
  const err = (await t.throwsAsync(extractArchive(archive, cacheDir), { instanceOf: DataError })) as ConvkitError
  t.is(err.code, 'DATA_CORRUPT')
  t.regex(err.message, /cannot extract .*broken\.tar\.gz: expected a readable tar archive/)
  t.deepEqual(fs.readdirSync(path.join(cacheDir, 'extracted')), [])

  fs.writeFileSync(archive, 'not gzip at all')
  t.is(((await t.throwsAsync(extractArchive(archive, cacheDir))) as ConvkitError).code, 'DATA_CORRUPT')
  t.deepEqual(fs.readdirSync(path.join(cacheDir, 'extracted')), [])
})

test('a missing archive is DATA_NOT_FOUND naming it', async (t) => {
  const missing = path.join(tmpdir(), 'nope.tar.gz')
  const err = (await t.throwsAsync(extractArchive(missing, tmpdir()), { instanceOf: DataError })) as ConvkitError
  t.is(err.code, 'DATA_NOT_FOUND')
  t.true(err.message.includes('nope.tar.gz'))
})

test('two extractions at once end with one complete folder', async (t) => {
  const archive = makeArchive()
  const cacheDir = tmpdir()
  const [a, b] = await Promise.all([extractArchive(archive, cacheDir), extractArchive(archive, cacheDir)])
  t.is(a, b)
  t.deepEqual(fs.readdirSync(path.join(cacheDir, 'extracted')).length, 1)
  t.is(fs.readFileSync(path.join(a, 'set', 'a', '1.txt'), 'utf8'), 'one')
})
