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
//
// The network's activations are uint8 between layers (ops/conv_fused.h): maxpool runs on uint8 (max commutes with the
// monotone quantization), avgpool sums the last block's uint8 output exactly and scales it into the fp32 features
// that fc reads.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/shape.h"

// max over a kernel x kernel window; padding never wins (it acts as -infinity)
// the output rows row_begin .. row_end - 1 only (the network runs one task per row), uint8 in and out
void maxpool_rows(const std::uint8_t* in, Shape s, int kernel, int stride, int pad, std::uint8_t* out, int row_begin,
                  int row_end);
// global average pool: out[c] = mean over h, w of in[h, w, c]
void avgpool(const std::uint8_t* in, Shape s, float scale, float* out);  // exact int32 sums, then x scale / (h w)
// out[o] = bias[o] + sum_i weight[o, i] * in[i]
void fc(const float* in, int cin, const float* weight, const float* bias, int cout, float* out);
