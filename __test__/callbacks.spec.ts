// EarlyStopping, ModelCheckpoint and History on fake logs: no addon, no training.
import test from 'ava'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { EpochRecord, TrainContext } from '../ts/callbacks/callback.ts'
import { EarlyStopping, decideStop } from '../ts/callbacks/early-stopping.ts'
import { historyCsv } from '../ts/callbacks/history.ts'
import { ModelCheckpoint } from '../ts/callbacks/model-checkpoint.ts'
import { ReduceLROnPlateau } from '../ts/callbacks/reduce-lr-on-plateau.ts'
import { InputError } from '../ts/errors.ts'
import type { Model } from '../ts/model/model.ts'
import { trainContext } from './helpers/train-context.ts'

const metrics = ['train_loss', 'train_top1', 'val_loss', 'val_top1', 'test_loss', 'test_top1']

function split(loss: number, top1: number) {
  return { loss, lossSum: loss * 10, top1, top5: 99, perClass: { cat: top1, dog: top1 } }
}

function record(epoch: number, valLoss: number, top1 = 50): EpochRecord {
  return { epoch, seconds: 1, lr: 1e-3, imagesPerSecond: 100, train: split(1, 60), val: split(valLoss, top1), test: split(valLoss, top1) }
}

/** A context whose model records what it is asked to save. */
function fakeContext(): TrainContext & { saved: string[] } {
  const saved: string[] = []
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'convkit-cb-'))
  const model = {
    async save(file: string) {
      saved.push(path.basename(file))
      fs.writeFileSync(file, 'weights')
    },
  } as unknown as Model
  return trainContext({ model, runDir, metrics, saved })
}

async function feed(cb: EarlyStopping | ModelCheckpoint, ctx: TrainContext, losses: number[]): Promise<number | undefined> {
  for (const [i, loss] of losses.entries()) {
    const r = record(i + 1, loss)
    await cb.onEpochEnd(r, { train_loss: 1, val_loss: loss, val_top1: r.val!.top1 }, ctx)
    if (ctx.stopTraining) return i + 1
  }
  return undefined
}

test('early stopping waits `patience` epochs without improvement, then stops with a reason', async (t) => {
  const stopper = new EarlyStopping({ patience: 2 })
  const ctx = fakeContext()
  stopper.onTrainBegin(ctx)
  // Best at epoch 2 (0.8); epochs 3 and 4 do not improve: stop after epoch 4.
  t.is(await feed(stopper, ctx, [1.0, 0.8, 0.85, 0.9, 0.5]), 4)
  t.is(stopper.bestEpoch, 2)
  t.is(stopper.best, 0.8)
  t.is(stopper.stoppedEpoch, 4)
  t.regex(ctx.stopReason!, /val_loss has not improved for 2 epochs \(best 0\.8000 at epoch 2\)/)
})

test('minDelta, max mode and startFromEpoch change what counts as improvement', (t) => {
  const base = { monitor: 'val_top1', mode: 'auto' as const, minDelta: 1, patience: 1, startFromEpoch: 0 }
  let d = decideStop({ wait: 0 }, 1, { val_top1: 50 }, base)
  t.true(d.improved)
  d = decideStop(d.state, 2, { val_top1: 50.5 }, base)
  t.false(d.improved, 'a gain under minDelta is no improvement')
  t.true(d.shouldStop)
  const late = decideStop({ wait: 0 }, 1, { val_top1: 10 }, { ...base, startFromEpoch: 3 })
  t.false(late.improved)
  t.false(late.shouldStop)
  t.is(late.state.wait, 0)
})

test('a non-finite loss stops at once, naming the metric and the epoch', (t) => {
  const d = decideStop(
    { wait: 0, best: 1, bestEpoch: 1 },
    3,
    { train_loss: Number.NaN, val_loss: 2 },
    { monitor: 'val_loss', mode: 'auto', minDelta: 0, patience: 5, startFromEpoch: 0 },
  )
  t.true(d.shouldStop)
  t.is(d.reason, 'train_loss is NaN at epoch 3: training diverged')
  const inf = decideStop(
    { wait: 0 },
    2,
    { train_loss: 1, val_loss: Number.POSITIVE_INFINITY },
    { monitor: 'val_loss', mode: 'auto', minDelta: 0, patience: 5, startFromEpoch: 0 },
  )
  t.regex(inf.reason!, /val_loss is Infinity/)
})

