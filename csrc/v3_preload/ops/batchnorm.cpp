// batchnorm.cpp — inference-mode BatchNorm on an HWC activation, with the running statistics.
//
// The formula as written, a square root and a division per element, in a pass of its own over the activation.
// (Inference BatchNorm is a per-channel affine map, so it could instead be folded into the preceding conv's
// weights and a bias.)
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
