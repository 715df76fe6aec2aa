// kernels_avx2.cpp — the AVX2 instantiation of the conv kernels (microkernel.h, conv_task.h): vector traits for
// 8-lane ymm registers, and the kernel table the model runs (the direct conv and the two Winograd passes).
//
// Without VNNI, a quad of u8 x s8 products is taken by vpmaddubsw, which multiplies the bytes and adds each pair of
// products into a 16-bit lane with saturation, then by vpmaddwd against ones, which adds the two pairs of a quad into
// the 32-bit lane. The weights are 7-bit (-64 .. 63), so a pair is at most 2 x 255 x 64 = 32640 in magnitude and
// nothing saturates (ConvKernels::weight_max). A panel is 16 output channels (2 ymm of int32) and a tile 5 pixels:
// 10 accumulators, plus the two weight registers, the broadcast, the ones and a product, 15 of the 16 ymm
// registers.
#include <immintrin.h>

#include "conv_fused.h"
#include "conv_task.h"
#include "microkernel.h"
#include "winograd.h"

namespace {

struct Avx2 {
  using ireg = __m256i;
  using freg = __m256;
  static constexpr int kWidth = 8;  // int32 lanes: output channels per register
  static constexpr int kTileM = 5;
  static constexpr int kWeightMax = 63;  // 7-bit weights: vpmaddubsw's pairs cannot saturate
  static ireg izero() { return _mm256_setzero_si256(); }
  static ireg wload(const std::int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  // the pixel's quad in every lane
  static ireg bcast(const std::uint8_t* p) { return _mm256_set1_epi32(load_quad(p)); }
  // u8 x s8 pairs into int16 (vpmaddubsw), the two pairs of each lane into int32 (vpmaddwd by 1), added to c
  static ireg dot(ireg c, ireg a, ireg w) {
    return _mm256_add_epi32(c, _mm256_madd_epi16(_mm256_maddubs_epi16(a, w), _mm256_set1_epi16(1)));
  }
  static freg cvt(ireg v) { return _mm256_cvtepi32_ps(v); }
  static freg loadf(const float* p) { return _mm256_loadu_ps(p); }
  static void storef(float* p, freg v) { _mm256_storeu_ps(p, v); }
  static freg load_u8(const std::uint8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  // v in [0, 255]: rounded half to even (the default MXCSR mode), packed to 8 bytes
  static void store_u8(std::uint8_t* p, freg v) {
    const __m256i i = _mm256_cvtps_epi32(v);
    const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packus_epi16(w, w));
  }
  static freg set1(float a) { return _mm256_set1_ps(a); }
  static freg fma(freg a, freg b, freg c) { return _mm256_fmadd_ps(a, b, c); }
  static freg add(freg a, freg b) { return _mm256_add_ps(a, b); }
  static freg mul(freg a, freg b) { return _mm256_mul_ps(a, b); }
  static freg max(freg a, freg b) { return _mm256_max_ps(a, b); }
  static freg min(freg a, freg b) { return _mm256_min_ps(a, b); }
  static freg fzero() { return _mm256_setzero_ps(); }
  // the Winograd passes (winograd.h): int16 pairs into int32 (vpmaddwd), 16 uint8 widened to int16 lanes, int16
  // and int32 adds, whole-register loads and stores, the exact division of 4 S by 4
  static ireg dot16(ireg c, ireg a, ireg w) { return _mm256_add_epi32(c, _mm256_madd_epi16(a, w)); }
  static ireg load_u8_16(const std::uint8_t* p) {
    return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static ireg add16(ireg a, ireg b) { return _mm256_add_epi16(a, b); }
  static ireg sub16(ireg a, ireg b) { return _mm256_sub_epi16(a, b); }
  static ireg add32(ireg a, ireg b) { return _mm256_add_epi32(a, b); }
  static ireg sub32(ireg a, ireg b) { return _mm256_sub_epi32(a, b); }
  static ireg iload(const std::int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void istore(void* p, ireg v) { _mm256_storeu_si256(static_cast<__m256i*>(p), v); }
  static ireg srai2(ireg v) { return _mm256_srai_epi32(v, 2); }
};

}  // namespace

ConvKernels conv_kernels_avx2() {
  return {"avx2", 2 * Avx2::kWidth, Avx2::kTileM, Avx2::kWeightMax, &conv_task<Avx2>, &wino_input_task<Avx2>,
          &wino_task<Avx2>,
          128};
}
