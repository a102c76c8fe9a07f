// ConvKit's public API.
export { train } from './train.ts'
export type { TrainResult } from './train.ts'
export type { OptimizerName, TrainConfig, TrainOptions } from './train-options.ts'
export { EarlyStopping } from './callbacks/early-stopping.ts'
export type { EarlyStoppingOptions, EarlyStoppingState, StopDecision } from './callbacks/early-stopping.ts'
export { ModelCheckpoint } from './callbacks/model-checkpoint.ts'
export type { ModelCheckpointOptions } from './callbacks/model-checkpoint.ts'
export { ReduceLROnPlateau } from './callbacks/reduce-lr-on-plateau.ts'
export type { ReduceLROnPlateauOptions, ReduceLROnPlateauState } from './callbacks/reduce-lr-on-plateau.ts'
export { History } from './callbacks/history.ts'
export type { HistoryFile } from './callbacks/history.ts'
export type { Callback, EpochLogs, EpochRecord, SplitMetrics, TrainContext } from './callbacks/callback.ts'
export { Model } from './model.ts'
export { loadModel, predict } from './predict.ts'
export type { ClassScore, ImageInput, Prediction, PredictOptions, RawImage } from './predict-images.ts'
export type { AdamOptions, EvaluateOptions, LayerSummary, LoadOptions, ModelOptions, Precision, OptimizerOptions, SaveOptions, SgdOptions, StepResult } from './model.ts'
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
export { loadData } from './data/load-data.ts'
export type { DataFormat, LoadDataOptions, LoadedData } from './data/load-data.ts'
export { loadCifar10, CIFAR10_CLASSES } from './data/cifar10.ts'
export type { Cifar10, Cifar10Options } from './data/cifar10.ts'
export { loadIdxDir, readIdxPair, FASHION_MNIST_CLASSES } from './data/idx.ts'
export type { IdxOptions, IdxPair } from './data/idx.ts'
export { extractArchive } from './data/archive.ts'
export { download } from './data/download.ts'
export type { DownloadOptions } from './data/download.ts'
export { readImageFolderCached } from './data/decoded-cache.ts'
export type { CachedImageFolderOptions } from './data/decoded-cache.ts'
export { datasetNormalization } from './data/normalization.ts'
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
