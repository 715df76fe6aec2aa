// peak.cpp — pyresnet._peak: the peak rate of each dot-product instruction the stages use, measured on this
// machine, for the "% of peak" of `pyresnet bench` (each row against the instruction its own path multiplies with).
//
// The kernels (loop.h, one loop over each instruction's traits) live in one file per instruction set, compiled
// with that set's flags; this file is compiled for plain x86-64 and calls a kernel only after CPUID says the CPU
// has its instructions, so the module loads and runs on any x86-64 CPU. Each of `threads` threads runs the loop for
// the same number of iterations; the rate counts 2 operations (a multiply and an add) per multiply-accumulate, the
// unit the network's GFLOP count uses, so an int8 or bf16 row's GOP/s divides by its own instruction's figure.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "loop.h"

namespace py = pybind11;

namespace {

struct Kernel {
  const char* name;
  float (*run)(long);
  int macs_per_iteration;  // kAcc steps of the instruction, each this many multiply-accumulates
  const char* what;
  bool (*available)();
};

bool has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
bool has_avx512() { return __builtin_cpu_supports("avx512f"); }
bool has_avx512bw() { return has_avx512() && __builtin_cpu_supports("avx512bw"); }
bool has_bf16() { return has_avx512() && __builtin_cpu_supports("avx512bf16"); }
bool has_vnni() { return has_avx512() && __builtin_cpu_supports("avx512vnni"); }

const Kernel kKernels[] = {
    {"fma_avx2", peak::fma_avx2, 8 * peak::kAcc, "fp32 FMA, ymm (vfmadd231ps)", has_avx2},
    {"fma_avx512", peak::fma_avx512, 16 * peak::kAcc, "fp32 FMA, zmm (vfmadd231ps)", has_avx512},
    {"dpbf16ps_avx512", peak::dpbf16_avx512, 32 * peak::kAcc, "bf16 pairs into fp32, zmm (vdpbf16ps)", has_bf16},
    {"dpbusd_avx512", peak::dpbusd_avx512, 64 * peak::kAcc, "u8 x s8 quads into int32, zmm (vpdpbusd)", has_vnni},
    {"maddwd_avx2", peak::maddwd_avx2, 16 * peak::kAcc, "int16 pairs into int32, ymm (vpmaddwd + vpaddd)", has_avx2},
    {"maddwd_avx512", peak::maddwd_avx512, 32 * peak::kAcc, "int16 pairs into int32, zmm (vpmaddwd + vpaddd)",
     has_avx512bw},
    {"maddubsw_avx2", peak::maddubsw_avx2, 32 * peak::kAcc,
     "u8 x s8 pairs into int16, then into int32, ymm (vpmaddubsw + vpmaddwd + vpaddd)", has_avx2},
    {"maddubsw_avx512", peak::maddubsw_avx512, 64 * peak::kAcc,
     "u8 x s8 pairs into int16, then into int32, zmm (vpmaddubsw + vpmaddwd + vpaddd)", has_avx512bw},
};

const Kernel& find(const std::string& name) {
  for (const Kernel& k : kKernels)
    if (name == k.name) {
      if (!k.available()) throw py::value_error("this CPU has no instructions for the '" + name + "' kernel");
      return k;
    }
  throw py::value_error("no peak kernel named '" + name + "'");
}

// Runs `threads` copies of a kernel at once; returns GOP/s (2 per multiply-accumulate) for all of them together.
double measure(const std::string& name, int threads, long iters) {
  const Kernel& k = find(name);
  if (threads < 1 || threads > 1024) throw py::value_error("threads must be between 1 and 1024");
  if (iters < 1) throw py::value_error("iters must be >= 1");
  std::vector<std::thread> pool;
  std::vector<float> sink(threads);
  py::gil_scoped_release nogil;
  const auto t0 = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; t++) pool.emplace_back([&, t] { sink[t] = k.run(iters); });
  for (auto& th : pool) th.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 2.0 * k.macs_per_iteration * static_cast<double>(iters) * threads / s / 1e9;
}

}  // namespace

PYBIND11_MODULE(_peak, m) {
  m.doc() = "peak rate of each dot-product instruction the stages use, measured with register-resident loops";
  m.def("has_avx2", &has_avx2);
  m.def("has_avx512", &has_avx512);
  m.def("kernels", [] {
    std::vector<std::pair<std::string, std::string>> out;
    for (const Kernel& k : kKernels)
      if (k.available()) out.emplace_back(k.name, k.what);
    return out;
  }, "(name, what it measures) of every kernel this CPU can run, in a fixed order");
  m.def("gops", &measure, py::arg("kernel"), py::arg("threads"), py::arg("iters") = 100000000L,
        "GOP/s (2 per multiply-accumulate) of `threads` concurrent loops of `iters` iterations of one kernel");
}
