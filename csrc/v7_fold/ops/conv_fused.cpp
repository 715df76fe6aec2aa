// conv_fused.cpp — planning a fused conv layer and folding its BatchNorm, both done once, at load (conv_fused.h).
#include "conv_fused.h"

#include <cmath>

FusedConv plan_conv(Shape in, ConvParams p) {
  const Shape out = conv2d_shape(in, p);
  FusedConv l;
  l.cin = in.c;
  l.cout = p.cout;
  l.k = p.kernel;
  l.stride = p.stride;
  l.pad = p.pad;
  l.h = in.h;
  l.w = in.w;
  l.ho = out.h;
  l.wo = out.w;
  return l;
}

void fold_batchnorm(const float* ohwi, const float* mean, const float* var, const float* gamma, const float* beta,
                    double eps, int cout, size_t r, float* weight, float* bias) {
  for (int o = 0; o < cout; o++) {
    const double scale = static_cast<double>(gamma[o]) / std::sqrt(static_cast<double>(var[o]) + eps);
    for (size_t k = 0; k < r; k++) weight[o * r + k] = static_cast<float>(ohwi[o * r + k] * scale);
    bias[o] = static_cast<float>(beta[o] - mean[o] * scale);
  }
}
