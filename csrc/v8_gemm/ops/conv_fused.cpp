// conv_fused.cpp — planning a fused conv layer and folding its BatchNorm, both done once, at load (conv_fused.h).
//
// plan_conv() fixes a layer's shapes and its split into tasks; conv_fused() runs one layer alone, the way the
// network does.
#include "conv_fused.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

FusedConv plan_conv(Shape in, ConvParams p, const ConvKernels& kern) {
  if (p.cout % kern.nb != 0)
    throw std::invalid_argument("conv: " + std::to_string(p.cout) + " output channels is not a multiple of the " +
                                "panel width, " + std::to_string(kern.nb) + " channels");
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
  // Enough pixel ranges for kMinTasks tasks, so the narrow layers keep many cores busy; never more than tiles.
  const int panels = p.cout / kern.nb;
  const int tiles = (out.h * out.w + kern.mr - 1) / kern.mr;
  l.m_parts = std::max(1, std::min(tiles, (kMinTasks + panels - 1) / panels));
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

void conv_fused(const float* in, Shape s, const float* weight, const float* bias, ConvParams p, const float* residual,
                bool relu, const ConvKernels& kern, float* out) {
  FusedConv l = plan_conv(s, p, kern);
  const int r = p.kernel * p.kernel * s.c;
  std::vector<float> packed(static_cast<size_t>(p.cout) * r), padded;
  pack_panels(weight, p.cout, r, kern.nb, packed.data());
  l.weight = packed.data();
  l.bias = bias;
  if (p.pad > 0) {
    padded.resize(static_cast<size_t>(s.h + 2 * p.pad) * (s.w + 2 * p.pad) * s.c);
    for (int row = 0; row < s.h + 2 * p.pad; row++) pad_row(in, s, p.pad, padded.data(), row);
    in = padded.data();
  }
  for (int t = 0; t < conv_tasks(l, kern); t++) kern.task(l, in, out, residual, relu, t);
}