test('an instance is reusable after reset, and its state survives a save and load', async (t) => {
  const stopper = new EarlyStopping({ patience: 3 })
  const ctx = fakeContext()
  await feed(stopper, ctx, [1, 2])
  t.is(stopper.wait, 1)
  const saved = JSON.parse(JSON.stringify(stopper.state()))
  const resumed = new EarlyStopping({ patience: 3 })
  resumed.loadState(saved)
  t.deepEqual(resumed.state(), stopper.state())
  stopper.reset()
  t.is(stopper.wait, 0)
  t.is(stopper.best, undefined)
})

test('a monitor that does not exist is an error listing the ones that do', (t) => {
  const err = t.throws(() => new EarlyStopping({ monitor: 'val_acc' }).onTrainBegin(fakeContext()), { instanceOf: InputError })
  t.regex(err!.message, /"val_acc".*val_loss, val_top1/)
})

test('ModelCheckpoint keeps only the best epoch, named for its epoch and accuracy', async (t) => {
  const ckpt = new ModelCheckpoint({ monitor: 'val_loss' })
  const ctx = fakeContext()
  ckpt.onTrainBegin(ctx)
  await feed(ckpt, ctx, [1.0, 0.7, 0.9])
  t.deepEqual(ctx.saved, ['epoch_1_accuracy_50.00.safetensors', 'epoch_2_accuracy_50.00.safetensors'])
  t.is(ckpt.bestFile, 'epoch_2_accuracy_50.00.safetensors')
  t.deepEqual(fs.readdirSync(ctx.runDir), ['epoch_2_accuracy_50.00.safetensors'])
})

test('history.csv has a row per epoch with per-class columns', (t) => {
  const csv = historyCsv({
    classes: ['cat', 'dog'],
    config: {},
    epochs: [record(1, 0.9), record(2, 0.8)],
    best: null,
    stoppedEarly: false,
    stopReason: null,
  })
  const [header, ...rows] = csv.trim().split('\n')
  t.true(header!.startsWith('epoch,seconds,lr,images_per_second,train_loss,train_top1,train_top5,val_loss'))
  t.true(header!.includes('test_top1_dog'))
  t.is(rows.length, 2)
  t.is(rows[1]!.split(',')[7], '0.8')
})

test('ReduceLROnPlateau divides the rate after `patience` flat epochs, honours cooldown and minLr, and saves its state', (t) => {
  const reduce = new ReduceLROnPlateau({ patience: 2, factor: 0.5, cooldown: 1, minLr: 2e-4 })
  const ctx = fakeContext()
  reduce.onTrainBegin(ctx)
  const lrs: number[] = []
  for (const [i, loss] of [1.0, 0.9, 0.95, 0.93, 0.94, 0.96, 0.97, 0.99, 0.98, 0.97, 0.99, 0.98, 0.97].entries()) {
    reduce.onEpochEnd(record(i + 1, loss), { val_loss: loss }, ctx)
    lrs.push(ctx.lr)
  }
  // Improves at 2; flat at 3 and 4 → halve after 4; cooldown epoch 5; flat 6, 7 → halve after 7; cooldown 8; flat 9,
  // 10 → halving would give 1.25e-4, below minLr: the rate stops at 2e-4, and the next reduction after 13 keeps it there.
  t.deepEqual(lrs, [1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 5e-4, 2.5e-4, 2.5e-4, 2.5e-4, 2e-4, 2e-4, 2e-4, 2e-4])
  const copy = new ReduceLROnPlateau({ patience: 2 })
  copy.loadState(JSON.parse(JSON.stringify(reduce.state())))
  t.deepEqual(copy.state(), reduce.state())
  t.throws(() => new ReduceLROnPlateau({ monitor: 'val_acc' }).onTrainBegin(fakeContext()), { instanceOf: InputError })
})
