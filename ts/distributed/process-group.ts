// ProcessGroup: this process's place in a data-parallel run, on PyTorch's own c10d (TCPStore + Gloo). The few
// collectives the training loop needs besides the gradient averaging, which runs inside each native step.
import { call, callSync, native, type Native } from '../binding.ts'
import { InputError } from '../errors.ts'
import { resolveDistributed, type DistributedOptions, type ResolvedDistributed } from './env.ts'

/** Each group's native handle, kept out of the public object: only Model hands it to native calls. */
const handles = new WeakMap<ProcessGroup, Native.NativeProcessGroup>()

/** The native handle of a group, for Model's calls. Not exported from the package. */
export function groupHandle(group: ProcessGroup): Native.NativeProcessGroup {
  const handle = handles.get(group)
  if (!handle) throw new InputError('INVALID_OPTION', 'expected a ProcessGroup made by ProcessGroup.init')
  return handle
}

/**
 * One rank of a process group. Every method except `destroy` is a collective: each rank calls it, in the same order.
 *
 * @example
 * // In each of WORLD_SIZE processes started with torchrun's variables:
 * const group = await ProcessGroup.init()
 * const model = Model.create(spec, { seed: 1 })
 * await model.broadcastWeights(group)
 * model.attachProcessGroup(group)           // each trainBatch now averages gradients over the ranks
 */
export class ProcessGroup {
  readonly rank: number
  readonly worldSize: number
  readonly localRank: number
  readonly backend: 'gloo' | 'nccl'
  /** The settings it was started with. */
  readonly options: ResolvedDistributed

  private constructor(handle: Native.NativeProcessGroup, options: ResolvedDistributed) {
    handles.set(this, handle)
    this.rank = handle.rank
    this.worldSize = handle.worldSize
    this.localRank = options.localRank
    this.backend = options.backend
    this.options = options
  }

  /**
   * Meets the other ranks at rank 0's rendezvous store and starts the group; resolves once all of them have
   * arrived (or rejects with a DistributedError after `storeTimeout`). Options default to torchrun's variables.
   */
  static async init(options: DistributedOptions = {}): Promise<ProcessGroup> {
    const resolved = resolveDistributed(options)
    const handle = await call('starting the process group', () =>
      native.NativeProcessGroup.init({
        masterAddr: resolved.masterAddr,
        masterPort: resolved.masterPort,
        rank: resolved.rank,
        worldSize: resolved.worldSize,
        backend: resolved.backend,
        timeout: resolved.timeout,
        storeTimeout: resolved.storeTimeout,
        glooHostname: resolved.glooHostname,
      }),
    )
    return new ProcessGroup(handle, resolved)
  }

  /** Sums values over all ranks (in float64); `what` names them in errors. */
  async allreduceSum(values: Float64Array | readonly number[], what = 'values'): Promise<Float64Array> {
    const v = values instanceof Float64Array ? values : Float64Array.from(values)
    return call('distributed', () => groupHandle(this).allreduceSum(v, what))
  }

  /** `root`'s values, on every rank. */
  async broadcast(values: Float64Array | readonly number[], root = 0, what = 'values'): Promise<Float64Array> {
    const v = values instanceof Float64Array ? values : Float64Array.from(values)
    return call('distributed', () => groupHandle(this).broadcastValues(v, root, what))
  }

  /** Resolves when every rank has called it; rejects after `timeout` seconds (default: the group's timeout). */
  async barrier(timeout?: number): Promise<void> {
    await call('distributed', () => groupHandle(this).barrier(timeout))
  }

  /** Leaves the group (not a collective); models attached to it fail at their next step. */
  destroy(): void {
    callSync('distributed', () => groupHandle(this).destroy())
  }
}
