// kernels_avx512.cpp — the AVX-512 instantiation of the conv kernels (microkernel.h, conv_task.h): vector traits for
// 16-float zmm registers.
//
// The only file of the module compiled with -mavx512f (CMakeLists.txt); the model calls into it only when CPUID
// reports AVX-512F (dispatch.cpp), so the module still loads and runs on AVX2-only CPUs. The template code is the
// AVX2 path's; only these traits differ. A panel is 32 output channels (2 zmm) and a tile 7 pixels: 14 zmm
// accumulators. The 32 zmm registers would hold 14 pixels (28 accumulators), but on Zen 4 that measured slower
// than 7 (README.md): 14 input pointers outgrow the general-purpose registers and are reloaded at every step, and
// Zen 4 runs a zmm FMA as two 256-bit halves, so a larger tile buys no FMA throughput. Every ResNet-50 output plane
// (112^2, 56^2, 28^2, 14^2, 7^2 pixels) is a multiple of 7, so no tile is ever short.
#include <immintrin.h>

#include "conv_fused.h"
#include "conv_task.h"
#include "microkernel.h"

namespace {

struct Avx512 {
  using reg = __m512;
  static constexpr int kWidth = 16;
  static constexpr int kTileM = 7;
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static reg bcast(const float* p) { return _mm512_set1_ps(*p); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  // The zero-masked form: GCC 12's _mm512_max_ps passes _mm512_undefined_ps() as the unused source and then
  // warns (-Wmaybe-uninitialized) about its own header; with every lane selected the result is the same.
  static reg max(reg a, reg b) { return _mm512_maskz_max_ps(static_cast<__mmask16>(0xFFFF), a, b); }
  static reg zero() { return _mm512_setzero_ps(); }
};

}  // namespace

ConvKernels conv_kernels_avx512() { return {"avx512", 2 * Avx512::kWidth, Avx512::kTileM, &conv_task<Avx512>}; }
