// microkernel.h — the register-tiled GEMM micro-kernel every conv runs: a tile of MR output pixels x NB output
// channels, held in MR x 2 vector registers across the whole reduction, then stored once with bias, residual and
// ReLU applied.
//
// A conv is a GEMM in disguise: out[pixel, o] = bias[o] + sum over r of tap(pixel, r) * weight[o, r], with
// r = (kh, kw, ci). Activations are HWC, so for one pixel and one kernel row kh the taps (kw, ci) are one
// contiguous run of k * cin floats in the (zero-padded) input; the weights are packed at load into panels of NB
// output channels, [cout / NB][k * k * cin][NB] (pack.cpp), so one step of the reduction reads NB consecutive
// floats (two vector registers), broadcasts one input float per pixel and does 2 MR fused multiply-adds.
//
// Written once over a vector-traits type V: V::reg, V::kWidth floats per register (NB = 2 kWidth), V::kTileM
// pixels per tile (MR), and load/store/bcast/fma/add/max/zero; each kernels_<isa>.cpp instantiates it with its
// own traits. The loops over the tile are fully unrolled, so c[MR][2] is MR x 2 registers, never memory (checked
// with objdump: no stack access in the reduction loop; README.md). Everything is in an anonymous namespace and
// calls nothing from the standard library, so a copy compiled with other instruction-set flags can never be merged
// with this one at link time (as identical inline templates such as std::min otherwise may be).
#pragma once
#include <cstddef>

namespace {

inline int min_int(int a, int b) { return a < b ? a : b; }

// One tile: count (1 .. MR) output pixels x NB output channels, over the whole reduction.
// px[p]: the first input tap of pixel p; rs: floats from one input row to the next; run = k * cin; w: the panel,
// [k][run][NB]; po[p]: the offset of pixel p's first output channel of this panel in out (and in residual).
template <class V>
inline void micro_tile(const float* const* px, int k, size_t rs, int run, const float* w, const float* bias,
                       float* out, const float* residual, const size_t* po, int count, bool relu) {
  using R = typename V::reg;
  constexpr int W = V::kWidth, MR = V::kTileM;
  const R b0 = V::load(bias), b1 = V::load(bias + W);
  R c[MR][2];  // the accumulators start at the folded bias
#pragma GCC unroll 16
  for (int p = 0; p < MR; p++) c[p][0] = b0, c[p][1] = b1;
  for (int kh = 0; kh < k; kh++) {
    const float* x[MR];
#pragma GCC unroll 16
    for (int p = 0; p < MR; p++) x[p] = px[p] + kh * rs;
    const float* wk = w + static_cast<size_t>(kh) * run * 2 * W;
    for (int j = 0; j < run; j++, wk += 2 * W) {
      const R w0 = V::load(wk), w1 = V::load(wk + W);
#pragma GCC unroll 16
      for (int p = 0; p < MR; p++) {
        const R a = V::bcast(x[p] + j);
        c[p][0] = V::fma(a, w0, c[p][0]);
        c[p][1] = V::fma(a, w1, c[p][1]);
      }
    }
  }
  // The epilogue: + residual, ReLU, one store per register. Pixels past `count` were computed on a repeated
  // pointer and are dropped here.
#pragma GCC unroll 16
  for (int p = 0; p < MR; p++) {
    if (p >= count) break;
    R r0 = c[p][0], r1 = c[p][1];
    if (residual) {
      r0 = V::add(r0, V::load(residual + po[p]));
      r1 = V::add(r1, V::load(residual + po[p] + W));
    }
    if (relu) {
      r0 = V::max(r0, V::zero());
      r1 = V::max(r1, V::zero());
    }
    V::store(out + po[p], r0);
    V::store(out + po[p] + W, r1);
  }
}

}  // namespace
