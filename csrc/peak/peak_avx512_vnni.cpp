// peak_avx512_vnni.cpp — the vpdpbusd peak kernel (compiled with -mavx512f -mavx512vnni): per 32-bit lane, four
// uint8 x int8 products added into the accumulator.
#include <immintrin.h>

#include "loop.h"

namespace peak {
namespace {

struct Dpbusd {
  using reg = __m512i;
  static reg init(int i) { return _mm512_set1_epi32(i); }
  static reg operand_a() { return _mm512_set1_epi8(static_cast<char>(200)); }
  static reg operand_b() { return _mm512_set1_epi8(-3); }
  static reg step(reg acc, reg a, reg b) { return _mm512_dpbusd_epi32(acc, a, b); }
  static reg combine(reg x, reg y) { return _mm512_add_epi32(x, y); }
  static float first(reg x) {
    int out[16];  // stored, not extracted: GCC 12's extract and reduce intrinsics warn about their own temporaries
    _mm512_storeu_si512(out, x);
    return static_cast<float>(out[0]);
  }
};

}  // namespace

float dpbusd_avx512(long iters) { return loop<Dpbusd>(iters); }

}  // namespace peak
