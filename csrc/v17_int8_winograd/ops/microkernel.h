// microkernel.h — the register-tiled GEMM micro-kernel every conv runs: a tile of MR output pixels x NB output
// channels, held in MR x 2 vector registers across the whole reduction, then stored once with bias, residual and
// ReLU applied.
//
// A conv is a GEMM in disguise: out[pixel, o] = bias[o] + sum over r of tap(pixel, r) * weight[o, r], with
// r = (kh, kw, ci). Activations are HWC, so for one pixel and one kernel row kh the taps (kw, ci) are one
// contiguous run of k * cin bytes in the (zero-padded) input; the weights are packed at load into panels of NB
// output channels, [cout / NB][k][quads][NB][4] (pack.cpp), so one step of the reduction, a quad of 4 taps, reads
// NB x 4 weight bytes (two vector registers), broadcasts one input quad per pixel and does 2 MR dot products.
//
// Written once over a vector-traits type V: V::ireg, V::kWidth 32-bit lanes per register (NB = 2 kWidth), V::kTileM
// pixels per tile (MR), and the operations below; each kernels_<isa>.cpp instantiates it with its
// own traits. The loops over the tile are fully unrolled, so c[MR][2] is MR x 2 registers, never memory (checked
// with objdump: no stack access in the reduction loop; README.md). Everything is in an anonymous namespace and
// calls nothing from the standard library, so a copy compiled with other instruction-set flags can never be merged
// with this one at link time (as identical inline templates such as std::min otherwise may be).
//
// The weights are int8 and the activations uint8; the accumulators are int32. V::dot is vpdpbusd (AVX512_VNNI: 4
// u8 x s8 products summed into each 32-bit lane, exact for any int8 weight) or vpmaddubsw then vpmaddwd by ones
// (AVX2, AVX-512BW: the products paired into int16 with saturation, then the two pairs into int32). vpmaddubsw is
// exact only when no pair passes 32767: with weights in -64 .. 63 (7 bits, V::kWeightMax = 63) a pair is at most
// 2 x 255 x 64 = 32640 in magnitude, while 8-bit weights reach 2 x 255 x 127 = 64770. Integer sums are exact, so
// for the same weights every path gives the same accumulators whatever its tile; the epilogue requantizes in the
// order FusedConv states (conv_fused.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "conv_fused.h"

namespace {

inline int min_int(int a, int b) { return a < b ? a : b; }

// One tile: count (1 .. MR) output pixels x NB output channels, over the whole reduction.
// px[p]: the first input byte of pixel p; rs: bytes from one input row to the next; quads = ceil(k * cin / 4); w: the
// panel, [k][quads][NB][4] bytes; ch: the panel's first output channel (for the layer's scale and bias); po[p]: the
// offset of pixel p's first output channel of this panel in out (and in residual), in elements of the types the
// layer says.
template <class V>
inline void micro_tile(const std::uint8_t* const* px, int k, size_t rs, int quads, const std::int8_t* w,
                       const FusedConv& l, int ch, void* out, const void* residual, const size_t* po, int count,
                       bool relu) {
  using I = typename V::ireg;
  using F = typename V::freg;
  constexpr int W = V::kWidth, MR = V::kTileM, NB = 2 * W;
  I c[MR][2];
#pragma GCC unroll 16
  for (int p = 0; p < MR; p++) c[p][0] = V::izero(), c[p][1] = V::izero();
  for (int kh = 0; kh < k; kh++) {
    const std::uint8_t* x[MR];
#pragma GCC unroll 16
    for (int p = 0; p < MR; p++) x[p] = px[p] + kh * rs;
    const std::int8_t* wk = w + static_cast<size_t>(kh) * quads * NB * 4;
    for (int j = 0; j < quads; j++, wk += NB * 4) {
      const I w0 = V::wload(wk), w1 = V::wload(wk + W * 4);
#pragma GCC unroll 16
      for (int p = 0; p < MR; p++) {
        const I a = V::bcast(x[p] + 4 * j);
        c[p][0] = V::dot(c[p][0], a, w0);
        c[p][1] = V::dot(c[p][1], a, w1);
      }
    }
  }
  // The epilogue (FusedConv): requantize, + residual, ReLU, store uint8 or fp32. Pixels past `count` are dropped.
  const F s0 = V::loadf(l.scale + ch), s1 = V::loadf(l.scale + ch + W);
  const F b0 = V::loadf(l.bias + ch), b1 = V::loadf(l.bias + ch + W);
  const F rsc = V::set1(l.res_scale), inv = V::set1(l.inv_out), top = V::set1(255.0f);
#pragma GCC unroll 16
  for (int p = 0; p < MR; p++) {
    if (p >= count) break;
    F r[2] = {V::fma(V::cvt(c[p][0]), s0, b0), V::fma(V::cvt(c[p][1]), s1, b1)};
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
      const size_t at = po[p] + h * W;
      if (residual && l.res_f32)
        r[h] = V::add(r[h], V::loadf(static_cast<const float*>(residual) + at));
      else if (residual)
        r[h] = V::fma(V::load_u8(static_cast<const std::uint8_t*>(residual) + at), rsc, r[h]);
      if (relu) r[h] = V::max(r[h], V::fzero());
      if (l.out_f32)
        V::storef(static_cast<float*>(out) + at, r[h]);
      else  // clamped before rounding: the same as rounding, then clamping, for the integer bounds 0 and 255
        V::store_u8(static_cast<std::uint8_t*>(out) + at, V::min(V::max(V::mul(r[h], inv), V::fzero()), top));
    }
  }
}

// A 32-bit load from any address (a quad of uint8 taps).
inline std::int32_t load_quad(const std::uint8_t* p) {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace
