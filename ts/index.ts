// ConvKit's public API.
export { Model } from './model.ts'
export type { AdamOptions, EvaluateOptions, LayerSummary, ModelOptions, OptimizerOptions, SaveOptions, SgdOptions, StepResult } from './model.ts'
export { referenceCnn } from './spec.ts'
export type {
  BatchNorm2dLayer,
  Conv2dLayer,
  DropoutLayer,
  FlattenLayer,
  Layer,
  LinearLayer,
  MaxPool2dLayer,
  ModelSpec,
  ReluLayer,
  Shape3,
} from './spec.ts'
export { TensorDataset } from './data/tensor-dataset.ts'
export type { TensorDatasetOptions } from './data/tensor-dataset.ts'
export { readImageFolder, IMAGE_EXTENSIONS } from './data/image-folder.ts'
export type { ImageFolderOptions, ImageFolderResult } from './data/image-folder.ts'
export { decodeImage } from './data/decode-image.ts'
export type { DecodeOptions } from './data/decode-image.ts'
export { halfNormalization } from './data/image-set.ts'
export type { ImageSet, Normalization } from './data/image-set.ts'
export { metricsFromCounts } from './metrics.ts'
export type { EvalCounts, EvalMetrics } from './metrics.ts'
export { runtimeInfo, setSeed } from './device.ts'
export type { Device, RuntimeInfo } from './device.ts'
export {
  CancelledError,
  CheckpointError,
  ConvkitError,
  DataError,
  DeviceError,
  FileError,
  InputError,
  NativeError,
  SpecError,
  isCancelledError,
  isCheckpointError,
  isConvkitError,
  isDataError,
} from './errors.ts'
export type { ErrorCode } from './errors.ts'
