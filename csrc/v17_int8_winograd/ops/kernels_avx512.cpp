// kernels_avx512.cpp — the AVX-512 instantiation of the conv kernels (microkernel.h, conv_task.h): vector traits for
// 16-lane zmm registers.
//
// Compiled with -mavx512f -mavx512bw (CMakeLists.txt); the model calls into it only when CPUID reports AVX-512F and
// BW (dispatch.cpp), so the module still loads and runs on AVX2-only CPUs. The template code is the
// AVX2 path's; only these traits differ. A panel is 32 output channels (2 zmm) and a tile 7 pixels: 14 zmm
// accumulators. The 32 zmm registers would hold 14 pixels (28 accumulators), but on Zen 4 that measured slower
// than 7 (README.md): 14 input pointers outgrow the general-purpose registers and are reloaded at every step, and
// Zen 4 runs a zmm FMA as two 256-bit halves, so a larger tile buys no FMA throughput. Every ResNet-50 output plane
// (112^2, 56^2, 28^2, 14^2, 7^2 pixels) is a multiple of 7, so no tile is ever short.
// The traits are AVX2's vpmaddubsw scheme on 7-bit weights (kernels_avx2.cpp) on zmm registers (vpmaddubsw and
// vpmaddwd on zmm are AVX-512BW), for CPUs without AVX512_VNNI; the store is epilogue_avx512.h's, which the VNNI path
// shares. The Winograd passes (winograd.h) are instantiated here too: their GEMMs multiply int16 pairs by vpmaddwd.
#include <immintrin.h>

#include "conv_fused.h"
#include "conv_task.h"
#include "epilogue_avx512.h"
#include "microkernel.h"
#include "winograd.h"

namespace {

struct Avx512 : Avx512Epilogue {  // cvt, the loads and stores, the fp32 ops: epilogue_avx512.h
  using ireg = __m512i;
  static constexpr int kWidth = 16;
  static constexpr int kTileM = 7;
  static constexpr int kWeightMax = 63;  // 7-bit weights: vpmaddubsw's pairs cannot saturate
  static ireg izero() { return _mm512_setzero_si512(); }
  static ireg wload(const std::int8_t* p) { return _mm512_loadu_si512(p); }
  static ireg bcast(const std::uint8_t* p) { return _mm512_set1_epi32(load_quad(p)); }
  static ireg dot(ireg c, ireg a, ireg w) {
    return _mm512_add_epi32(c, _mm512_madd_epi16(_mm512_maddubs_epi16(a, w), _mm512_set1_epi16(1)));
  }
  // the Winograd GEMMs: int16 pairs into int32 (vpmaddwd), added to c
  static ireg dot16(ireg c, ireg a, ireg w) { return _mm512_add_epi32(c, _mm512_madd_epi16(a, w)); }
};

}  // namespace

ConvKernels conv_kernels_avx512() {
  return {"avx512", 2 * Avx512::kWidth, Avx512::kTileM, Avx512::kWeightMax, &conv_task<Avx512>,
          &wino_input_task<Avx512>, &wino_task<Avx512>,
          256};
}
