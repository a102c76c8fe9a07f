// `convkit train --nproc-per-node N …`: torchrun's local launcher. Starts N workers running the same command, each
// with torchrun's variables (MASTER_ADDR, MASTER_PORT, RANK, LOCAL_RANK, WORLD_SIZE), forwards Ctrl-C to them once,
// and when one fails, stops the others and exits non-zero naming it.
import { spawn, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import os from 'node:os'
import { runStamp } from '../util/run-stamp.ts'
import { InputError } from '../errors.ts'

export interface LaunchOptions {
  /** Workers to start on this machine. */
  nproc: number
  /** The workers' command-line arguments (without --nproc-per-node). */
  args: string[]
  /** The launcher's environment: `MASTER_ADDR`, `MASTER_PORT`, `NNODES`, `NODE_RANK` are read from it. */
  env?: NodeJS.ProcessEnv
  /** The worker program: node's flags and script. Defaults to this process's. */
  command?: { execPath: string; args: string[] }
  /** Seconds the other workers get to end by themselves after one failed, before they are killed. Defaults to 3. */
  grace?: number
  log?: (line: string) => void
}

/** A TCP port that was free a moment ago on the loopback interface. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/** `argv` without `--<flag> <value>` and `--<flag>=<value>`. */
export function withoutFlag(argv: readonly string[], flag: string): string[] {
  const out: string[] = []
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === `--${flag}`) i++
    else if (!argv[i]!.startsWith(`--${flag}=`)) out.push(argv[i]!)
  }
  return out
}

function nonNegative(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 0)
    throw new InputError('INVALID_OPTION', `${name}: expected a non-negative integer, got ${JSON.stringify(raw)}`)
  return n
}

interface Exit {
  rank: number
  pid: number | undefined
  code: number | null
  signal: NodeJS.Signals | null
}

function describe(e: Exit): string {
  const who = `rank ${e.rank} (pid ${e.pid})`
  return e.signal ? `${who} was killed by ${e.signal}` : `${who} exited with code ${e.code}`
}

/**
 * Starts the workers and waits for them. Resolves to the exit code: 0 when all succeed, 130 when all stopped for an
 * interrupt, 1 when any failed (after naming it and stopping the rest).
 */
export async function launch(options: LaunchOptions): Promise<number> {
  const env = options.env ?? process.env
  const log = options.log ?? ((line: string) => console.error(line))
  const nproc = options.nproc
  const nnodes = Math.max(1, nonNegative('NNODES', env.NNODES, 1))
  const nodeRank = nonNegative('NODE_RANK', env.NODE_RANK, 0)
  if (nodeRank >= nnodes)
    throw new InputError('INVALID_OPTION', `NODE_RANK: expected 0..${nnodes - 1} (NNODES is ${nnodes}), got ${nodeRank}`)
  if (nnodes > 1 && (!env.MASTER_ADDR || !env.MASTER_PORT)) {
    throw new InputError(
      'INVALID_OPTION',
      `NNODES is ${nnodes}: set MASTER_ADDR and MASTER_PORT to node 0's address and a free port there, the same on every node`,
    )
  }
  const masterAddr = env.MASTER_ADDR ?? '127.0.0.1'
  const masterPort = env.MASTER_PORT ?? String(await freePort())
  const worldSize = nnodes * nproc
  // One run directory for every rank (rank 0 alone writes it; the others need its name only to resume).
  let args = options.args
  if (!args.some((a) => /^--(out|resume)(=|$)/.test(a))) args = [...args, '--out', `runs/${runStamp()}`]
  const command = options.command ?? { execPath: process.execPath, args: [...process.execArgv, process.argv[1]!] }
  // As torchrun does: one intra-op thread per worker unless told otherwise, here a fair share of the cores.
  const threads = String(Math.max(1, Math.floor(os.availableParallelism() / nproc)))
  const first = nodeRank * nproc

  const children: ChildProcess[] = []
  const exits: Exit[] = []
  let interrupts = 0
  let failed: Exit | null = null
  let killTimer: NodeJS.Timeout | undefined
  const alive = () => children.filter((c) => c.exitCode === null && c.signalCode === null)
  const forward = (signal: NodeJS.Signals) => () => {
    if (signal === 'SIGINT') interrupts++
    for (const c of alive()) c.kill(signal)
  }
  const onInt = forward('SIGINT')
  const onTerm = forward('SIGTERM')
  process.on('SIGINT', onInt)
  process.on('SIGTERM', onTerm)

  try {
    return await new Promise<number>((resolve) => {
      const settle = () => {
        if (exits.length < nproc) return
        clearTimeout(killTimer)
        if (failed) {
          const others = exits.filter((e) => e !== failed && (e.signal || e.code !== 0)).map(describe)
          log(`convkit: ${describe(failed)}; the run failed${others.length > 0 ? ` (then ${others.join(', ')})` : ''}`)
          resolve(1)
        } else resolve(exits.some((e) => e.code === 130) ? 130 : 0)
      }
      for (let local = 0; local < nproc; local++) {
        const rank = first + local
        const child = spawn(command.execPath, [...command.args, ...args], {
          // A process group of its own: Ctrl-C reaches the launcher alone, which forwards it exactly once. The IPC
          // channel tells a worker when the launcher is gone.
          detached: true,
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
          env: {
            ...env,
            MASTER_ADDR: masterAddr,
            MASTER_PORT: masterPort,
            WORLD_SIZE: String(worldSize),
            RANK: String(rank),
            LOCAL_RANK: String(local),
            LOCAL_WORLD_SIZE: String(nproc),
            GROUP_RANK: String(nodeRank),
            OMP_NUM_THREADS: env.OMP_NUM_THREADS ?? threads,
            CONVKIT_LAUNCHED: '1',
          },
        })
        children.push(child)
        let ended = false
        child.on('error', (err) => {
          if (ended) return
          log(`convkit: rank ${rank}: could not start ${command.execPath}: ${err.message}`)
          child.emit('exit', 1, null)
        })
        child.on('exit', (code, signal) => {
          if (ended) return
          ended = true
          const exit: Exit = { rank, pid: child.pid, code, signal }
          exits.push(exit)
          const interrupted = interrupts > 0 && (code === 130 || signal === 'SIGINT')
          if (!failed && (signal !== null || code !== 0) && !interrupted) {
            failed = exit
            // The others usually fail by themselves within a second (their collectives lose this peer); any still
            // running then (waiting at the rendezvous, say) are stopped.
            killTimer = setTimeout(
              () => {
                for (const c of alive()) c.kill('SIGTERM')
                killTimer = setTimeout(() => alive().forEach((c) => c.kill('SIGKILL')), 5000)
              },
              (options.grace ?? 3) * 1000,
            )
          }
          settle()
        })
      }
      const pids = children.map((c, i) => `rank ${first + i}: pid ${c.pid}`).join(', ')
      log(`convkit: started ${nproc} worker(s) of ${worldSize} (${pids}); rendezvous at ${masterAddr}:${masterPort}`)
    })
  } finally {
    process.off('SIGINT', onInt)
    process.off('SIGTERM', onTerm)
  }
}
