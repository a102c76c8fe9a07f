// What the decoded cache holds: for tests that check which images a run decoded.
import fs from 'node:fs'
import path from 'node:path'

/** The image count of every decoded file in `cacheDir`, read from its header, sorted. */
export function decodedCounts(cacheDir: string): number[] {
  const dir = path.join(cacheDir, 'decoded')
  if (!fs.existsSync(dir)) return []
  return fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.bin'))
    .map((n) => {
      const bytes = fs.readFileSync(path.join(dir, n))
      // 'CKDECODE', the version and the header's length, then the JSON header.
      const length = bytes.readUInt32LE(12)
      return (JSON.parse(bytes.toString('utf8', 16, 16 + length)) as { count: number }).count
    })
    .sort((a, b) => a - b)
}
