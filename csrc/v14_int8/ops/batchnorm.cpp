// batchnorm.cpp — inference-mode BatchNorm on an HWC activation, with the running statistics.
//
// v1_origin: the formula as written, a square root and a division per element. (Folding BatchNorm into the
// preceding conv's weights removes this op altogether; a later stage does that.)
#include <cmath>

#include "ops.h"

void batchnorm(const float* in, Shape s, const float* mean, const float* var, const float* gamma,
               const float* beta, float eps, float* out) {
  const size_t pixels = static_cast<size_t>(s.h) * s.w;
  for (size_t px = 0; px < pixels; px++) {
    for (int c = 0; c < s.c; c++) {
      const size_t i = px * s.c + c;
      out[i] = (in[i] - mean[c]) / std::sqrt(var[c] + eps) * gamma[c] + beta[c];
    }
  }
}
