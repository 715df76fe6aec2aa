// loop.h — the one peak loop of pyresnet._peak, written once over an instruction's traits.
//
// A traits struct I names a register type (I::reg), how to fill the accumulators and the operands (I::init,
// I::operand_a, I::operand_b), one step of the instruction under test (I::step: acc = the instruction applied to
// acc and the operands), how to sum two accumulators and read one lane (I::combine, I::first). The loop keeps kAcc
// independent accumulators in registers, more than latency x pipes of any current x86 core needs, so it is bound
// by the instruction's throughput alone; each step depends on its own accumulator only, so the compiler can
// neither hoist nor merge steps. Each instruction set's file (peak_avx2.cpp, peak_avx512*.cpp) includes this
// header and is compiled with that set's flags; peak.cpp calls a kernel only after CPUID says the CPU has it.
#pragma once

namespace peak {

constexpr int kAcc = 10;  // AVX2 has 16 ymm registers: 10 accumulators, the operands and the temporaries fit

template <class I>
float loop(long iters) {
  typename I::reg acc[kAcc];
  for (int i = 0; i < kAcc; i++) acc[i] = I::init(i);
  const typename I::reg a = I::operand_a(), b = I::operand_b();
  for (long n = 0; n < iters; n++) {
#pragma GCC unroll 10  // fully unrolled, so acc[] lives in registers rather than on the stack
    for (int i = 0; i < kAcc; i++) acc[i] = I::step(acc[i], a, b);
  }
  for (int i = 1; i < kAcc; i++) acc[0] = I::combine(acc[0], acc[i]);
  return I::first(acc[0]);  // returned so the compiler cannot drop the loop
}

// The kernels, one per instruction and register width: each runs `iters` iterations of kAcc steps and returns a
// value derived from every accumulator. Defined in the file of its instruction set.
float fma_avx2(long iters);       // vfmadd231ps ymm: 8 multiply-adds per step
float maddwd_avx2(long iters);    // vpmaddwd + vpaddd ymm (the exact int8 path): 16 per step
float fma_avx512(long iters);     // vfmadd231ps zmm: 16
float maddwd_avx512(long iters);  // vpmaddwd + vpaddd zmm (AVX-512BW): 32
float dpbf16_avx512(long iters);  // vdpbf16ps zmm (AVX512_BF16): 32
float dpbusd_avx512(long iters);  // vpdpbusd zmm (AVX512_VNNI): 64
float maddubsw_avx2(long iters);    // vpmaddubsw + vpmaddwd + vpaddd ymm (the 7-bit int8 path): 32
float maddubsw_avx512(long iters);  // vpmaddubsw + vpmaddwd + vpaddd zmm (AVX-512BW): 64

}  // namespace peak
