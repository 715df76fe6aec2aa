// peak.cpp — pyresnet._peak: this machine's fp32 FMA peak, measured, for the "% of peak" column of `pyresnet bench`.
//
// A loop of independent fused multiply-adds on registers only: 10 accumulators (AVX2: 8 floats each; AVX-512: 16),
// enough to cover the FMA latency (4-5 cycles) times the two FMA pipes of current x86 cores, so the loop is bound
// by FMA throughput and nothing else. Each thread runs the loop for the same number of iterations; GFLOP/s counts
// 2 flops per lane per FMA. The AVX-512 variant is compiled with a target attribute and only called after CPUID
// says the CPU has AVX-512F, so this module loads and runs on AVX2-only CPUs.
#include <immintrin.h>
#include <pybind11/pybind11.h>

#include <chrono>
#include <thread>
#include <vector>

namespace py = pybind11;

namespace {

constexpr int kAcc = 10;

__attribute__((target("avx2,fma"))) float fma_avx2(long iters) {
  __m256 acc[kAcc];
  for (int i = 0; i < kAcc; i++) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (long n = 0; n < iters; n++) {
#pragma GCC unroll 10  // fully unrolled, so acc[] lives in 10 registers rather than on the stack
    for (int i = 0; i < kAcc; i++) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  __m256 s = acc[0];
  for (int i = 1; i < kAcc; i++) s = _mm256_add_ps(s, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];  // returned so the compiler cannot drop the loop
}

__attribute__((target("avx512f"))) float fma_avx512(long iters) {
  __m512 acc[kAcc];
  for (int i = 0; i < kAcc; i++) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (long n = 0; n < iters; n++) {
#pragma GCC unroll 10
    for (int i = 0; i < kAcc; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < kAcc; i++) s = _mm512_add_ps(s, acc[i]);
  float out[16];  // not _mm512_reduce_add_ps: GCC 12's header warns about its own uninitialised temporary
  _mm512_storeu_ps(out, s);
  return out[0];  // returned so the compiler cannot drop the loop
}

// Runs `threads` copies of the loop at once; returns GFLOP/s for all of them together.
double measure(bool avx512, int threads, long iters) {
  if (avx512 && !__builtin_cpu_supports("avx512f")) throw py::value_error("this CPU has no AVX-512F");
  if (threads < 1) throw py::value_error("threads must be >= 1");
  std::vector<std::thread> pool;
  std::vector<float> sink(threads);
  py::gil_scoped_release nogil;
  const auto t0 = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; t++)
    pool.emplace_back([&, t] { sink[t] = avx512 ? fma_avx512(iters) : fma_avx2(iters); });
  for (auto& th : pool) th.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double lanes = avx512 ? 16 : 8;
  return 2.0 * lanes * kAcc * static_cast<double>(iters) * threads / s / 1e9;
}

}  // namespace

PYBIND11_MODULE(_peak, m) {
  m.doc() = "fp32 FMA peak of this machine, measured with register-resident FMA loops";
  m.def("has_avx2", [] { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); });
  m.def("has_avx512", [] { return static_cast<bool>(__builtin_cpu_supports("avx512f")); });
  m.def("gflops", &measure, py::arg("avx512"), py::arg("threads"), py::arg("iters") = 100000000L,
        "GFLOP/s of `threads` concurrent FMA loops of `iters` iterations each");
}
