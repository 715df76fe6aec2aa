// dispatch.cpp — which instruction set's kernels a model (or the conv_fused op) runs: the CPU's best, or the one
// asked for.
//
// Built for AVX2 like the rest of the module: only kernels_avx512.cpp has AVX-512 code, and it is reached only
// through conv_kernels_avx512(), which is called only when CPUID reports AVX-512F.
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "conv_fused.h"

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}

ConvKernels conv_kernels(std::string isa) {
  if (isa.empty()) {
    const char* env = std::getenv("PYRESNET_ISA");
    isa = env && *env ? env : "auto";
  }
  if (isa == "avx2") return conv_kernels_avx2();
  if (isa == "avx512") {
    if (!cpu_has_avx512()) throw std::invalid_argument("isa 'avx512' asked for, but this CPU has no AVX-512F");
    return conv_kernels_avx512();
  }
  if (isa == "auto") return cpu_has_avx512() ? conv_kernels_avx512() : conv_kernels_avx2();
  throw std::invalid_argument("isa must be 'avx2', 'avx512' or 'auto', got '" + isa + "'");
}
