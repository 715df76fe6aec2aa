// kernels_avx2.cpp — the AVX2 instantiation of the conv kernels (microkernel.h, conv_task.h): vector traits for
// 8-lane ymm registers, and the kernel table the model runs.
//
// Without VNNI, a quad of u8 x s8 products is taken in two passes, the even bytes of each 32-bit lane and then the
// odd ones, each widened to 16 bits (u8 zero-extended, s8 sign-extended) and multiplied-and-paired by vpmaddwd into
// int32: exact. A panel is 16 output channels (2 ymm of int32) and a tile 5 pixels: 10 accumulators, plus the two
// weight registers, the broadcast, the byte mask and a product, 15 of the 16 ymm registers (at 6 pixels no register
// is left for the product, and the accumulators go to the stack: objdump).
#include <immintrin.h>

#include "conv_fused.h"
#include "conv_task.h"
#include "microkernel.h"

namespace {

struct Avx2 {
  using ireg = __m256i;
  using freg = __m256;
  static constexpr int kWidth = 8;  // int32 lanes: output channels per register
  static constexpr int kTileM = 5;
  static constexpr int kSplit = 2;  // two vpmaddwd passes per quad
  static ireg izero() { return _mm256_setzero_si256(); }
  // pass h of a quad: weight bytes 0 and 2 (h = 0) or 1 and 3 (h = 1) of each lane, sign-extended to 16 bits
  static ireg wload(const std::int8_t* p, int h) {
    const ireg v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return h == 0 ? _mm256_srai_epi16(_mm256_slli_epi16(v, 8), 8) : _mm256_srai_epi16(v, 8);
  }
  // the pixel's quad in every lane, its bytes 0 and 2 (h = 0) or 1 and 3 (h = 1), zero-extended to 16 bits
  static ireg bcast(const std::uint8_t* p, int h) {
    const ireg v = _mm256_set1_epi32(load_quad(p));
    return h == 0 ? _mm256_and_si256(v, _mm256_set1_epi16(0x00FF)) : _mm256_srli_epi16(v, 8);
  }
  static ireg dot(ireg c, ireg a, ireg w) { return _mm256_add_epi32(c, _mm256_madd_epi16(a, w)); }
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
};

}  // namespace

ConvKernels conv_kernels_avx2() { return {"avx2", 2 * Avx2::kWidth, Avx2::kTileM, &conv_task<Avx2>}; }
