// avgpool.cpp — global average pooling: HWC -> C (ResNet-50 pools 7x7x2048 down to 2048 before fc).
#include "ops.h"

void avgpool(const float* in, Shape s, float* out) {
  const size_t pixels = static_cast<size_t>(s.h) * s.w;
  for (int c = 0; c < s.c; c++) {
    float sum = 0.0f;
    for (size_t px = 0; px < pixels; px++) sum += in[px * s.c + c];
    out[c] = sum / static_cast<float>(pixels);
  }
}
