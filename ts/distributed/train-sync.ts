// The data-parallel side of one train() run, behind a few calls train.ts makes at fixed points. A single process gets
// the same object without a group, whose every method is the identity, so the loop reads the same either way.
//
// What it does with a group (as PyTorch's DistributedDataParallel + DistributedSampler would):
// - rank 0 loads the data first (filling download and decode caches alone), the others after it;
// - every rank starts from rank 0's weights and averages gradients inside each step;
// - each rank trains on its DistributedSampler share of the epoch's order, with its own dropout and augmentation seeds;
// - evaluation runs on a share per rank and the counts are summed, so every rank sees the metrics of all the data;
// - the end of each epoch is one small all-reduce: whether any rank was interrupted, and rank 0's early-stopping
//   decision and learning rate, which the others adopt;
// - an interrupt on any rank rides along with the next step's gradients, so every rank stops after the same step.
import type { TrainContext } from '../callbacks/callback.ts'
import { deriveSeed } from '../data/split.ts'
import type { Model, StepResult } from '../model/model.ts'
import type { DistributedOptions } from './env.ts'
import { ProcessGroup } from './process-group.ts'
import { evaluationShare, shardIndices, shardLength } from './sampler.ts'

/** How a data-parallel run spent its steps, as rank 0 measured them. */
export interface DistributedSummary {
  rank: number
  worldSize: number
  backend: string
  steps: number
  /** Mean seconds per step spent averaging gradients (packing, all-reduce, unpacking). */
  allreduceSecondsPerStep: number
  /** Mean seconds per training step in native code (forward, backward, all-reduce, update). */
  stepSecondsPerStep: number
}

/** Running train metrics whose sums can be added up across ranks. */
export interface SummableMetrics {
  sums(): Float64Array
  setSums(sums: Float64Array): void
}

export class TrainSync {
  readonly group: ProcessGroup | null
  readonly rank: number
  readonly worldSize: number
  /** This rank's run signal fired (Ctrl-C); with a group it becomes everyone's stop at the next step. */
  asked = false
  #steps = 0
  #allreduceSeconds = 0
  #stepSeconds = 0

  private constructor(group: ProcessGroup | null) {
    this.group = group
    this.rank = group?.rank ?? 0
    this.worldSize = group?.worldSize ?? 1
  }

  /** Joins the group `options` describe (null: train alone). */
  static async start(options: DistributedOptions | null): Promise<TrainSync> {
    return new TrainSync(options ? await ProcessGroup.init(options) : null)
  }

  /** Rank 0 writes the run's files and prints; every other rank stays quiet. */
  get isWriter(): boolean {
    return this.rank === 0
  }

  /** Notes this rank's interrupt; returns true when that alone stops the run (no group). */
  ask(): boolean {
    this.asked = true
    return this.group === null
  }

  /** Runs `load` on rank 0 first, then on the others (which then read what rank 0 cached), and waits for all. */
  async rankZeroFirst<T>(load: () => Promise<T>): Promise<T> {
    const group = this.group
    if (!group) return load()
    // Loading may take long (a download, a first decode): these barriers wait as long as the rendezvous does.
    const wait = group.options.storeTimeout
    if (this.isWriter) {
      const out = await load()
      await group.barrier(wait)
      await group.barrier(wait)
      return out
    }
    await group.barrier(wait)
    const out = await load()
    await group.barrier(wait)
    return out
  }

  /** Gives every rank rank 0's weights and attaches the group, so each step averages the gradients. */
  async attach(model: Model, options: { bucketMb: number; syncBatchNorm: boolean }): Promise<void> {
    if (!this.group) return
    await model.broadcastWeights(this.group, 0)
    model.attachProcessGroup(this.group, options)
  }

  /** Rank 0's choice of precision, on every rank (each measured its own). */
  async agreePrecision<T extends { precision: string }>(chosen: T): Promise<T> {
    if (!this.group) return chosen
    const [bf16] = await this.group.broadcast([chosen.precision === 'bf16' ? 1 : 0], 0, 'the precision choice')
    return { ...chosen, precision: bf16 === 1 ? 'bf16' : 'fp32' }
  }

  /** A seed of this rank's own: rank 0 keeps the single-process one, so a one-rank run repeats a plain run. */
  seed(seed: number): number {
    return this.rank === 0 ? seed : deriveSeed(seed, this.rank, 0x5eed)
  }

  /** How many training images each rank gets from `n` per epoch. */
  shardLength(n: number): number {
    return shardLength(n, this.worldSize)
  }

  /** This rank's share of the epoch's order (DistributedSampler's, padded). */
  shard(order: Int32Array): Int32Array {
    return this.group ? shardIndices(order, this.rank, this.worldSize) : order
  }

  /** This rank's share of images to evaluate, and the group to sum the counts over. */
  evaluation(indices: Int32Array): { indices: Int32Array; group?: ProcessGroup } {
    return this.group ? { indices: evaluationShare(indices, this.rank, this.worldSize), group: this.group } : { indices }
  }

  /** After each step: records its timing; returns whether the run stops now (with a group: what all ranks agreed). */
  afterStep(step: StepResult, interrupted: boolean): boolean {
    this.#steps++
    this.#allreduceSeconds += step.allreduceSeconds
    this.#stepSeconds += step.seconds
    return this.group ? step.stopRequested : interrupted
  }

  /** Adds up every rank's running train metrics. */
  async sumRunning<T extends SummableMetrics>(running: T): Promise<T> {
    if (this.group) running.setSums(await this.group.allreduceSum(running.sums(), 'the running train metrics'))
    return running
  }

  /**
   * Before evaluating: rank 0's batch norm statistics on every rank (each rank's follow its own batches while
   * training, as DDP's do between its buffer broadcasts), so all ranks evaluate one model.
   */
  async beforeEvaluation(model: Model): Promise<void> {
    if (this.group) await model.broadcastWeights(this.group, 0)
  }

  /**
   * After the callbacks of an epoch: every rank adopts rank 0's early-stopping decision and learning rate; returns
   * whether the run was interrupted (with a group: on any rank).
   */
  async endEpoch(ctx: TrainContext, interrupted: boolean): Promise<boolean> {
    if (!this.group) return interrupted
    const writer = this.isWriter
    const [votes, stop, lr] = await this.group.allreduceSum(
      [this.asked ? 1 : 0, writer && ctx.stopTraining ? 1 : 0, writer ? ctx.lr : 0],
      'the end-of-epoch decisions',
    )
    if (!writer) {
      ctx.stopTraining = stop! > 0
      if (ctx.stopTraining) ctx.stopReason = 'rank 0 stopped early'
      ctx.lr = lr!
    }
    return votes! > 0
  }

  /** Leaves the group (after the run's last collective, or on an error); detaches `model` from it. Idempotent. */
  finish(model?: Model): void {
    if (!this.group) return
    model?.attachProcessGroup(null)
    this.group.destroy()
  }

  summary(): DistributedSummary | null {
    if (!this.group) return null
    const n = Math.max(1, this.#steps)
    return {
      rank: this.rank,
      worldSize: this.worldSize,
      backend: this.group.backend,
      steps: this.#steps,
      allreduceSecondsPerStep: this.#allreduceSeconds / n,
      stepSecondsPerStep: this.#stepSeconds / n,
    }
  }
}
