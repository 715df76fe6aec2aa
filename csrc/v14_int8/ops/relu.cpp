// relu.cpp — max(x, 0) over a flat buffer; may run in place.
#include "ops.h"

void relu(const float* in, size_t n, float* out) {
  for (size_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}
