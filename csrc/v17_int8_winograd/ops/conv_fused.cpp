// conv_fused.cpp — planning a fused conv layer and folding its BatchNorm, both done once, at load (conv_fused.h).
//
// plan_conv() fixes a layer's shapes and its groups of panels; the pixel ranges of its tasks depend on the batch
// (pixel_parts(), at run time), and a Winograd layer its tiles. quantize_weights() quantizes a layer's folded
// weights, at load. conv_int8() runs one layer alone on a batch of n images, the way the network does.
#include "conv_fused.h"

#include <algorithm>
#include <cstdint>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "winograd.h"

FusedConv plan_conv(Shape in, ConvParams p, const ConvKernels& kern, bool wino) {
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
  l.quads = (p.kernel * in.c + 3) / 4;
  // As many panels per task as fit in kGroupBytes (a divisor of the panel count); the pixel ranges of the tasks
  // depend on the batch (pixel_parts()).
  const int panels = p.cout / kern.nb;
  const size_t panel_bytes = static_cast<size_t>(p.kernel) * l.quads * 4 * kern.nb;
  for (int g = 1; g <= panels; g++)
    if (panels % g == 0 && g * panel_bytes <= kGroupBytes) l.group = g;
  if (wino) {
    if (p.kernel != 3 || p.stride != 1 || p.pad != 1)
      throw std::invalid_argument("winograd: only 3x3 convs with stride 1 and pad 1");
    if (in.c % kWinoChunk != 0 || p.cout % kWinoChunk != 0 || in.c > kWinoMaxChannels)
      throw std::invalid_argument("winograd: input and output channels must be multiples of " +
                                  std::to_string(kWinoChunk) + ", at most " + std::to_string(kWinoMaxChannels) +
                                  " input channels");
    l.wino = true;
    l.tiles_h = (out.h + 1) / 2;
    l.tiles_w = (out.w + 1) / 2;
    // as many panels per task as fit in kGroupBytes, their transformed weights being 16 x cin x nb int16
    const size_t wino_panel_bytes = static_cast<size_t>(16) * in.c * kern.nb * 2;
    l.wino_group = 1;
    for (int g = 1; g <= panels; g++)
      if (panels % g == 0 && g * wino_panel_bytes <= kGroupBytes) l.wino_group = g;
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

void quantize_weights(const float* ohwi, int cout, size_t r, int bits, std::int8_t* q, float* step) {
  const float qmax = static_cast<float>((1 << (bits - 1)) - 1);
  for (int o = 0; o < cout; o++) {
    const float* w = ohwi + o * r;
    float amax = 0.0f;
    for (size_t i = 0; i < r; i++) amax = std::max(amax, std::fabs(w[i]));
    step[o] = amax > 0.0f ? amax / qmax : 1.0f;
    // w / step in double, rounded half to even: |w| <= amax, so the result is within -qmax .. qmax
    for (size_t i = 0; i < r; i++)
      q[o * r + i] = static_cast<std::int8_t>(std::clamp(std::nearbyint(static_cast<double>(w[i]) / step[o]),
                                                         -double{qmax}, double{qmax}));
  }
}

void conv_int8(const std::uint8_t* in, int n, Shape s, const std::int8_t* weight, const float* scale,
               const float* bias, ConvParams p, const void* residual, bool res_f32, float res_scale, bool relu,
               bool out_f32, float inv_out, const ConvKernels& kern, bool wino, void* out) {
  FusedConv l = plan_conv(s, p, kern, wino);
  const size_t taps = static_cast<size_t>(p.cout) * p.kernel * p.kernel * s.c;
  for (size_t i = 0; i < taps; i++)
    if (weight[i] > kern.weight_max || weight[i] < -kern.weight_max - 1)
      throw std::invalid_argument("conv_int8: weight " + std::to_string(weight[i]) + " is outside -" +
                                  std::to_string(kern.weight_max + 1) + " .. " + std::to_string(kern.weight_max) +
                                  ", the range the " + kern.isa + " path sums exactly (vpmaddubsw needs 7-bit "
                                  "weights)");
  l.scale = scale;
  l.bias = bias;
  l.res_scale = res_scale;
  l.inv_out = inv_out;
  l.out_f32 = out_f32;
  l.res_f32 = res_f32;
  if (wino) {
    if (residual) throw std::invalid_argument("winograd: the layer adds no residual");
    std::vector<std::int16_t> packed(static_cast<size_t>(16) * p.cout * s.c);
    wino_pack_weights(weight, p.cout, s.c, kern.nb, packed.data());
    l.wino_weight = packed.data();
    std::vector<std::int16_t> v(static_cast<size_t>(16) * n * l.tiles_h * l.tiles_w * s.c);
    for (int t = 0; t < wino_input_tasks(l, n); t++) kern.wino_input(l, n, in, v.data(), t);
    for (int t = 0; t < wino_tasks(l, kern, n); t++)
      kern.wino_task(l, n, v.data(), out, relu, t);
    return;
  }
  std::vector<std::int8_t> packed(static_cast<size_t>(p.cout) * p.kernel * l.quads * 4);
  pack_panels(weight, p.cout, p.kernel, s.c, kern.nb, packed.data());
  l.weight = packed.data();
  // Always a copy, padded or not, with 4 bytes of slack: when k * cin is not a multiple of 4, a kernel row's last
  // quad reads up to 3 bytes past the row (times zero weights). Every layer of the network but the stem, which reads
  // its large padded buffer, has cin % 64 == 0 and reads nothing past a row.
  const size_t rows = static_cast<size_t>(n) * (s.h + 2 * p.pad);
  std::vector<std::uint8_t> padded(rows * (s.w + 2 * p.pad) * s.c + 4, 0);
  for (size_t row = 0; row < rows; row++) pad_row(in, s, p.pad, padded.data(), static_cast<int>(row));
  for (int t = 0; t < conv_tasks(l, kern, n); t++) kern.task(l, n, padded.data(), out, residual, relu, t);
}
