// conv_fused.cpp — planning a fused conv layer and folding its BatchNorm, both done once, at load (conv_fused.h).
//
// plan_conv() fixes a layer's shapes and its split into tasks, or a Winograd layer's tiles; conv_fused() runs one
// layer alone, the way the network does, and conv_winograd() one Winograd layer.
#include "conv_fused.h"

#include "winograd.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

FusedConv plan_conv(Shape in, ConvParams p, const ConvKernels& kern, int wino) {
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
  // As many panels per task as fit in kGroupBytes (a divisor of the panel count); then enough pixel ranges for
  // kMinTasks tasks, so the narrow layers keep many cores busy; never more pixel ranges than tiles.
  const int panels = p.cout / kern.nb;
  const int tiles = (out.h * out.w + kern.mr - 1) / kern.mr;
  const size_t panel_bytes = static_cast<size_t>(p.kernel) * p.kernel * in.c * kern.nb * sizeof(float);
  for (int g = 1; g <= panels; g++)
    if (panels % g == 0 && g * panel_bytes <= kGroupBytes) l.group = g;
  const int groups = panels / l.group;
  l.m_parts = std::max(1, std::min(tiles, (kMinTasks + groups - 1) / groups));
  if (wino) {
    if (wino != 2 && wino != 4) throw std::invalid_argument("winograd: the tile must be 2 or 4");
    if (p.kernel != 3 || p.stride != 1 || p.pad != 1)
      throw std::invalid_argument("winograd: only 3x3 convs with stride 1 and pad 1");
    if (in.c % kWinoChunk != 0 || p.cout % kWinoChunk != 0 || in.c > kWinoMaxChannels)
      throw std::invalid_argument("winograd: input and output channels must be multiples of " +
                                  std::to_string(kWinoChunk) + ", input channels at most " +
                                  std::to_string(kWinoMaxChannels) + "; got " + std::to_string(in.c) + " and " +
                                  std::to_string(p.cout));
    l.wino = wino;
    l.tiles_h = (out.h + wino - 1) / wino;
    l.tiles_w = (out.w + wino - 1) / wino;
    l.group = 1;
    l.m_parts = 1;  // (m + 2)^2 x panels GEMM tasks: at least 16 x 2
  }
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

void conv_winograd(const float* in, Shape s, const float* weight, const float* bias, int cout, int m, bool relu,
                   const ConvKernels& kern, float* out) {
  FusedConv l = plan_conv(s, {cout, 3, 1, 1}, kern, m);
  std::vector<float> packed(cout * packed_per_channel(l));
  wino_pack_weights(weight, cout, s.c, m, kern.nb, packed.data());
  l.weight = packed.data();
  l.bias = bias;
  const size_t tiles = static_cast<size_t>(l.tiles_h) * l.tiles_w;
  std::vector<float> v((m + 2) * (m + 2) * tiles * s.c), mo((m + 2) * (m + 2) * tiles * cout);
  for (int t = 0; t < wino_input_tasks(l); t++) kern.wino_input(l, in, v.data(), t);
  for (int t = 0; t < wino_gemm_tasks(l, kern.nb); t++) kern.wino_gemm(l, v.data(), mo.data(), t);
  for (int t = 0; t < wino_output_tasks(l); t++) kern.wino_output(l, mo.data(), out, relu, t);
}
