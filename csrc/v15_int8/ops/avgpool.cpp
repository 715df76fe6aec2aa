// avgpool.cpp — global average pooling: HWC -> C (ResNet-50 pools 7x7x2048 down to 2048 before fc).
//
// v7_fold: the loops are swapped, pixels outer and channels inner, so the inner loop reads contiguous floats
// and vectorises; the channel-outer order read one float per cache line, 2048 x 49 times (0.26 -> 0.01 ms).
// v14_int8: avgpool_u8(), of the last block's uint8 output: integer sums (exact), then one multiply per channel.
#include <cstdint>

#include "ops.h"

void avgpool(const float* in, Shape s, float* out) {
  const size_t pixels = static_cast<size_t>(s.h) * s.w;
  for (int c = 0; c < s.c; c++) out[c] = 0.0f;
  for (size_t px = 0; px < pixels; px++) {
    const float* row = in + px * s.c;
    for (int c = 0; c < s.c; c++) out[c] += row[c];
  }
  const float scale = 1.0f / static_cast<float>(pixels);
  for (int c = 0; c < s.c; c++) out[c] *= scale;
}

void avgpool_u8(const std::uint8_t* in, Shape s, float scale, float* out) {
  const size_t pixels = static_cast<size_t>(s.h) * s.w;
  std::int32_t sum[4096];  // the channels of one image: 2048 in ResNet-50 (the network checks)
  const int c = s.c < 4096 ? s.c : 4096;
  for (int i = 0; i < c; i++) sum[i] = 0;
  for (size_t px = 0; px < pixels; px++) {
    const std::uint8_t* row = in + px * s.c;
    for (int i = 0; i < c; i++) sum[i] += row[i];
  }
  const float step = scale / static_cast<float>(pixels);
  for (int i = 0; i < c; i++) out[i] = static_cast<float>(sum[i]) * step;
}
