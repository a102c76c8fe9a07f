// One TensorBoard event file: events are queued, then appended and synced to disk together on flush().
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { encodeEvent, FILE_VERSION, type SummaryValue } from './event-proto.ts'
import { frameRecord } from './tf-record.ts'

/** Distinguishes files one process opens in the same second, as TensorFlow's writer does. */
let fileCounter = 0

/**
 * `events.out.tfevents.<secs>.<hostname>.<pid>.<n>`: TensorBoard reads any file whose name holds `tfevents`, in the
 * order of the names, and a file read after one with later steps purges those steps. So `n` is zero-padded: a
 * resumed run's files must sort after the first run's even within one second (unpadded, "10" sorted before "8").
 */
function eventFileName(now: number): string {
  return `events.out.tfevents.${Math.floor(now / 1000)}.${os.hostname()}.${process.pid}.${String(fileCounter++).padStart(6, '0')}`
}

/**
 * Writes one event file in `dir`. Nothing touches the disk until the first `flush()`, which makes the folder and the
 * file (never an existing one) and writes the `brain.Event:2` version record first. Later flushes only append.
 *
 * @example
 * const writer = new EventFileWriter('logs/train')
 * writer.add(1, [{ tag: 'epoch_loss', simple_value: 0.5 }])
 * await writer.flush()
 */
export class EventFileWriter {
  readonly dir: string
  private path?: string
  private pending: Buffer[] = []

  constructor(dir: string) {
    this.dir = dir
  }

  /** The file's path once the first flush has made it. */
  get file(): string | undefined {
    return this.path
  }

  /** Records queued and not yet flushed. */
  get queued(): number {
    return this.pending.length
  }

  /** Queues one Event holding `values` at `step`. */
  add(step: number, values: SummaryValue[], wallTime = Date.now() / 1000): void {
    if (values.length === 0) return
    this.pending.push(frameRecord(encodeEvent({ wall_time: wallTime, step, summary: { value: values } })))
  }

  /** Appends what is queued and syncs it to disk, so a crash afterwards loses none of it. */
  async flush(): Promise<void> {
    if (this.pending.length === 0) return
    const records = this.pending
    let handle: fs.FileHandle
    if (this.path === undefined) {
      await fs.mkdir(this.dir, { recursive: true })
      const created = await createEventFile(this.dir)
      handle = created.handle
      this.path = created.path
      records.unshift(frameRecord(encodeEvent({ wall_time: Date.now() / 1000, file_version: FILE_VERSION })))
    } else {
      handle = await fs.open(this.path, 'a')
    }
    try {
      await handle.writeFile(Buffer.concat(records))
      await handle.sync()
    } finally {
      await handle.close()
    }
    this.pending = []
  }
}

/** Opens a new file exclusively (`wx`): an event file is never rewritten, even by a name clash. */
async function createEventFile(dir: string): Promise<{ handle: fs.FileHandle; path: string }> {
  for (;;) {
    const file = path.join(dir, eventFileName(Date.now()))
    try {
      return { handle: await fs.open(file, 'wx'), path: file }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
  }
}
