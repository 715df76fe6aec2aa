// kernels_avx512_vnni.cpp — the int8 conv kernels on AVX512_VNNI: vpdpbusd (_mm512_dpbusd_epi32) multiplies the 4
// uint8 activations of a quad by the 4 int8 weights in each 32-bit lane and adds the 4 products to the lane's int32
// accumulator, exactly, in one instruction: 16 channels x 4 taps per zmm.
//
// The only file compiled with -mavx512vnni (and -mavx512f -mavx512bw, CMakeLists.txt); the model calls into it only
// when CPUID reports AVX512_VNNI (dispatch.cpp). The template code is the other paths' (microkernel.h, conv_task.h) and
// so is the store (epilogue_avx512.h); only the dot product differs: one instruction per quad, and any int8 weight (the
// vpmaddubsw paths need 7-bit ones). The Winograd passes (winograd.h) are instantiated here too, their GEMMs on
// vpdpwssd (int16 pairs into int32). A panel is 32 channels (2 zmm of int32) and a tile 7 pixels: 14 accumulators.
#include <immintrin.h>

#include "conv_fused.h"
#include "conv_task.h"
#include "epilogue_avx512.h"
#include "microkernel.h"
#include "winograd.h"

namespace {

struct Avx512Vnni : Avx512Epilogue {  // cvt, the loads and stores, the fp32 ops: epilogue_avx512.h
  using ireg = __m512i;
  static constexpr int kWidth = 16;
  static constexpr int kTileM = 7;
    static constexpr int kWeightMax = 127;  // vpdpbusd sums in int32: any int8 weight (-128 .. 127)
  static ireg izero() { return _mm512_setzero_si512(); }
  static ireg wload(const std::int8_t* p) { return _mm512_loadu_si512(p); }
  static ireg bcast(const std::uint8_t* p) { return _mm512_set1_epi32(load_quad(p)); }
  static ireg dot(ireg c, ireg a, ireg w) { return _mm512_dpbusd_epi32(c, a, w); }
  // the Winograd GEMMs: int16 pairs into int32, added to c in one instruction (vpdpwssd, no saturation)
  static ireg dot16(ireg c, ireg a, ireg w) { return _mm512_dpwssd_epi32(c, a, w); }
};

}  // namespace

ConvKernels conv_kernels_avx512_vnni() {
  return {"avx512_vnni", 2 * Avx512Vnni::kWidth, Avx512Vnni::kTileM, Avx512Vnni::kWeightMax,
          &conv_task<Avx512Vnni>, &wino_input_task<Avx512Vnni>, &wino_task<Avx512Vnni>,
          0};
}
