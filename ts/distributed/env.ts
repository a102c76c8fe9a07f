// Where a rank joins its group: options given in code, else torchrun's environment variables (MASTER_ADDR,
// MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK), checked and completed with defaults.
import { InputError } from '../errors.ts'

/** How this process joins a data-parallel run. Every field falls back to torchrun's variable of the same meaning. */
export interface DistributedOptions {
  /** This process's rank, `0 … worldSize - 1`; rank 0 hosts the rendezvous and writes the run's files. Defaults to `RANK`. */
  rank?: number
  /** How many processes train together. Defaults to `WORLD_SIZE`. */
  worldSize?: number
  /** The rank within this machine. Defaults to `LOCAL_RANK`, else `rank`. */
  localRank?: number
  /** Rank 0's address. Defaults to `MASTER_ADDR`. @example '10.0.0.1' */
  masterAddr?: string
  /** The port rank 0's rendezvous store listens on. Defaults to `MASTER_PORT`. @example 29500 */
  masterPort?: number
  /**
   * `'gloo'` (CPU tensors; CUDA ones go through the host) or `'nccl'` (CUDA; not in this build, see the README).
   * Defaults to `'gloo'`.
   */
  backend?: 'gloo' | 'nccl'
  /**
   * Seconds a collective waits for a peer that stopped answering before the run fails. A peer that dies is
   * noticed at once whatever this says. Defaults to `CONVKIT_DIST_TIMEOUT`, else 20.
   */
  timeout?: number
  /** Seconds the ranks may take to meet at the start (and to load their data). Defaults to 300. */
  storeTimeout?: number
  /**
   * The address Gloo listens on. Defaults to 127.0.0.1 when `masterAddr` is a loopback address and
   * `GLOO_SOCKET_IFNAME` is unset, else torch's choice (`GLOO_SOCKET_IFNAME`, else this host's name).
   */
  glooHostname?: string
}

export type ResolvedDistributed = Required<Omit<DistributedOptions, 'glooHostname'>> & Pick<DistributedOptions, 'glooHostname'>

type Env = Record<string, string | undefined>

function integer(field: string, variable: string, given: unknown, env: Env, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = given ?? env[variable]
  const value = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw
  if (raw === undefined) {
    throw new InputError(
      'INVALID_OPTION',
      `option distributed.${field}: not given and ${variable} is not set; expected an integer >= ${min}`,
    )
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const from = given === undefined ? ` (from ${variable})` : ''
    throw new InputError(
      'INVALID_OPTION',
      `option distributed.${field}${from}: expected an integer in ${min}..${max}, got ${JSON.stringify(raw)}`,
    )
  }
  return value
}

function seconds(field: string, raw: unknown, fallback: number): number {
  const value = typeof raw === 'string' ? Number(raw) : (raw ?? fallback)
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InputError('INVALID_OPTION', `option distributed.${field}: expected a number of seconds > 0, got ${JSON.stringify(raw)}`)
  }
  return value
}

const KEYS = ['rank', 'worldSize', 'localRank', 'masterAddr', 'masterPort', 'backend', 'timeout', 'storeTimeout', 'glooHostname']

/** Whether `env` describes a rank of a run of more than one process, as torchrun and `--nproc-per-node` set it. */
export function launchedAsRank(env: Env = process.env): boolean {
  return env.RANK !== undefined && env.WORLD_SIZE !== undefined && Number(env.WORLD_SIZE) > 1
}

/**
 * Completes `given` from torchrun's variables in `env` and checks every field; throws an InputError naming the
 * option (and the variable it came from).
 */
export function resolveDistributed(given: DistributedOptions = {}, env: Env = process.env): ResolvedDistributed {
  if (typeof given !== 'object' || given === null)
    throw new InputError('INVALID_OPTION', `option distributed: expected true or an object, got ${JSON.stringify(given)}`)
  const unknown = Object.keys(given).filter((k) => !KEYS.includes(k))
  if (unknown.length > 0)
    throw new InputError('INVALID_OPTION', `option distributed: unknown key(s) ${unknown.join(', ')}; expected some of ${KEYS.join(', ')}`)
  const worldSize = integer('worldSize', 'WORLD_SIZE', given.worldSize, env, 1)
  const rank = integer('rank', 'RANK', given.rank, env, 0, worldSize - 1)
  const localRank = given.localRank ?? env.LOCAL_RANK ?? rank
  const masterAddr = given.masterAddr ?? env.MASTER_ADDR
  if (typeof masterAddr !== 'string' || masterAddr === '') {
    throw new InputError('INVALID_OPTION', `option distributed.masterAddr: not given and MASTER_ADDR is not set; expected rank 0's address`)
  }
  const backend = given.backend ?? 'gloo'
  if (backend !== 'gloo' && backend !== 'nccl')
    throw new InputError('INVALID_OPTION', `option distributed.backend: expected 'gloo' or 'nccl', got ${JSON.stringify(backend)}`)
  const loopback = /^(127\.|localhost$|::1$)/.test(masterAddr)
  const glooHostname = given.glooHostname ?? (loopback && !env.GLOO_SOCKET_IFNAME ? '127.0.0.1' : undefined)
  return {
    rank,
    worldSize,
    localRank: integer('localRank', 'LOCAL_RANK', localRank, env, 0),
    masterAddr,
    masterPort: integer('masterPort', 'MASTER_PORT', given.masterPort, env, 1, 65535),
    backend,
    timeout: seconds('timeout', given.timeout ?? env.CONVKIT_DIST_TIMEOUT, 20),
    storeTimeout: seconds('storeTimeout', given.storeTimeout, 300),
    ...(glooHostname ? { glooHostname } : {}),
  }
}
