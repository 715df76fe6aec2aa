// conv_fused_avx512.cpp — v7_fused (new): the AVX-512 instantiation of the fused conv kernels (conv_fused.h).
//
// The only file of this version compiled with -mavx512f (CMakeLists.txt). The model calls into it only when CPUID
// reports AVX-512F (cpu_has_avx512()), so the module still loads and runs on AVX2-only CPUs. 16 floats per
// register: a panel is 32 output channels, a tile 6 x 2 zmm accumulators; the template code is the AVX2 path's.
//
// v8_winograd: the AVX-512 traits gain sub and set1 (the Winograd transforms' adds and constants), and the
// kernels of ops/winograd.h are instantiated here too.
#include <immintrin.h>

#include "conv_fused.h"
#include "winograd.h"

namespace {

struct Avx512 {
  using reg = __m512;
  static constexpr int kWidth = 16;
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static reg bcast(const float* p) { return _mm512_set1_ps(*p); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg set1(float a) { return _mm512_set1_ps(a); }
  // The zero-masked form: GCC 12's _mm512_max_ps passes _mm512_undefined_ps() as the unused source and then
  // warns (-Wmaybe-uninitialized) about its own header; with every lane selected the result is the same.
  static reg max(reg a, reg b) { return _mm512_maskz_max_ps(static_cast<__mmask16>(0xFFFF), a, b); }
  static reg zero() { return _mm512_setzero_ps(); }
};

}  // namespace

ConvKernels conv_kernels_avx512() {
  return {Isa::kAvx512, 2 * Avx512::kWidth, &conv_task<Avx512>, &wino_input<Avx512>, &wino_gemm_task<Avx512>,
          &wino_output<Avx512>};
}
