// peak_avx512.cpp — the AVX-512 peak kernels (compiled with -mavx512f -mavx512bw): fp32 FMA on zmm, and the
// exact int8 path's vpmaddwd + vpaddd pair on zmm.
#include <immintrin.h>

#include "loop.h"

namespace peak {
namespace {

struct FmaAvx512 {
  using reg = __m512;
  static reg init(int i) { return _mm512_set1_ps(static_cast<float>(i)); }
  static reg operand_a() { return _mm512_set1_ps(0.999999f); }
  static reg operand_b() { return _mm512_set1_ps(1e-7f); }
  static reg step(reg acc, reg a, reg b) { return _mm512_fmadd_ps(acc, a, b); }
  static reg combine(reg x, reg y) { return _mm512_add_ps(x, y); }
  static float first(reg x) {
    float out[16];  // stored, not extracted: GCC 12's extract and reduce intrinsics warn about their own temporaries
    _mm512_storeu_ps(out, x);
    return out[0];
  }
};

struct MaddwdAvx512 {
  using reg = __m512i;
  static reg init(int i) { return _mm512_set1_epi32(i); }
  static reg operand_a() { return _mm512_set1_epi16(3); }
  static reg operand_b() { return _mm512_set1_epi16(-2); }
  // The pair as the int8 kernels run it (see peak_avx2.cpp), on zmm registers.
  static reg step(reg acc, reg a, reg b) {
    reg t;
    asm("vpmaddwd %[b], %[a], %[t]\n\tvpaddd %[t], %[acc], %[acc]" : [acc] "+v"(acc), [t] "=&v"(t) : [a] "v"(a), [b] "v"(b));
    return acc;
  }
  static reg combine(reg x, reg y) { return _mm512_add_epi32(x, y); }
  static float first(reg x) {
    int out[16];
    _mm512_storeu_si512(out, x);
    return static_cast<float>(out[0]);
  }
};

struct MaddubswAvx512 {
  using reg = __m512i;
  static reg init(int i) { return _mm512_set1_epi32(i); }
  static reg operand_a() { return _mm512_set1_epi8(3); }
  static reg operand_b() { return _mm512_set1_epi8(-2); }
  // The 7-bit int8 kernels' triple (see peak_avx2.cpp), on zmm registers (AVX-512BW).
  static reg step(reg acc, reg a, reg b) {
    reg t;
    const reg ones = _mm512_set1_epi16(1);
    asm("vpmaddubsw %[b], %[a], %[t]\n\tvpmaddwd %[ones], %[t], %[t]\n\tvpaddd %[t], %[acc], %[acc]"
        : [acc] "+v"(acc), [t] "=&v"(t)
        : [a] "v"(a), [b] "v"(b), [ones] "v"(ones));
    return acc;
  }
  static reg combine(reg x, reg y) { return _mm512_add_epi32(x, y); }
  static float first(reg x) {
    int out[16];
    _mm512_storeu_si512(out, x);
    return static_cast<float>(out[0]);
  }
};

}  // namespace

float fma_avx512(long iters) { return loop<FmaAvx512>(iters); }
float maddwd_avx512(long iters) { return loop<MaddwdAvx512>(iters); }
float maddubsw_avx512(long iters) { return loop<MaddubswAvx512>(iters); }

}  // namespace peak
