// ops.h — the seven operators ResNet-50 needs, on batch-1 activations.
//
// Layouts used everywhere in the lab:
//   activations  HWC   (batch 1, channels innermost: x[(h * W + w) * C + c])
//   conv weights OHWI  (w[((o * K + kh) * K + kw) * Cin + i])
//   fc weights   [out][in]
// Every op writes into an output buffer its caller owns and sized with the *_shape helpers below, so the
// bindings (binding.cpp) can run one op alone on numpy arrays and the network decides where memory comes from.
//
// v2_avx2: conv2d and fc, where nearly all the time goes, are written with AVX2/FMA intrinsics (8 floats per
// instruction). The other five ops keep v1's plain loops; built at -O3 -ffast-math -mavx2 -mfma, the compiler
// vectorises those simple elementwise loops by itself.
//
// v4_no_malloc: the ops are v2's; the network now runs batchnorm in place (in == out), which its elementwise loop
// allows, so that it needs no buffer of its own.
//
// v7_fold: the network's convs fold BatchNorm in and do the add and ReLU in their store (ops/conv_fused.h), so
// batchnorm, relu and add stay for the single-op API only; maxpool gains a row range.
//
// v14_int8: maxpool_rows_u8() pools the stem's uint8 output (max commutes with the monotone quantization);
// avgpool_u8() pools the last block's uint8 output into fp32 features.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/shape.h"

// max over a kernel x kernel window; padding never wins (it acts as -infinity)
void maxpool(const float* in, Shape s, int kernel, int stride, int pad, float* out);
// the output rows row_begin .. row_end - 1 of maxpool() only (v7_fold: one task per row)
void maxpool_rows(const float* in, Shape s, int kernel, int stride, int pad, float* out, int row_begin, int row_end);
// v14_int8: maxpool_rows() on uint8
void maxpool_rows_u8(const std::uint8_t* in, Shape s, int kernel, int stride, int pad, std::uint8_t* out,
                     int row_begin, int row_end);
// global average pool: out[c] = mean over h, w of in[h, w, c]
void avgpool(const float* in, Shape s, float* out);
// v14_int8: of a uint8 tensor with the given scale: out[c] = (sum over h, w of in[h, w, c], exact) * scale / (h w)
void avgpool_u8(const std::uint8_t* in, Shape s, float scale, float* out);
// out[o] = bias[o] + sum_i weight[o, i] * in[i]
void fc(const float* in, int cin, const float* weight, const float* bias, int cout, float* out);
