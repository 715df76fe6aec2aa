// dispatch.cpp — which instruction set's kernels a model (or the conv_fused op) runs: the CPU's best, or the one
// asked for.
//
// Built for AVX2 like the rest of the module: only kernels_avx512.cpp has AVX-512 code, and it is reached only
// through conv_kernels_avx512(), which is called only when CPUID reports AVX-512F.
// A third path, 'avx512_bf16' (vdpbf16ps, kernels_avx512_bf16.cpp), is called only when CPUID reports AVX512_BF16
// (and the AVX-512F and BW it builds on); 'auto' takes the best of the three.
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "conv_fused.h"

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}

bool cpu_has_avx512_bf16() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512bf16");
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
  if (isa == "avx512_bf16") {
    if (!cpu_has_avx512_bf16())
      throw std::invalid_argument("isa 'avx512_bf16' asked for, but this CPU has no AVX512_BF16 (vdpbf16ps)");
    return conv_kernels_avx512_bf16();
  }
  if (isa == "auto")
    return cpu_has_avx512_bf16() ? conv_kernels_avx512_bf16()
                                 : cpu_has_avx512() ? conv_kernels_avx512() : conv_kernels_avx2();
  throw std::invalid_argument("isa must be 'avx2', 'avx512', 'avx512_bf16' or 'auto', got '" + isa + "'");
}
