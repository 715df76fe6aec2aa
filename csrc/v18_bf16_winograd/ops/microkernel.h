// microkernel.h — the register-tiled GEMM micro-kernel every conv runs: a tile of MR output pixels x NB output
// channels, held in MR x 2 vector registers across the whole reduction, then stored once with bias, residual and
// ReLU applied.
//
// A conv is a GEMM in disguise: out[pixel, o] = bias[o] + sum over r of tap(pixel, r) * weight[o, r], with
// r = (kh, kw, ci). Activations are HWC, so for one pixel and one kernel row kh the taps (kw, ci) are one
// contiguous run of k * cin values in the (zero-padded) input; the weights are packed at load into panels of NB
// output channels (pack.cpp), so one step of the reduction reads NB channels' weights (two vector registers),
// broadcasts the input per pixel and does 2 MR multiply-adds.
//
// Written once over a vector-traits type V: V::reg, V::kWidth floats per register (NB = 2 kWidth), V::kTileM
// pixels per tile (MR), and the operations below; each kernels_<isa>.cpp instantiates it with its own traits. The
// loops over the tile are fully unrolled, so c[MR][2] is MR x 2 registers, never memory. Everything is in an
// anonymous namespace and calls nothing from the standard library, so a copy compiled with other instruction-set
// flags can never be merged with this one at link time (as identical inline templates such as std::min otherwise
// may be).
//
// Inputs, weights, residual and output are bf16; the accumulators are fp32. One step of the reduction is a PAIR of
// taps (j, j + 1): run is k * cin rounded up to even (an odd row's last pair reads the value after the row, times a
// zero weight: pack.cpp). The weights are packed [cout / NB][k * run / 2][NB][2]: per pair, each output channel's
// two weights side by side in one 32-bit lane, and the input pair (x[j], x[j + 1]) is one 32-bit broadcast, so the
// two multiply-adds of a lane are exactly what one vdpbf16ps does:
//     c += a.odd * w.odd, then c += a.even * w.even     (the order of Intel's definition of vdpbf16ps)
// V::kSplit says how a traits type does it: 1, one V::dot<0>() (vdpbf16ps, kernels_avx512_bf16.cpp); 2, two
// passes, the odd bf16 of each lane widened to fp32 (masking the low half off) and then the even one (shifting it
// left 16), each an ordinary fp32 FMA (the "emulated" paths, kernels_avx2.cpp and kernels_avx512.cpp). A product
// of two bf16 values is exact in fp32, so both compute the same sums; they differ only where vdpbf16ps flushes
// denormals to zero. The store adds bias and residual (widened) and applies ReLU in fp32, then rounds to bf16
// (round to nearest even, V::store_bf16, the rule of to_bf16() in ops.h) — or, for the GEMMs of a Winograd layer
// (winograd.h), whose sums go on into the output transform, stores them in fp32 as they are (out a float*).
#pragma once
#include <cstddef>

#include "ops.h"

namespace {

inline int min_int(int a, int b) { return a < b ? a : b; }

// The tile's store: rounded to bf16 for a bf16 output, as it is for an fp32 one.
template <class V>
inline void store_out(bf16_t* p, typename V::reg v) { V::store_bf16(p, v); }
template <class V>
inline void store_out(float* p, typename V::reg v) { V::store(p, v); }

// One tile: count (1 .. MR) output pixels x NB output channels, over the whole reduction.
// px[p]: the first input tap of pixel p; rs: values from one input row to the next; run: k * cin, even; w: the
// panel, [k][run / 2][NB][2]; po[p]: the offset of pixel p's first output channel of this panel in out (and in
// residual). Out: bf16_t, or float for a Winograd GEMM.
template <class V, class Out>
inline void micro_tile(const bf16_t* const* px, int k, size_t rs, int run, const bf16_t* w, const float* bias,
                       Out* out, const bf16_t* residual, const size_t* po, int count, bool relu) {
  using R = typename V::reg;
  using WR = typename V::wreg;
  constexpr int W = V::kWidth, MR = V::kTileM, NB = 2 * W;
  const R b0 = V::load(bias), b1 = V::load(bias + W);
  R c[MR][2];  // the accumulators start at the folded bias
#pragma GCC unroll 16
  for (int p = 0; p < MR; p++) c[p][0] = b0, c[p][1] = b1;
  for (int kh = 0; kh < k; kh++) {
    const bf16_t* x[MR];
#pragma GCC unroll 16
    for (int p = 0; p < MR; p++) x[p] = px[p] + kh * rs;
    const bf16_t* wk = w + static_cast<size_t>(kh) * run * NB;
    for (int j = 0; j < run; j += 2, wk += 2 * NB) {
      {  // the pair (vdpbf16ps), or its odd halves (emulated)
        const WR w0 = V::template wload<0>(wk), w1 = V::template wload<0>(wk + NB);
#pragma GCC unroll 16
        for (int p = 0; p < MR; p++) {
          const WR a = V::template bcast<0>(x[p] + j);
          c[p][0] = V::template dot<0>(c[p][0], a, w0);
          c[p][1] = V::template dot<0>(c[p][1], a, w1);
        }
      }
      if constexpr (V::kSplit == 2) {  // emulated: the even halves
        const WR w0 = V::template wload<1>(wk), w1 = V::template wload<1>(wk + NB);
#pragma GCC unroll 16
        for (int p = 0; p < MR; p++) {
          const WR a = V::template bcast<1>(x[p] + j);
          c[p][0] = V::template dot<1>(c[p][0], a, w0);
          c[p][1] = V::template dot<1>(c[p][1], a, w1);
        }
      }
    }
  }
  // The epilogue: + residual, ReLU in fp32, one rounding store per register. Pixels past `count` were computed on a
  // repeated pointer and are dropped here.
#pragma GCC unroll 16
  for (int p = 0; p < MR; p++) {
    if (p >= count) break;
    R r0 = c[p][0], r1 = c[p][1];
    if (residual) {
      r0 = V::add(r0, V::load_bf16(residual + po[p]));
      r1 = V::add(r1, V::load_bf16(residual + po[p] + W));
    }
    if (relu) {
      r0 = V::max(r0, V::zero());
      r1 = V::max(r1, V::zero());
    }
    store_out<V>(out + po[p], r0);
    store_out<V>(out + po[p] + W, r1);
  }
}

}  // namespace
