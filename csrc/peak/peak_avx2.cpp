// peak_avx2.cpp — the AVX2 peak kernels (compiled with -mavx2 -mfma): fp32 FMA, the exact int8 path's vpmaddwd +
// vpaddd pair (16-bit products summed in pairs into 32-bit lanes), and the 7-bit int8 path's vpmaddubsw + vpmaddwd +
// vpaddd triple (u8 x s8 products paired into 16 bits, then the pairs into 32-bit lanes).
#include <immintrin.h>

#include "loop.h"

namespace peak {
namespace {

struct FmaAvx2 {
  using reg = __m256;
  static reg init(int i) { return _mm256_set1_ps(static_cast<float>(i)); }
  static reg operand_a() { return _mm256_set1_ps(0.999999f); }
  static reg operand_b() { return _mm256_set1_ps(1e-7f); }
  static reg step(reg acc, reg a, reg b) { return _mm256_fmadd_ps(acc, a, b); }
  static reg combine(reg x, reg y) { return _mm256_add_ps(x, y); }
  static float first(reg x) { return _mm256_cvtss_f32(x); }
};

struct MaddwdAvx2 {
  using reg = __m256i;
  static reg init(int i) { return _mm256_set1_epi32(i); }
  static reg operand_a() { return _mm256_set1_epi16(3); }
  static reg operand_b() { return _mm256_set1_epi16(-2); }
  // The pair as the int8 kernels run it: a product of two operands that do not depend on the accumulator, added
  // into it. Written in assembly: as intrinsics the loop-invariant product would be hoisted out of the loop (and
  // GCC's register allocation of the pair spills accumulators to the stack).
  static reg step(reg acc, reg a, reg b) {
    reg t;
    asm("vpmaddwd %[b], %[a], %[t]\n\tvpaddd %[t], %[acc], %[acc]" : [acc] "+x"(acc), [t] "=&x"(t) : [a] "x"(a), [b] "x"(b));
    return acc;
  }
  static reg combine(reg x, reg y) { return _mm256_add_epi32(x, y); }
  static float first(reg x) { return static_cast<float>(_mm256_cvtsi256_si32(x)); }
};

struct MaddubswAvx2 {
  using reg = __m256i;
  static reg init(int i) { return _mm256_set1_epi32(i); }
  static reg operand_a() { return _mm256_set1_epi8(3); }
  static reg operand_b() { return _mm256_set1_epi8(-2); }
  // The triple as the 7-bit int8 kernels run it, in assembly for the reason given for the pair above.
  static reg step(reg acc, reg a, reg b) {
    reg t;
    const reg ones = _mm256_set1_epi16(1);
    asm("vpmaddubsw %[b], %[a], %[t]\n\tvpmaddwd %[ones], %[t], %[t]\n\tvpaddd %[t], %[acc], %[acc]"
        : [acc] "+x"(acc), [t] "=&x"(t)
        : [a] "x"(a), [b] "x"(b), [ones] "x"(ones));
    return acc;
  }
  static reg combine(reg x, reg y) { return _mm256_add_epi32(x, y); }
  static float first(reg x) { return static_cast<float>(_mm256_cvtsi256_si32(x)); }
};

}  // namespace

float fma_avx2(long iters) { return loop<FmaAvx2>(iters); }
float maddwd_avx2(long iters) { return loop<MaddwdAvx2>(iters); }
float maddubsw_avx2(long iters) { return loop<MaddubswAvx2>(iters); }

}  // namespace peak
