// Evaluation of shards read batch by batch: a held-out set of a streamed run is as large as its share of the data, so
// holding it decoded would undo what streaming saves (a tenth of 50 000 photos at 224 px is 1.5 GB in JavaScript and
// as much again natively). Each part's counts are summed; the metrics are derived once from the total.
import type { ProcessGroup } from '../../distributed/process-group.ts'
import { addEvalCounts, allreduceEvalCounts, metricsFromCounts, type EvalCounts, type EvalMetrics } from '../../model/metrics.ts'
import type { EvaluateOptions, Model } from '../../model/model.ts'
import type { Device } from '../../util/device.ts'
import type { Normalization } from '../image-set.ts'
import { TensorDataset } from '../tensor-dataset.ts'
import { subsetShards } from './shard-source.ts'
import { openShards, type ShardSet } from './shard-stream.ts'

export interface EvaluateShardsOptions extends Pick<EvaluateOptions, 'tta' | 'averaged' | 'signal'> {
  /** `[height, width]` the images are decoded to, as for training. */
  size: [number, number]
  channels: 1 | 3
  /** Images per forward pass. */
  batchSize: number
  /** Normalization of the uint8 pixels (the run's). */
  normalization: Normalization
  /** Images decoded and held at a time. Defaults to 512. */
  partSize?: number
  skipBadImages?: boolean
  /** Data parallelism: each rank reads its own shards (any number of ranks) and the counts are summed over the group. */
  group?: ProcessGroup
}

/** Metrics of every image in `set`, decoded a part at a time. */
export async function evaluateShards(model: Model, set: ShardSet, options: EvaluateShardsOptions): Promise<EvalMetrics> {
  // Rank r takes the shards at r, r + N, …: with more ranks than held-out shards some take none, and still join the sum.
  const rank = options.group?.rank ?? 0
  const worldSize = options.group?.worldSize ?? 1
  const mine = subsetShards(
    set,
    set.files.map((_, i) => i).filter((i) => i % worldSize === rank),
  )
  let total: EvalCounts | null = null
  const stream =
    mine.files.length > 0
      ? await openShards(mine, {
          size: options.size,
          channels: options.channels,
          batchSize: options.partSize ?? 512,
          shuffleBuffer: 0,
          skipBadImages: options.skipBadImages,
          signal: options.signal,
        })
      : []
  try {
    for await (const part of stream) {
      const data = await TensorDataset.create(
        { pixels: part.pixels, labels: part.labels, shape: part.shape, classes: set.classes },
        { device: model.device as Device, normalization: options.normalization },
      )
      const counts = await model.evaluateCounts(data, {
        batchSize: options.batchSize,
        tta: options.tta,
        averaged: options.averaged,
        signal: options.signal,
      })
      total = addEvalCounts(counts, total)
    }
  } finally {
    if ('close' in stream) await stream.close()
  }
  // A rank whose share holds no shard still joins the sum, with zero counts.
  total ??= {
    count: 0,
    lossSum: 0,
    top1Correct: 0,
    top5Correct: 0,
    confusion: new Array(set.classes.length ** 2).fill(0),
    classes: set.classes.length,
  }
  if (options.group) total = await allreduceEvalCounts(options.group, total)
  return metricsFromCounts(total, set.classes)
}
