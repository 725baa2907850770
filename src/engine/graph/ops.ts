/**
 * Ops that mixed precision keeps in fp32 (the autocast fp32 lists of PyTorch AMP and Megatron):
 * their dynamic range or their long accumulations need it — softmax, normalizations, exp/log/pow,
 * and reductions that sum.
 */
export const FP32_OPS = new Set([
  'Softmax',
  'LogSoftmax',
  'LayerNormalization',
  'SimplifiedLayerNormalization',
  'SkipLayerNormalization',
  'SkipSimplifiedLayerNormalization',
  'RMSNormalization',
  'BatchNormalization',
  'GroupNormalization',
  'InstanceNormalization',
  'LpNormalization',
  'MeanVarianceNormalization',
  'Exp',
  'Log',
  'Pow',
  'ReduceMean',
  'ReduceSum',
  'ReduceSumSquare',
  'ReduceL1',
  'ReduceL2',
  'ReduceLogSum',
  'ReduceLogSumExp',
  'CumSum',
]);
