// conv_fused.cpp — v7_fused (new): the AVX2 instantiation of the fused conv kernels (conv_fused.h), weight
// packing, the zero-padded input copy and the CPUID check that picks the instruction set.
//
// v8_winograd: the AVX2 traits gain sub and set1 (the Winograd transforms' adds and constants), and the
// kernels of ops/winograd.h are instantiated here too.
#include "conv_fused.h"
#include "winograd.h"

#include <immintrin.h>

#include <cstring>

namespace {

// 8 floats per register: a panel is 16 output channels, a tile 6 x 2 ymm accumulators.
struct Avx2 {
  using reg = __m256;
  static constexpr int kWidth = 8;
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static reg bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg set1(float a) { return _mm256_set1_ps(a); }
  static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  static reg zero() { return _mm256_setzero_ps(); }
};

}  // namespace

ConvKernels conv_kernels_avx2() {
  return {Isa::kAvx2, 2 * Avx2::kWidth, &conv_task<Avx2>, &wino_input<Avx2>, &wino_gemm_task<Avx2>,
          &wino_output<Avx2>};
}

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}

void pack_panels(const float* ohwi, int cout, int r, int nb, float* packed) {
  for (int n = 0; n < cout; n++) {
    const float* src = ohwi + static_cast<size_t>(n) * r;
    float* dst = packed + static_cast<size_t>(n / nb) * r * nb + n % nb;
    for (int i = 0; i < r; i++) dst[static_cast<size_t>(i) * nb] = src[i];
  }
}

void pad_row(const float* in, Shape s, int pad, float* out, int row) {
  const size_t pw = static_cast<size_t>(s.w + 2 * pad) * s.c;  // floats per padded row
  float* o = out + row * pw;
  const int h = row - pad;
  if (h < 0 || h >= s.h) {
    std::memset(o, 0, pw * sizeof(float));
    return;
  }
  const size_t edge = static_cast<size_t>(pad) * s.c;
  std::memset(o, 0, edge * sizeof(float));
  std::memcpy(o + edge, in + static_cast<size_t>(h) * s.w * s.c, static_cast<size_t>(s.w) * s.c * sizeof(float));
  std::memset(o + edge + static_cast<size_t>(s.w) * s.c, 0, edge * sizeof(float));
}
