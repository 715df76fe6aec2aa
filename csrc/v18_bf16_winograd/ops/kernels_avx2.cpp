// kernels_avx2.cpp — the AVX2 instantiation of the conv kernels (microkernel.h, conv_task.h): vector traits for
// 8-float ymm registers, and the kernel table the model runs.
//
// A panel is 16 output channels (2 ymm) and a tile 6 pixels: 12 ymm accumulators, plus the two weight vectors and
// the broadcast input, 15 of the 16 ymm registers.
// The traits are bf16's "emulated" ones: no bf16 instruction, so each pair of taps is two fp32 FMAs on values
// widened from bf16 (the odd bf16 of a 32-bit lane by masking its low half off, the even one by a shift left 16),
// odd first, as vdpbf16ps adds them; load_bf16/store_bf16 widen the residual and round the output to bf16 (round to
// nearest even, NaN kept a NaN: the rule of to_bf16() in ops.h). Correct on every AVX2 CPU, and the same template
// code as the AVX-512 paths, so an AVX2 run tests their logic. store, sub, fma and set1 are the Winograd passes'
// (winograd.h), instantiated here too.
#include <immintrin.h>

#include <cstring>

#include "conv_fused.h"
#include "conv_task.h"
#include "microkernel.h"
#include "winograd.h"

namespace {

struct Avx2 {
  using reg = __m256;
  using wreg = __m256;  // a widened half of 8 pairs
  static constexpr int kWidth = 8;
  static constexpr int kTileM = 6;
  static constexpr int kSplit = 2;
  static reg hi(__m256i v) { return _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(~0xFFFF))); }
  static reg lo(__m256i v) { return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)); }
  // H = 0: the odd bf16 of each pair (a lane's high half), H = 1: the even one (its low half).
  template <int H>
  static wreg wload(const bf16_t* p) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return H == 0 ? hi(v) : lo(v);
  }
  template <int H>
  static wreg bcast(const bf16_t* p) {
    int pair;
    std::memcpy(&pair, p, 4);
    const __m256i v = _mm256_set1_epi32(pair);
    return H == 0 ? hi(v) : lo(v);
  }
  template <int H>
  static reg dot(reg c, wreg a, wreg w) { return _mm256_fmadd_ps(a, w, c); }
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static reg load_bf16(const bf16_t* p) {
    return lo(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static void store_bf16(bf16_t* p, reg v) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i rounded =
        _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))), 16);
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7FFFFFFF)),
                                           _mm256_set1_epi32(0x7F800000));
    const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    const __m256i r = _mm256_blendv_epi8(rounded, quiet, nan);  // 8 values of 16 bits in 32-bit lanes
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                     _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)));
  }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg set1(float a) { return _mm256_set1_ps(a); }
  static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  static reg zero() { return _mm256_setzero_ps(); }
};

}  // namespace

ConvKernels conv_kernels_avx2() {
  return {"avx2", 2 * Avx2::kWidth, Avx2::kTileM, &conv_task<Avx2>,
          &wino_input<Avx2>, &wino_gemm_task<Avx2>, &wino_output<Avx2>};
}
