// A TrainContext for driving callbacks outside train(): the fields a test does not care about take neutral values.
import type { HistoryFile, TrainContext } from '../../ts/callbacks/callback.ts'

export function trainContext<T extends Partial<TrainContext>>(fields: T): TrainContext & T {
  const history: HistoryFile = { classes: [], config: {}, epochs: [], best: null, stoppedEarly: false, stopReason: null }
  return {
    model: undefined as never,
    runDir: '',
    metrics: [],
    stopTraining: false,
    lr: 1e-3,
    epoch: 0,
    epochs: 1,
    batches: 1,
    totalSteps: 1,
    worldSize: 1,
    resumed: false,
    interrupted: false,
    history: () => history,
    ...fields,
  }
}
