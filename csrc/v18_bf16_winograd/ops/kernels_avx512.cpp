// kernels_avx512.cpp — the AVX-512 instantiation of the conv kernels (microkernel.h, conv_task.h): vector traits for
// 16-float zmm registers.
//
// One of the two files compiled with -mavx512f (CMakeLists.txt); the model calls into it only when CPUID
// reports AVX-512F (dispatch.cpp), so the module still loads and runs on AVX2-only CPUs. The template code is the
// AVX2 path's; only these traits differ. A panel is 32 output channels (2 zmm) and a tile 7 pixels: 14 zmm
// accumulators. The 32 zmm registers would hold 14 pixels (28 accumulators), but on Zen 4 that measured slower
// than 7 (README.md): 14 input pointers outgrow the general-purpose registers and are reloaded at every step, and
// Zen 4 runs a zmm FMA as two 256-bit halves, so a larger tile buys no FMA throughput. Every ResNet-50 output plane
// (112^2, 56^2, 28^2, 14^2, 7^2 pixels) is a multiple of 7, so no tile is ever short.
// The traits are bf16's "emulated" ones, for AVX-512F without AVX512_BF16: each pair of taps is two fp32 FMAs on
// values widened from bf16, odd first (kernels_avx2.cpp says how), the output rounded to bf16 in the store
// (bf16_store_avx512.h). The panel (32 channels) and tile (7 pixels) are those of kernels_avx512_bf16.cpp, so both
// read the same packed weights.
#include <immintrin.h>

#include <cstring>

#include "conv_fused.h"
#include "bf16_store_avx512.h"
#include "conv_task.h"
#include "microkernel.h"
#include "winograd.h"

namespace {

constexpr __mmask16 kAll = 0xFFFF;

struct Avx512 : Avx512Bf16Store {  // load, store(_bf16), add, sub, fma, set1, max, zero: bf16_store_avx512.h
  using reg = __m512;
  using wreg = __m512;  // a widened half of 16 pairs
  static constexpr int kWidth = 16;
  static constexpr int kTileM = 7;
  static constexpr int kSplit = 2;
  // The zero-masked forms (all lanes selected) throughout: GCC 12's unmasked AVX-512 intrinsics pass
  // _mm512_undefined_* as the unused source and then warn (-Wmaybe-uninitialized) about their own header.
  static reg hi(__m512i v) { return _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(~0xFFFF))); }
  static reg lo(__m512i v) { return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAll, v, 16)); }
  // H = 0: the odd bf16 of each pair (a lane's high half), H = 1: the even one (its low half).
  template <int H>
  static wreg wload(const bf16_t* p) {
    const __m512i v = _mm512_loadu_si512(p);
    return H == 0 ? hi(v) : lo(v);
  }
  template <int H>
  static wreg bcast(const bf16_t* p) {
    int pair;
    std::memcpy(&pair, p, 4);
    const __m512i v = _mm512_set1_epi32(pair);
    return H == 0 ? hi(v) : lo(v);
  }
  template <int H>
  static reg dot(reg c, wreg a, wreg w) { return _mm512_fmadd_ps(a, w, c); }
  static reg load_bf16(const bf16_t* p) {
    return lo(_mm512_maskz_cvtepu16_epi32(kAll, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
  }
};

}  // namespace

ConvKernels conv_kernels_avx512() {
  return {"avx512", 2 * Avx512::kWidth, Avx512::kTileM, &conv_task<Avx512>,
          &wino_input<Avx512>, &wino_gemm_task<Avx512>, &wino_output<Avx512>};
}
