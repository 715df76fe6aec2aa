// peak_avx512_bf16.cpp — the vdpbf16ps peak kernel (compiled with -mavx512f -mavx512bf16): per fp32 lane, two
// bf16 products added into the accumulator.
#include <immintrin.h>

#include "loop.h"

namespace peak {
namespace {

struct Dpbf16 {
  using reg = __m512;
  static reg init(int i) { return _mm512_set1_ps(static_cast<float>(i)); }
  static reg operand_a() { return _mm512_castsi512_ps(_mm512_set1_epi16(0x3c23)); }  // bf16 0.00995
  static reg operand_b() { return _mm512_castsi512_ps(_mm512_set1_epi16(0x3c23)); }
  static reg step(reg acc, reg a, reg b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }
  static reg combine(reg x, reg y) { return _mm512_add_ps(x, y); }
  static float first(reg x) {
    float out[16];  // stored, not extracted: GCC 12's extract and reduce intrinsics warn about their own temporaries
    _mm512_storeu_ps(out, x);
    return out[0];
  }
};

}  // namespace

float dpbf16_avx512(long iters) { return loop<Dpbf16>(iters); }

}  // namespace peak
