// common/shape.h — the shapes every stage's tensors have: an HWC activation, a square convolution's parameters, and
// the output shape of a conv or a pooling window.
//
// Layouts used everywhere in the lab:
//   activations  HWC   (batch 1, channels innermost: x[(h * W + w) * C + c]; a batch is N of them, one after the other)
//   conv weights OHWI  (w[((o * K + kh) * K + kw) * Cin + i])
//   fc weights   [out][in]
// No stage changes these, so they live here, outside every stage's diff.
#pragma once
#include <cstddef>

// The shape of one HWC activation.
struct Shape {
  int h = 0, w = 0, c = 0;
  size_t size() const { return static_cast<size_t>(h) * w * c; }
};

// A square convolution without bias (ResNet-50's convs have none; BatchNorm follows each one).
struct ConvParams {
  int cout = 0, kernel = 1, stride = 1, pad = 0;
};

inline Shape conv2d_shape(Shape in, ConvParams p) {
  return {(in.h + 2 * p.pad - p.kernel) / p.stride + 1, (in.w + 2 * p.pad - p.kernel) / p.stride + 1, p.cout};
}
inline Shape maxpool_shape(Shape in, int kernel, int stride, int pad) {
  return {(in.h + 2 * pad - kernel) / stride + 1, (in.w + 2 * pad - kernel) / stride + 1, in.c};
}
