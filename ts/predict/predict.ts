// loadModel() and predict(): use a trained checkpoint from other apps in one or two calls.
import fs from 'node:fs'
import { Model, type LoadOptions } from '../model/model.ts'
import type { ImageInput, Prediction, PredictOptions } from './predict-images.ts'

/**
 * Loads a checkpoint for prediction: spec, class names, normalization and weights. Nothing in the file is executed.
 *
 * @example
 * const model = await loadModel('runs/x/epoch_6_accuracy_71.90.safetensors')
 * const [best] = await model.predict(['cat.png'])
 */
export async function loadModel(path: string, options: LoadOptions = {}): Promise<Model> {
  return Model.load(path, options)
}

const loaded = new Map<string, { mtimeMs: number; model: Promise<Model> }>()

/**
 * Predicts the class of one image (or of each in an array) with the checkpoint at `modelPath`, loading it once
 * and keeping it for later calls while the file is unchanged.
 *
 * @example
 * const { label, probability } = await predict('cat.png', 'model.safetensors')
 */
export async function predict(image: ImageInput, modelPath: string, options?: PredictOptions): Promise<Prediction>
export async function predict(image: readonly ImageInput[], modelPath: string, options?: PredictOptions): Promise<Prediction[]>
export async function predict(
  image: ImageInput | readonly ImageInput[],
  modelPath: string,
  options: PredictOptions = {},
): Promise<Prediction | Prediction[]> {
  const mtimeMs = fs.statSync(modelPath, { throwIfNoEntry: false })?.mtimeMs ?? -1
  let entry = loaded.get(modelPath)
  if (!entry || entry.mtimeMs !== mtimeMs) {
    entry = { mtimeMs, model: loadModel(modelPath) }
    loaded.set(modelPath, entry)
    entry.model.catch(() => loaded.delete(modelPath))
  }
  const model = await entry.model
  if (Array.isArray(image)) return model.predict(image, options)
  const [one] = await model.predict([image as ImageInput], options)
  return one!
}
