// conv_fused.h — v7_fused (new): convolution with BatchNorm folded in and bias, residual add and ReLU fused into
// the store, computed by a register-tiled micro-kernel on weights packed at load.
//
// The layer is a GEMM in disguise: output[m, n] = bias[n] + sum over r of input_tap(m, r) * weight[n, r], with m an
// output pixel, n an output channel and r = (kh, kw, ci) the reduction. Activations stay HWC, so for one pixel
// and one kernel row kh the taps (kw, ci) are one contiguous run of K * Cin floats in the (zero-padded) input,
// and the OHWI weights of one output channel are the same run. The weights are packed at load into panels of
// NB output channels, [Cout / NB][K * K * Cin][NB], so that one step of the reduction reads NB consecutive floats
// (two vector registers) and one input float per pixel.
//
// The micro-kernel computes a tile of MR = 6 output pixels x NB output channels: 12 vector accumulators that stay
// in registers across the whole reduction; each step broadcasts one input float per pixel and does 12 FMAs
// (AVX2: NB = 16, 6 x 2 ymm; AVX-512: NB = 32, 6 x 2 zmm). The accumulators start at the folded bias; at the end
// the residual (when there is one) is added, ReLU applied, and the tile stored once: no separate BatchNorm, ReLU
// or add pass over memory.
//
// The same template code serves both instruction sets: conv_fused.cpp instantiates it with AVX2 traits, and
// conv_fused_avx512.cpp, the only file compiled with -mavx512f, with AVX-512 traits. Everything here is in an
// anonymous namespace and calls nothing from the standard library, so no function compiled for AVX-512 can be
// merged at link time with its AVX2 twin (as identical inline templates such as std::min otherwise may be).
//
// v8_winograd: FusedConv says whether a layer runs as Winograd (and on how many tiles), ConvKernels carries the
// three Winograd passes of ops/winograd.h; the micro-kernel itself is v7's, unchanged, and also runs the GEMMs.
#pragma once
#include <cstddef>

#include "ops.h"

// A conv layer ready for the fused kernels: shapes, BatchNorm folded into packed weights and a bias.
struct FusedConv {
  int cin = 0, cout = 0, k = 1, stride = 1, pad = 0;
  int h = 0, w = 0;    // input size, before padding
  int ho = 0, wo = 0;  // output size
  int group = 1;       // panels of NB output channels per task: their weights stay in L2 while a task runs
  int m_parts = 1;     // each group of panels is split into this many ranges of pixels (tasks)
  // v8_winograd: wino = m > 0 runs this 3x3 stride-1 conv as Winograd F(m x m, 3 x 3) (ops/winograd.h), on
  // tiles_h x tiles_w tiles of m x m outputs; m_parts then splits the tiles of each GEMM. 0: direct, as in v7.
  int wino = 0, tiles_h = 0, tiles_w = 0;
  // packed: [cout / NB][k * k * cin][NB], BatchNorm scale folded in; Winograd: [(m + 2)^2][cout / NB][cin][NB]
  const float* weight = nullptr;
  const float* bias = nullptr;    // [cout]: BatchNorm shift folded in
};

// The instruction set of a model's kernels, chosen once at load.
enum class Isa { kAvx2, kAvx512 };

// Kernels for one instruction set. task(): one task of a layer, see conv_tasks(). `in` is the layer's input,
// already zero-padded when pad > 0 (so (h + 2 pad) x (w + 2 pad) x cin); residual is nullptr or the tensor to add
// (same shape as out).
// v8_winograd: the three passes of a Winograd layer (ops/winograd.h): input transform into v, the GEMMs from v
// into m, output transform from m into out (bias, then ReLU when relu).
struct ConvKernels {
  Isa isa;
  int nb;  // output channels per packed panel
  void (*task)(const FusedConv& layer, const float* in, float* out, const float* residual, bool relu, int task);
  void (*wino_input)(const FusedConv& layer, const float* in, float* v, int task);
  void (*wino_gemm)(const FusedConv& layer, const float* v, float* m, int task);
  void (*wino_output)(const FusedConv& layer, const float* m, float* out, bool relu, int task);
};

bool cpu_has_avx512();  // CPUID, via the compiler's __builtin_cpu_supports
ConvKernels conv_kernels_avx2();
ConvKernels conv_kernels_avx512();  // only call when cpu_has_avx512()

// Tasks of one layer: groups of `group` panels of nb output channels x m_parts pixel ranges. Fixed by the shape
// and the instruction set, never by the thread count: each output value is computed by one task, the same way
// whoever runs it.
inline int conv_tasks(const FusedConv& l, int nb) { return l.cout / nb / l.group * l.m_parts; }

// Packs OHWI weights (cout rows of r = k * k * cin floats) into panels of nb output channels.
void pack_panels(const float* ohwi, int cout, int r, int nb, float* packed);

// Row `row` (0 .. h + 2 pad - 1) of the zero-padded copy of an HWC activation; one task per row.
void pad_row(const float* in, Shape s, int pad, float* out, int row);

