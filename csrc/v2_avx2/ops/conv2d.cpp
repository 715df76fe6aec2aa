// conv2d.cpp — direct convolution, HWC in, OHWI weights, HWC out.
//
// The multiply-accumulate loop is written with AVX2 intrinsics: 8 floats per __m256 register and one fused
// multiply-add (_mm256_fmadd_ps) per 8 products. The loops run over output channel, output row, output column and
// kernel row, with the padding handled by clipping the kernel window; the two innermost loops of the plain nest,
// kernel column and input channel, are one. In HWC with OHWI weights the taps of one kernel row that fall inside
// the image,
//     input   x[h0 + kh, w0 + kw_begin .. w0 + kw_end - 1, 0 .. C - 1]
//     weight  w[co, kh, kw_begin .. kw_end - 1, 0 .. C - 1]
// are each ONE contiguous run of (kw_end - kw_begin) * C floats, so we walk that run 8 floats at a time. Even the
// first conv, with its 3 input channels, gets full vectors that way (7 taps x 3 channels = 21 floats per row: two
// vectors and a tail of 5). What is left when a run is not a multiple of 8 goes through a scalar tail; nothing is
// ever read past the end of a run.
//
// The accumulators stay in registers across the whole window, every kh, kw and ci of one output value, and their
// lanes are added together once per output value, not once per vector. There are four vector accumulators (plus a
// scalar one for the tails) because a fused multiply-add needs about 4 cycles before its result can feed the next
// one: with a single accumulator every FMA waits for the previous one, whereas four independent chains keep
// several FMAs in flight (measured: with one accumulator, these intrinsics gain little over the plain scalar loop
// built with the same flags, which gcc vectorises by itself). Runs shorter than 32 floats use acc0 only.
#include <immintrin.h>

#include <algorithm>

#include "ops.h"

namespace {

// The sum of the 8 lanes of v: 8 -> 4 -> 2 -> 1.
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace

void conv2d(const float* in, Shape s, const float* weight, ConvParams p, float* out) {
  const Shape o = conv2d_shape(s, p);
  const int K = p.kernel;
  for (int co = 0; co < p.cout; co++) {
    const float* wco = weight + static_cast<size_t>(co) * K * K * s.c;
    for (int ho = 0; ho < o.h; ho++) {
      const int h0 = ho * p.stride - p.pad;  // top-left input row of this window (may be in the padding)
      // clip the window so we never read the padding: padded taps contribute 0
      const int kh_begin = std::max(0, -h0), kh_end = std::min(K, s.h - h0);
      for (int wo = 0; wo < o.w; wo++) {
        const int w0 = wo * p.stride - p.pad;
        const int kw_begin = std::max(0, -w0), kw_end = std::min(K, s.w - w0);
        const int run = (kw_end - kw_begin) * s.c;  // contiguous floats per kernel row, in input and weight alike
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(),
               acc3 = _mm256_setzero_ps();
        float tail = 0.0f;
        for (int kh = kh_begin; kh < kh_end; kh++) {
          const float* x = in + (static_cast<size_t>(h0 + kh) * s.w + (w0 + kw_begin)) * s.c;
          const float* w = wco + (static_cast<size_t>(kh) * K + kw_begin) * s.c;
          int i = 0;
          for (; i + 32 <= run; i += 32) {  // 32 floats: one vector for each accumulator
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(w + i), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(w + i + 8), acc1);
            acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(w + i + 16), acc2);
            acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(w + i + 24), acc3);
          }
          for (; i + 8 <= run; i += 8)  // what is left of the run, 8 floats at a time
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(w + i), acc0);
          for (; i < run; i++) tail += x[i] * w[i];  // the last run % 8 floats, one at a time
        }
        const __m256 acc = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
        out[(static_cast<size_t>(ho) * o.w + wo) * o.c + co] = hsum(acc) + tail;
      }
    }
  }
}
