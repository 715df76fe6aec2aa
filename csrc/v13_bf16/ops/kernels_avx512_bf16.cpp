// kernels_avx512_bf16.cpp — the AVX512_BF16 instantiation of the conv kernels (microkernel.h, conv_task.h): each
// pair of taps is one vdpbf16ps (_mm512_dpbf16_ps), 16 lanes x 2 bf16 products added into fp32 accumulators.
//
// v13_bf16 (new). The only file of this version compiled with -mavx512bf16 (CMakeLists.txt); the model calls into it
// only when CPUID reports AVX512_BF16 (dispatch.cpp). The template code is the emulated paths'; only these traits
// differ: V::kSplit = 1, a pair's weights are one zmm of 16 channels x 2 bf16 loaded as they are packed, the input
// pair one 32-bit broadcast, no widening. Per step of the reduction a tile does 14 vdpbf16ps (32 multiply-adds each)
// where the fp32 kernel did 14 FMAs (16 each) per tap. The panel (32 channels), tile (7 pixels) and store are those
// of kernels_avx512.cpp, so the two read the same packed weights and round the same way.
#include <immintrin.h>

#include <cstring>

#include "conv_fused.h"
#include "conv_task.h"
#include "microkernel.h"

namespace {

constexpr __mmask16 kAll = 0xFFFF;

struct Avx512Bf16 {
  using reg = __m512;
  using wreg = __m512i;  // 16 pairs of bf16, as stored
  static constexpr int kWidth = 16;
  static constexpr int kTileM = 7;
  static constexpr int kSplit = 1;
  template <int H>
  static wreg wload(const bf16_t* p) { return _mm512_loadu_si512(p); }
  template <int H>
  static wreg bcast(const bf16_t* p) {
    int pair;
    std::memcpy(&pair, p, 4);
    return _mm512_set1_epi32(pair);
  }
  template <int H>
  static reg dot(reg c, wreg a, wreg w) { return _mm512_dpbf16_ps(c, (__m512bh)a, (__m512bh)w); }
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static reg load_bf16(const bf16_t* p) {
    return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(
        kAll, _mm512_maskz_cvtepu16_epi32(kAll, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
  }
  // The integer rounding of kernels_avx512.cpp rather than vcvtneps2bf16, which flushes denormals to zero: every
  // path rounds a given fp32 value to the same bf16 (ops.h, to_bf16()).
  static void store_bf16(bf16_t* p, reg v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_maskz_srli_epi32(kAll, u, 16), _mm512_set1_epi32(1));
    const __m512i rounded =
        _mm512_maskz_srli_epi32(kAll, _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
    const __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF)),
                                                  _mm512_set1_epi32(0x7F800000));
    const __m512i quiet = _mm512_or_si512(_mm512_maskz_srli_epi32(kAll, u, 16), _mm512_set1_epi32(0x40));
    const __m512i r = _mm512_mask_mov_epi32(rounded, nan, quiet);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_maskz_cvtepi32_epi16(kAll, r));
  }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg max(reg a, reg b) { return _mm512_maskz_max_ps(kAll, a, b); }
  static reg zero() { return _mm512_setzero_ps(); }
};

}  // namespace

ConvKernels conv_kernels_avx512_bf16() {
  return {"avx512_bf16", 2 * Avx512Bf16::kWidth, Avx512Bf16::kTileM, &conv_task<Avx512Bf16>};
}
