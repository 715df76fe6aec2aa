// dispatch.cpp — which instruction set's kernels a model (or the conv_int8 op) runs: the CPU's best, or the one
// asked for.
//
// Built for AVX2 like the rest of the module: only kernels_avx512.cpp and kernels_avx512_vnni.cpp have AVX-512 code,
// reached only through conv_kernels_avx512() and conv_kernels_avx512_vnni(), called only when CPUID reports the
// features they need. The three paths are named after their int8 kernels: "avx2", "avx512" (needs AVX-512F and BW:
// vpmaddubsw and vpmaddwd on zmm are BW instructions) and "avx512_vnni" (vpdpbusd; needs AVX512_VNNI as well). A path
// the CPU lacks is an error naming the missing feature.
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "conv_fused.h"

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
}

bool cpu_has_avx512_vnni() { return cpu_has_avx512() && __builtin_cpu_supports("avx512vnni"); }

// The first CPU feature path `isa` needs and this CPU lacks, or nullptr.
static const char* missing(const std::string& isa) {
  __builtin_cpu_init();
  if (isa == "avx2") return nullptr;
  if (!__builtin_cpu_supports("avx512f")) return "AVX-512F";
  if (!__builtin_cpu_supports("avx512bw")) return "AVX-512BW";
  if (isa == "avx512_vnni" && !__builtin_cpu_supports("avx512vnni")) return "AVX512_VNNI";
  return nullptr;
}

ConvKernels conv_kernels(std::string isa) {
  if (isa.empty()) {
    const char* env = std::getenv("PYRESNET_ISA");
    isa = env && *env ? env : "auto";
  }
  if (isa == "auto") isa = cpu_has_avx512_vnni() ? "avx512_vnni" : cpu_has_avx512() ? "avx512" : "avx2";
  if (isa != "avx2" && isa != "avx512" && isa != "avx512_vnni")
    throw std::invalid_argument("isa must be 'avx2', 'avx512', 'avx512_vnni' or 'auto', got '" + isa + "'");
  if (const char* lack = missing(isa))
    throw std::invalid_argument("isa '" + isa + "' asked for, but this CPU has no " + lack);
  if (isa == "avx512") return conv_kernels_avx512();
  if (isa == "avx512_vnni") return conv_kernels_avx512_vnni();
  return conv_kernels_avx2();
}
