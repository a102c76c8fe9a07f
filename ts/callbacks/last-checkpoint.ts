// LastCheckpoint: the run directory's `last.safetensors` (with its optimizer state) and history.json/csv, written
// after every epoch so that `--resume` continues from any point.
import path from 'node:path'
import type { Callback, EpochLogs, EpochRecord, TrainContext } from './callback.ts'
import { writeHistory } from './history.ts'

/** The file `--resume` continues from. */
export const LAST_CHECKPOINT = 'last.safetensors'

export class LastCheckpoint implements Callback {
  async onTrainBegin(ctx: TrainContext): Promise<void> {
    // Epoch 0's weights, so an interrupt before the first epoch ends still leaves a consistent `last`.
    if (!ctx.resumed) await ctx.model.save(path.join(ctx.runDir, LAST_CHECKPOINT), { metadata: { epoch: 0 } })
  }

  async onEpochEnd(record: EpochRecord, logs: EpochLogs, ctx: TrainContext): Promise<void> {
    await ctx.model.save(path.join(ctx.runDir, LAST_CHECKPOINT), { metadata: { epoch: record.epoch, ...logs } })
    await writeHistory(ctx.runDir, ctx.history())
  }

  async onTrainEnd(ctx: TrainContext): Promise<void> {
    await writeHistory(ctx.runDir, ctx.history())
  }
}
