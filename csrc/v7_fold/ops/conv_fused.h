// conv_fused.h — a conv layer with its BatchNorm folded in (FusedConv), how a layer is planned, and the folding.
//
// Inference BatchNorm is a per-channel affine map, so it folds into the conv before it: scaled weights and a bias.
// The conv's store then adds that bias, adds the residual where the layer has one and applies ReLU, so no
// BatchNorm, add or ReLU pass over memory is left.
//
// The kernels that run a layer are the generated per-shape ones (codegen.py), with bias, residual and ReLU in their
// store.
#pragma once
#include <cstddef>

#include "ops.h"

// A conv layer with its BatchNorm folded in: shapes, weights and bias.
struct FusedConv {
  int cin = 0, cout = 0, k = 1, stride = 1, pad = 0;
  int h = 0, w = 0;    // input size, before padding
  int ho = 0, wo = 0;  // output size
  const float* weight = nullptr;  // OHWI, BatchNorm scale folded in
  const float* bias = nullptr;    // [cout]: BatchNorm shift folded in
};

// The layer that reads an `in`-shaped input with parameters p (weight and bias not set yet).
FusedConv plan_conv(Shape in, ConvParams p);

// w'[o] = w[o] * s[o] and bias[o] = beta[o] - mean[o] * s[o], with s[o] = gamma[o] / sqrt(var[o] + eps), computed
// in double: OHWI weights of cout rows of r floats into `weight`, the shift into `bias`.
void fold_batchnorm(const float* ohwi, const float* mean, const float* var, const float* gamma, const float* beta,
                    double eps, int cout, size_t r, float* weight, float* bias);
