// epilogue_avx512.h — what the two AVX-512 int8 traits share: the fp32 half (converting the int32 sums to float,
// the requantisation's arithmetic and the uint8/fp32 loads and stores of the conv's store, microkernel.h), and the
// integer lane arithmetic of the Winograd transforms (winograd.h).
//
// Both AVX-512 int8 paths, the vpmaddubsw one (kernels_avx512.cpp, Avx512) and the vpdpbusd one
// (kernels_avx512_vnni.cpp, Avx512Vnni), store and transform the same way; only their dot products differ, so their
// traits inherit this. Included only by those two files, which are compiled with -mavx512f -mavx512bw; the anonymous
// namespace gives each of them its own copy, so the linker never mixes code built with different flags.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace {

struct Avx512Epilogue {
  using freg = __m512;
  static constexpr __mmask16 kAllLanes = 0xFFFF;
  // Zero-masked forms throughout: GCC 12's unmasked intrinsics pass _mm512_undefined_ps() as the unused source and
  // then warn (-Wmaybe-uninitialized) about their own header; with every lane selected the result is the same.
  static freg cvt(__m512i v) { return _mm512_maskz_cvtepi32_ps(kAllLanes, v); }
  static freg loadf(const float* p) { return _mm512_loadu_ps(p); }
  static void storef(float* p, freg v) { _mm512_storeu_ps(p, v); }
  static freg load_u8(const std::uint8_t* p) {
    return cvt(_mm512_maskz_cvtepu8_epi32(kAllLanes, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static void store_u8(std::uint8_t* p, freg v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                     _mm512_maskz_cvtepi32_epi8(kAllLanes, _mm512_maskz_cvtps_epi32(kAllLanes, v)));
  }
  static freg set1(float a) { return _mm512_set1_ps(a); }
  static freg fma(freg a, freg b, freg c) { return _mm512_fmadd_ps(a, b, c); }
  static freg add(freg a, freg b) { return _mm512_add_ps(a, b); }
  static freg mul(freg a, freg b) { return _mm512_mul_ps(a, b); }
  static freg max(freg a, freg b) { return _mm512_maskz_max_ps(kAllLanes, a, b); }
  static freg min(freg a, freg b) { return _mm512_maskz_min_ps(kAllLanes, a, b); }
  static freg fzero() { return _mm512_setzero_ps(); }
  // the Winograd transforms: 32 uint8 widened to int16 lanes, int16 and int32 adds, whole-register loads and
  // stores, and the exact division of 4 S by 4
  static __m512i load_u8_16(const std::uint8_t* p) {
    return _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static __m512i add16(__m512i a, __m512i b) { return _mm512_add_epi16(a, b); }
  static __m512i sub16(__m512i a, __m512i b) { return _mm512_sub_epi16(a, b); }
  static __m512i add32(__m512i a, __m512i b) { return _mm512_add_epi32(a, b); }
  static __m512i sub32(__m512i a, __m512i b) { return _mm512_sub_epi32(a, b); }
  static __m512i iload(const std::int32_t* p) { return _mm512_loadu_si512(p); }
  static void istore(void* p, __m512i v) { _mm512_storeu_si512(p, v); }
  static __m512i srai2(__m512i v) { return _mm512_maskz_srai_epi32(kAllLanes, v, 2); }
};

}  // namespace
