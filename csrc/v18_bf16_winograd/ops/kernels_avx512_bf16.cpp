// kernels_avx512_bf16.cpp — the AVX512_BF16 instantiation of the conv kernels (microkernel.h, conv_task.h): each
// pair of taps is one vdpbf16ps (_mm512_dpbf16_ps), 16 lanes x 2 bf16 products added into fp32 accumulators.
//
// The only file of the module compiled with -mavx512bf16 (CMakeLists.txt); the model calls into it only when CPUID
// reports AVX512_BF16 (dispatch.cpp). The template code is the emulated paths'; only these traits differ:
// V::kSplit = 1, a pair's weights are one zmm of 16 channels x 2 bf16 loaded as they are packed, the input pair one
// 32-bit broadcast, no widening. Per step of the reduction a tile does 14 vdpbf16ps (32 multiply-adds each) where an
// fp32 FMA kernel does 14 FMAs (16 each) per tap. The panel (32 channels) and tile (7 pixels) are those of
// kernels_avx512.cpp, so the two read the same packed weights, and both store through bf16_store_avx512.h, so they
// round the same way (integer rounding, not vcvtneps2bf16, which flushes denormals to zero).
#include <immintrin.h>

#include <cstring>

#include "conv_fused.h"
#include "bf16_store_avx512.h"
#include "conv_task.h"
#include "microkernel.h"
#include "winograd.h"

namespace {

constexpr __mmask16 kAll = 0xFFFF;

struct Avx512Bf16 : Avx512Bf16Store {  // load, store(_bf16), add, sub, fma, set1, max, zero: bf16_store_avx512.h
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
  static reg load_bf16(const bf16_t* p) {
    return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(
        kAll, _mm512_maskz_cvtepu16_epi32(kAll, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
  }
};

}  // namespace

ConvKernels conv_kernels_avx512_bf16() {
  return {"avx512_bf16", 2 * Avx512Bf16::kWidth, Avx512Bf16::kTileM, &conv_task<Avx512Bf16>,
          &wino_input<Avx512Bf16>, &wino_gemm_task<Avx512Bf16>, &wino_output<Avx512Bf16>};
}
