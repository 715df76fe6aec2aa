// ops.h — the seven operators ResNet-50 needs, on batch-1 activations.
//
// Layouts used everywhere in the lab (common/shape.h):
//   activations  HWC   (batch 1, channels innermost: x[(h * W + w) * C + c])
//   conv weights OHWI  (w[((o * K + kh) * K + kw) * Cin + i])
//   fc weights   [out][in]
// Every op writes into an output buffer its caller owns and sized with the *_shape helpers of common/shape.h, so
// the bindings (binding.cpp) can run one op alone on numpy arrays and the network decides where memory comes from.
//
// The network runs batchnorm in place (in == out), which its elementwise loop allows, so that it needs no buffer
// of its own.
#pragma once
#include <cstddef>

#include "common/shape.h"

// out[ho, wo, o] = sum over kh, kw, i of in[ho*s - p + kh, wo*s - p + kw, i] * weight[o, kh, kw, i]
void conv2d(const float* in, Shape s, const float* weight, ConvParams p, float* out);
// out = (x - mean) / sqrt(var + eps) * gamma + beta, per channel (inference-mode BatchNorm); in == out is allowed
void batchnorm(const float* in, Shape s, const float* mean, const float* var, const float* gamma,
               const float* beta, float eps, float* out);
// out = max(x, 0); in == out is allowed
void relu(const float* in, size_t n, float* out);
// max over a kernel x kernel window; padding never wins (it acts as -infinity)
void maxpool(const float* in, Shape s, int kernel, int stride, int pad, float* out);
// global average pool: out[c] = mean over h, w of in[h, w, c]
void avgpool(const float* in, Shape s, float* out);
// out = a + b elementwise; out may alias a or b
void add(const float* a, const float* b, size_t n, float* out);
// out[o] = bias[o] + sum_i weight[o, i] * in[i]
void fc(const float* in, int cin, const float* weight, const float* bias, int cout, float* out);
