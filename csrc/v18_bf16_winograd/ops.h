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
// The network's activations are bfloat16 between layers (bf16_t, with the scalar rounding both ways, here): maxpool
// runs on bf16 in and out (the max of bf16 values is one of them, so nothing is rounded), avgpool reads bf16 into the
// fp32 features that fc reads.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

// bfloat16: the top 16 bits of an IEEE float32 (sign, 8 exponent bits, 7 mantissa bits), stored as its bits.
using bf16_t = std::uint16_t;

// float32 -> bf16, rounded to nearest, ties to even (the rule every vector store of the conv kernels applies too:
// add 0x7FFF plus the lowest kept bit, drop the low 16 bits). Infinities and overflow to infinity come out as
// infinities; a NaN stays a NaN (quietened: the top mantissa bit set, so rounding cannot carry it into infinity).
// Integer arithmetic only, so -ffast-math cannot change it.
inline bf16_t to_bf16(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  const std::uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16, quiet = (u >> 16) | 0x40u;
  return static_cast<bf16_t>((u & 0x7FFFFFFFu) > 0x7F800000u ? quiet : rounded);  // a select: loops vectorise
}
// bf16 -> float32: exact (shift left 16).
inline float from_bf16(bf16_t h) {
  const std::uint32_t u = static_cast<std::uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

#include "common/shape.h"

// max over a kernel x kernel window; padding never wins (it acts as -infinity)
// the output rows row_begin .. row_end - 1 only (the network runs one task per row), bf16 in and out
void maxpool_rows(const bf16_t* in, Shape s, int kernel, int stride, int pad, bf16_t* out, int row_begin, int row_end);
// global average pool: out[c] = mean over h, w of in[h, w, c]
void avgpool(const bf16_t* in, Shape s, float* out);  // bf16 in, fp32 sums and features
// out[o] = bias[o] + sum_i weight[o, i] * in[i]
void fc(const float* in, int cin, const float* weight, const float* bias, int cout, float* out);
