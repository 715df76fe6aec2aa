// kernels_avx2.cpp — the AVX2 instantiation of the conv kernels (microkernel.h, conv_task.h): vector traits for
// 8-float ymm registers, and the kernel table the model runs.
//
// A panel is 16 output channels (2 ymm) and a tile 6 pixels: 12 ymm accumulators, plus the two weight vectors and
// the broadcast input, 15 of the 16 ymm registers.
#include <immintrin.h>

#include "conv_fused.h"
#include "conv_task.h"
#include "microkernel.h"

namespace {

struct Avx2 {
  using reg = __m256;
  static constexpr int kWidth = 8;
  static constexpr int kTileM = 6;
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static reg bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  static reg zero() { return _mm256_setzero_ps(); }
};

}  // namespace

ConvKernels conv_kernels_avx2() { return {"avx2", 2 * Avx2::kWidth, Avx2::kTileM, &conv_task<Avx2>}; }
