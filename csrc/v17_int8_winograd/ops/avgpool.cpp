// avgpool.cpp — global average pooling: HWC -> C (ResNet-50 pools 7x7x2048 down to 2048 before fc).
//
// Pixels are the outer loop and channels the inner one, so the inner loop reads contiguous values and vectorises,
// where a channel-outer order would read one value per cache line, 2048 x 49 times.
//
// The input is the last block's uint8 output with its scale (real units per step): integer sums (exact), then one
// multiply per channel, into the fp32 features that fc reads.
#include <cstdint>

#include "ops.h"

void avgpool(const std::uint8_t* in, Shape s, float scale, float* out) {
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
