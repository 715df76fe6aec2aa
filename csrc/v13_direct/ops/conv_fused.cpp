// conv_fused.cpp — planning a fused conv layer and folding its BatchNorm, both done once, at load (conv_fused.h).
//
// plan_conv() fixes a layer's shapes and its groups of panels; the pixel ranges of its tasks depend on the batch
// (pixel_parts(), at run time). conv_fused() runs one layer alone on a batch of n images, the way the network does.
#include "conv_fused.h"

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
  // As many panels per task as fit in kGroupBytes (a divisor of the panel count); the pixel ranges of the tasks
  // depend on the batch (pixel_parts()).
  const int panels = p.cout / kern.nb;
  const size_t panel_bytes = static_cast<size_t>(p.kernel) * p.kernel * in.c * kern.nb * sizeof(float);
  for (int g = 1; g <= panels; g++)
    if (panels % g == 0 && g * panel_bytes <= kGroupBytes) l.group = g;
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

void conv_fused(const float* in, int n, Shape s, const float* weight, const float* bias, ConvParams p,
                const float* residual, bool relu, const ConvKernels& kern, float* out) {
  FusedConv l = plan_conv(s, p, kern);
  const int r = p.kernel * p.kernel * s.c;
  std::vector<float> packed(static_cast<size_t>(p.cout) * r), padded;
  pack_panels(weight, p.cout, r, kern.nb, packed.data());
  l.weight = packed.data();
  l.bias = bias;
  if (p.pad > 0) {
    padded.resize(static_cast<size_t>(n) * (s.h + 2 * p.pad) * (s.w + 2 * p.pad) * s.c);
    for (int row = 0; row < n * (s.h + 2 * p.pad); row++) pad_row(in, s, p.pad, padded.data(), row);
    in = padded.data();
  }
  for (int t = 0; t < conv_tasks(l, kern, n); t++) kern.task(l, n, in, out, residual, relu, t);
}
