// ConvKit's public API.
export { train } from './train/train.ts'
export type { TrainResult } from './train/train.ts'
export { ProcessGroup } from './distributed/process-group.ts'
export type { DistributedOptions } from './distributed/env.ts'
export type { DistributedSummary } from './distributed/train-sync.ts'
export { TRAIN_OPTIONS } from './train/train-options.ts'
export type { ModelSource, TrainConfig, TrainOptions, TrainableSpan } from './train/train-options.ts'
export { lrMultiplier } from './train/schedule.ts'
export type { ScheduleOptions } from './train/schedule.ts'
export { findLearningRate } from './train/find-learning-rate.ts'
export type { FindLearningRateOptions, FindLearningRateResult } from './train/find-learning-rate.ts'
export { sweepLearningRate } from './train/lr-finder.ts'
export type { SweepLearningRateOptions } from './train/lr-finder.ts'
export { LR_FIND_OPTIONS } from './train/lr-find-options.ts'
export type { LrFindOptions, LrFindSettings } from './train/lr-find-options.ts'
export { SmoothedLoss, suggestLearningRate, sweepRates } from './train/lr-sweep.ts'
export type { LrSuggestion, LrSweep } from './train/lr-sweep.ts'
export { EarlyStopping } from './callbacks/early-stopping.ts'
export type { EarlyStoppingOptions, EarlyStoppingState, StopDecision } from './callbacks/early-stopping.ts'
export { ModelCheckpoint } from './callbacks/model-checkpoint.ts'
export type { ModelCheckpointOptions } from './callbacks/model-checkpoint.ts'
export { ReduceLROnPlateau } from './callbacks/reduce-lr-on-plateau.ts'
export type { ReduceLROnPlateauOptions, ReduceLROnPlateauState } from './callbacks/reduce-lr-on-plateau.ts'
export { History } from './callbacks/history.ts'
export type { HistoryFile } from './callbacks/history.ts'
export type { Callback, EpochLogs, EpochRecord, SplitMetrics, TrainContext } from './callbacks/callback.ts'
export { TensorBoard, TENSORBOARD_TAGS } from './callbacks/tensorboard.ts'
export { TrainableSchedule, classifierOf, setTrainableAt } from './callbacks/trainable-schedule.ts'
export type { TrainableScheduleOptions } from './callbacks/trainable-schedule.ts'
export { WeightAveraging } from './callbacks/weight-averaging.ts'
export type { WeightAveragingOptions } from './callbacks/weight-averaging.ts'
export { LastCheckpoint, LAST_CHECKPOINT } from './callbacks/last-checkpoint.ts'
export { ProgressPrinter } from './callbacks/progress-printer.ts'
export type { ProgressPrinterOptions } from './callbacks/progress-printer.ts'
export { RunReport } from './callbacks/run-report.ts'
export { TopLosses } from './callbacks/top-losses.ts'
export { interpretPredictions } from './report/top-losses.ts'
export type { ConfusedPair, Interpretation, InterpretOptions, TopLoss } from './report/top-losses.ts'
export type { RunReportOptions } from './callbacks/run-report.ts'
export type { TensorBoardOptions, TensorBoardState } from './callbacks/tensorboard.ts'
export { Model } from './model/model.ts'
export { inspectData } from './inspect/inspect-data.ts'
export type { InspectImage, InspectReport, Inspection } from './inspect/inspect-data.ts'
export { INSPECT_OPTIONS, NEAR_DUPLICATE_THRESHOLD } from './inspect/inspect-options.ts'
export type { InspectOptions, InspectSettings } from './inspect/inspect-options.ts'
export { writeInspection, inspectHtml } from './inspect/inspect-html.ts'
export { confidentJoint, findLabelIssues } from './inspect/label-issues.ts'
export type { LabelIssue } from './inspect/label-issues.ts'
export { readExcludeList } from './data/exclude-list.ts'
export { loadModel, predict } from './predict/predict.ts'
export type { ClassScore, ImageInput, Prediction, PredictOptions, RawImage } from './predict/predict-images.ts'
export type { Explanation, ExplainMethod, ExplainOptions } from './explain/explanation.ts'
export { heatmapOverlay, overlayPixels, type OverlayOptions } from './explain/heatmap-overlay.ts'
export type {
  AugmentOptions,
  AveragingOptions,
  EmbedOptions,
  Embeddings,
  EvaluateOptions,
  ExportOnnxOptions,
  LoadOptions,
  LoadWeightsOptions,
  LossOptions,
  ModelOptions,
  OptimizerOptions,
  Precision,
  Preprocessing,
  SaveOptions,
  StepOptions,
  StepResult,
  TrainBatch,
  Tta,
} from './model/model.ts'
export type { ParamGroup } from './binding.ts'
export type { LayerSummary } from './report/model-summary.ts'
export { cpuBf16Flags } from './train/precision.ts'
export { readTorchStateDict, parseTorchStateDict, torchTensorValues, STATE_DICT_KEYS } from './weights/torch-checkpoint.ts'
export type { TorchDType, TorchTensor, TorchTensorValues } from './weights/torch-checkpoint.ts'
export { referenceCnn } from './model/spec.ts'
export type { ModelBuilder } from './model/spec.ts'
export { ZOO, ZOO_NAMES, isZooName, zooModel } from './zoo/architectures.ts'
export type { ZooArchitecture, ZooName } from './zoo/architectures.ts'
export type { ZooOptions } from './zoo/blocks.ts'
export { fetchWeights, weightsCacheDir } from './zoo/fetch-weights.ts'
export type { FetchWeightsOptions } from './zoo/fetch-weights.ts'
export { PRETRAINED_WEIGHTS, PRETRAINED_WEIGHTS_NAMES, defineWeights, isPretrainedWeightsName, pretrainedWeights } from './zoo/weights.ts'
export type {
  PretrainedWeights,
  PretrainedWeightsName,
  PypiWeightsSource,
  UrlWeightsSource,
  WeightsDeclaration,
  WeightsSource,
} from './zoo/weights.ts'
export { IMAGENET_CLASSES } from './zoo/imagenet-classes.ts'
export type { PretrainedOptions } from './zoo/pretrained.ts'
export { RECIPES, RECIPE_NAMES } from './recipes/recipes.ts'
export type { RecipeName } from './recipes/recipes.ts'
export { airbench94Net } from './zoo/airbench94.ts'
export type {
  ActivationName,
  AdaptiveAvgPool2dLayer,
  AdaptiveMaxPool2dLayer,
  AvgPool2dLayer,
  BatchNorm2dLayer,
  LayerNorm2dLayer,
  LayerScaleLayer,
  Conv2dLayer,
  DropoutLayer,
  FlattenLayer,
  GeluLayer,
  HardsigmoidLayer,
  HardswishLayer,
  IdentityLayer,
  Layer,
  LinearLayer,
  MaxPool2dLayer,
  ModelSpec,
  ReluLayer,
  Relu6Layer,
  ResidualLayer,
  ScaleLayer,
  SeLayer,
  SequentialLayer,
  Shape3,
  SigmoidLayer,
  SiluLayer,
  Size2,
  WeightInit,
} from './model/layers.ts'
export { TensorDataset } from './data/tensor-dataset.ts'
export { applyAugmentOperation } from './data/augment-operation.ts'
export type { AugmentOperation } from './data/augment-operation.ts'
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
export { writeShards } from './data/shards/write-shards.ts'
export type { ShardIndex, WriteShardsOptions, WriteShardsResult } from './data/shards/write-shards.ts'
export { describeShards, openShards, epochBatches } from './data/shards/shard-stream.ts'
export type { ShardBatch, ShardSet, ShardStream, ShardStreamOptions, SkippedSample } from './data/shards/shard-stream.ts'
export { readShardImages } from './data/shards/shard-source.ts'
export { chooseDataPath, trainEpochOnShards } from './data/shards/stream-train.ts'
export { evaluateShards } from './data/shards/stream-evaluate.ts'
export type { EvaluateShardsOptions } from './data/shards/stream-evaluate.ts'
export type { DataPathChoice, StreamEpochOptions, StreamEpochResult } from './data/shards/stream-train.ts'
export { expandBraces } from './data/shards/brace-pattern.ts'
export { RunningMetrics } from './train/running-metrics.ts'
export type { ImageSet, Normalization } from './data/image-set.ts'
export { balancedAccuracy, classMetrics, classScores, confusionTotals, macroF1, metricsFromCounts, addEvalCounts } from './model/metrics.ts'
export type { ClassMetrics, ClassTotals, EvalCounts, EvalMetrics } from './model/metrics.ts'
export { balancedOrder } from './data/split.ts'
export { classCounts, epochOrder, resolveClassWeights } from './train/class-balance.ts'
export type { ClassWeights, Sampler } from './train/class-balance.ts'
export { runtimeInfo, setSeed } from './util/device.ts'
export type { Device, RuntimeInfo } from './util/device.ts'
export {
  CancelledError,
  CheckpointError,
  ConvkitError,
  DataError,
  DeviceError,
  DistributedError,
  FileError,
  InputError,
  NativeError,
  SpecError,
  isCancelledError,
  isCheckpointError,
  isConvkitError,
  isDataError,
  isDistributedError,
} from './errors.ts'
export type { ErrorCode } from './errors.ts'
