// bf16_store_avx512.h — the conv store of the AVX-512 bf16 traits: fp32 results rounded to bf16 (nearest even, a NaN
// kept a NaN) with integer operations, the fp32 store of a Winograd GEMM, and the fp32 arithmetic of the epilogue and
// of the Winograd transforms (winograd.h).
//
// Both AVX-512 bf16 paths, the emulated one (kernels_avx512.cpp) and the vdpbf16ps one
// (kernels_avx512_bf16.cpp), must round a given fp32 value to the same bf16 (ops.h, to_bf16()), so both inherit this
// rather than the second using vcvtneps2bf16, which flushes denormals to zero. Included only by those two files,
// both built with -mavx512f; the anonymous namespace gives each its own copy, so the linker never mixes code built
// with different flags.
#pragma once

#include <immintrin.h>

#include "ops.h"

namespace {

struct Avx512Bf16Store {
  using reg = __m512;
  static constexpr __mmask16 kAllLanes = 0xFFFF;
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static void store_bf16(bf16_t* p, reg v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_maskz_srli_epi32(kAllLanes, u, 16), _mm512_set1_epi32(1));
    const __m512i rounded = _mm512_maskz_srli_epi32(
        kAllLanes, _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
    const __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF)),
                                                  _mm512_set1_epi32(0x7F800000));
    const __m512i quiet = _mm512_or_si512(_mm512_maskz_srli_epi32(kAllLanes, u, 16), _mm512_set1_epi32(0x40));
    const __m512i r = _mm512_mask_mov_epi32(rounded, nan, quiet);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_maskz_cvtepi32_epi16(kAllLanes, r));
  }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg set1(float a) { return _mm512_set1_ps(a); }
  // zero-masked: GCC 12's _mm512_max_ps passes _mm512_undefined_ps() and then warns about its own header
  static reg max(reg a, reg b) { return _mm512_maskz_max_ps(kAllLanes, a, b); }
  static reg zero() { return _mm512_setzero_ps(); }
};

}  // namespace