namespace {

constexpr int kTileM = 6;  // output pixels per micro-kernel tile

inline int min_int(int a, int b) { return a < b ? a : b; }

// One tile: count (1..6) output pixels x 2 vectors of output channels, over the whole reduction.
// px[p]: the first input tap of pixel p; rs: floats from one input row to the next; run = k * cin.
// po[p]: offset of pixel p's first output channel of this panel in out (and in residual).
template <class V>
inline void micro_tile(const float* const* px, int k, size_t rs, int run, const float* w, const float* bias,
                       float* out, const float* residual, const size_t* po, int count, bool relu) {
  using R = typename V::reg;
  constexpr int W = V::kWidth;
  const R b0 = V::load(bias), b1 = V::load(bias + W);
  R c00 = b0, c01 = b1, c10 = b0, c11 = b1, c20 = b0, c21 = b1;
  R c30 = b0, c31 = b1, c40 = b0, c41 = b1, c50 = b0, c51 = b1;
  for (int kh = 0; kh < k; kh++) {
    const size_t o = kh * rs;
    const float *x0 = px[0] + o, *x1 = px[1] + o, *x2 = px[2] + o, *x3 = px[3] + o, *x4 = px[4] + o,
                *x5 = px[5] + o;
    const float* wk = w + static_cast<size_t>(kh) * run * 2 * W;
    for (int j = 0; j < run; j++, wk += 2 * W) {
      const R w0 = V::load(wk), w1 = V::load(wk + W);
      R a = V::bcast(x0 + j);
      c00 = V::fma(a, w0, c00);
      c01 = V::fma(a, w1, c01);
      a = V::bcast(x1 + j);
      c10 = V::fma(a, w0, c10);
      c11 = V::fma(a, w1, c11);
      a = V::bcast(x2 + j);
      c20 = V::fma(a, w0, c20);
      c21 = V::fma(a, w1, c21);
      a = V::bcast(x3 + j);
      c30 = V::fma(a, w0, c30);
      c31 = V::fma(a, w1, c31);
      a = V::bcast(x4 + j);
      c40 = V::fma(a, w0, c40);
      c41 = V::fma(a, w1, c41);
      a = V::bcast(x5 + j);
      c50 = V::fma(a, w0, c50);
      c51 = V::fma(a, w1, c51);
    }
  }
  // The epilogue: + residual, ReLU, one store per register. Pixels past `count` were computed on a repeated
  // pointer and are dropped here.
  auto emit = [&](int p, R r0, R r1) {
    if (p >= count) return;
    float* y = out + po[p];
    if (residual) {
      r0 = V::add(r0, V::load(residual + po[p]));
      r1 = V::add(r1, V::load(residual + po[p] + W));
    }
    if (relu) {
      r0 = V::max(r0, V::zero());
      r1 = V::max(r1, V::zero());
    }
    V::store(y, r0);
    V::store(y + W, r1);
  };
  emit(0, c00, c01);
  emit(1, c10, c11);
  emit(2, c20, c21);
  emit(3, c30, c31);
  emit(4, c40, c41);
  emit(5, c50, c51);
}

// One task of a layer: the panels of group task / m_parts, the tiles of pixel range task % m_parts. Tiles are the
// outer loop: a tile's input rows stay in L1 while every panel of the group (in L2) is applied to them, so the
// input is read once per group rather than once per panel.
template <class V>
void conv_task(const FusedConv& l, const float* in, float* out, const float* residual, bool relu, int task) {
  constexpr int NB = 2 * V::kWidth;
  const int p_begin = task / l.m_parts * l.group, p_end = p_begin + l.group, part = task % l.m_parts;
  const int m_total = l.ho * l.wo;
  const int tiles = (m_total + kTileM - 1) / kTileM;
  const int t_begin = part * tiles / l.m_parts, t_end = (part + 1) * tiles / l.m_parts;
  const int in_w = l.w + 2 * l.pad;  // the input is the padded copy when pad > 0
  const size_t rs = static_cast<size_t>(in_w) * l.cin;
  const int run = l.k * l.cin;
  const size_t panel_floats = static_cast<size_t>(l.k) * run * NB;
  const float* px[kTileM];
  size_t po[kTileM];
  for (int t = t_begin; t < t_end; t++) {
    const int m0 = t * kTileM;
    const int count = min_int(kTileM, m_total - m0);
    for (int p = 0; p < kTileM; p++) {
      const int m = m0 + min_int(p, count - 1);  // a short last tile repeats its last pixel
      const int oh = m / l.wo, ow = m % l.wo;
      px[p] = in + (static_cast<size_t>(oh) * l.stride * in_w + static_cast<size_t>(ow) * l.stride) * l.cin;
      po[p] = static_cast<size_t>(m) * l.cout + static_cast<size_t>(p_begin) * NB;
    }
    for (int panel = p_begin; panel < p_end; panel++) {
      micro_tile<V>(px, l.k, rs, run, l.weight + panel * panel_floats, l.bias + panel * NB, out, residual, po, count,
                    relu);
      for (int p = 0; p < kTileM; p++) po[p] += NB;
    }
  }
}

}  // namespace
