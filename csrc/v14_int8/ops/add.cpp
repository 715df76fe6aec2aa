// add.cpp — elementwise sum, the residual connection of every bottleneck block; may run in place.
#include "ops.h"

void add(const float* a, const float* b, size_t n, float* out) {
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
