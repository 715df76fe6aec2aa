// conv_fused.cpp — planning a fused conv layer and folding its BatchNorm, both done once, at load (conv_fused.h).
//
// plan_conv() fixes a layer's shapes and its groups of panels, or a Winograd layer's tiles; the pixel ranges of its
// tasks depend on the batch (pixel_parts(), at run time). conv_fused() runs one layer alone on a batch of n images,
// the way the network does, and conv_winograd() one Winograd layer: both convert their fp32 arrays to bf16 (as the
// network holds them) and their bf16 output back to fp32.
#include "conv_fused.h"

#include "winograd.h"

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
  l.run = (p.kernel * in.c + 1) / 2 * 2;  // the kernels take taps in pairs: an odd row gets a zero tap
  // As many panels per task as fit in kGroupBytes (a divisor of the panel count); the pixel ranges of the tasks
  // depend on the batch (pixel_parts()).
  const int panels = p.cout / kern.nb;
  const size_t panel_bytes = static_cast<size_t>(p.kernel) * l.run * kern.nb * sizeof(bf16_t);
  for (int g = 1; g <= panels; g++)
    if (panels % g == 0 && g * panel_bytes <= kGroupBytes) l.group = g;
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

void conv_fused(const float* in, int n, Shape s, const float* weight, const float* bias, ConvParams p,
                const float* residual, bool relu, const ConvKernels& kern, float* out) {
  FusedConv l = plan_conv(s, p, kern);
  std::vector<bf16_t> packed(static_cast<size_t>(p.cout) * p.kernel * l.run);
  pack_panels(weight, p.cout, p.kernel, s.c, kern.nb, packed.data());
  l.weight = packed.data();
  l.bias = bias;
  // the input as the network holds it: bf16, zero-padded (pad_row_f32 with pad 0 only converts), and one zero value
  // after it, which an odd row of taps reads (times a zero weight) at the very end
  std::vector<bf16_t> x(static_cast<size_t>(n) * (s.h + 2 * p.pad) * (s.w + 2 * p.pad) * s.c + 1, 0);
  for (int row = 0; row < n * (s.h + 2 * p.pad); row++) pad_row_f32(in, s, p.pad, x.data(), row);
  const size_t outs = static_cast<size_t>(n) * l.ho * l.wo * l.cout;
  std::vector<bf16_t> res, y(outs);
  if (residual) {
    res.resize(outs);
    for (size_t i = 0; i < outs; i++) res[i] = to_bf16(residual[i]);
  }
  for (int t = 0; t < conv_tasks(l, kern, n); t++)
    kern.task(l, n, x.data(), y.data(), residual ? res.data() : nullptr, relu, t);
  for (size_t i = 0; i < outs; i++) out[i] = from_bf16(y[i]);
}

void conv_winograd(const float* in, int n, Shape s, const float* weight, const float* bias, int cout, int m,
                   bool relu, const ConvKernels& kern, float* out) {
  FusedConv l = plan_conv(s, {cout, 3, 1, 1}, kern, m);
  std::vector<bf16_t> packed(cout * packed_per_channel(l));
  wino_pack_weights(weight, cout, s.c, m, kern.nb, packed.data());
  l.weight = packed.data();
  l.bias = bias;
  std::vector<bf16_t> x(static_cast<size_t>(n) * s.size());
  for (int row = 0; row < n * s.h; row++) pad_row_f32(in, s, 0, x.data(), row);
  const size_t tiles = static_cast<size_t>(n) * l.tiles_h * l.tiles_w, outs = static_cast<size_t>(n) * s.h * s.w * cout;
  std::vector<bf16_t> v((m + 2) * (m + 2) * tiles * s.c), y(outs);
  std::vector<float> mo((m + 2) * (m + 2) * tiles * cout);
  for (int t = 0; t < wino_input_tasks(l, n); t++) kern.wino_input(l, n, x.data(), v.data(), t);
  for (int t = 0; t < wino_gemm_tasks(l, kern.nb); t++) kern.wino_gemm(l, n, v.data(), mo.data(), t);
  for (int t = 0; t < wino_output_tasks(l, n); t++) kern.wino_output(l, n, mo.data(), y.data(), relu, t);
  for (size_t i = 0; i < outs; i++) out[i] = from_bf16(y[i]);
}
