// ops.h — the operators ResNet-50 needs besides its convs, on batch-1 activations.
//
// Layouts used everywhere in the lab (common/shape.h):
//   activations  HWC   (batch 1, channels innermost: x[(h * W + w) * C + c])
//   conv weights OHWI  (w[((o * K + kh) * K + kw) * Cin + i])
//   fc weights   [out][in]
// Every op writes into an output buffer its caller owns and sized with the *_shape helpers of common/shape.h, so
// the bindings (binding.cpp) can run one op alone on numpy arrays and the network decides where memory comes from.
//
// The network's convs fold BatchNorm in and do the residual add and ReLU in their store (ops/conv_fused.h), so
// the ops here are the pooling ops and fc.
#pragma once
#include <cstddef>

#include "common/shape.h"

// max over a kernel x kernel window; padding never wins (it acts as -infinity)
void maxpool(const float* in, Shape s, int kernel, int stride, int pad, float* out);
// the output rows row_begin .. row_end - 1 of maxpool() only (the network runs one task per row)
void maxpool_rows(const float* in, Shape s, int kernel, int stride, int pad, float* out, int row_begin, int row_end);
// global average pool: out[c] = mean over h, w of in[h, w, c]
void avgpool(const float* in, Shape s, float* out);
// out[o] = bias[o] + sum_i weight[o, i] * in[i]
void fc(const float* in, int cin, const float* weight, const float* bias, int cout, float* out);
