// maxpool.cpp — max pooling over HWC (ResNet-50 uses one, 3x3 stride 2 pad 1, after the first conv).
//
// The window is clipped to the image, so padded positions never win: the same result as padding with
// -infinity, which is what torch does.
//
// The loop over output rows takes a range (maxpool_rows), so that the network can hand rows to its thread pool.
// And channels are the inner loop, so every window tap is one contiguous, vectorised pass over a pixel's channels,
// where a channel-outer order would gather 9 values from 9 cache lines per output value.
//
// The activations are uint8: max commutes with the monotone quantization, so the max of the quantized values is the
// quantized max. The window never holds only padding, so starting at 0, the lowest uint8, is the same as at
// -infinity.
#include <algorithm>
#include <limits>

#include "ops.h"

void maxpool_rows(const std::uint8_t* in, Shape s, int kernel, int stride, int pad, std::uint8_t* out, int row_begin,
                  int row_end) {
  const Shape o = maxpool_shape(s, kernel, stride, pad);
  for (int ho = row_begin; ho < row_end; ho++) {
    const int h0 = ho * stride - pad;
    const int kh_begin = std::max(0, -h0), kh_end = std::min(kernel, s.h - h0);
    for (int wo = 0; wo < o.w; wo++) {
      const int w0 = wo * stride - pad;
      const int kw_begin = std::max(0, -w0), kw_end = std::min(kernel, s.w - w0);
      std::uint8_t* y = out + (static_cast<size_t>(ho) * o.w + wo) * o.c;
      for (int c = 0; c < s.c; c++) y[c] = std::numeric_limits<std::uint8_t>::lowest();
      for (int kh = kh_begin; kh < kh_end; kh++) {
        for (int kw = kw_begin; kw < kw_end; kw++) {
          const std::uint8_t* x = in + (static_cast<size_t>(h0 + kh) * s.w + (w0 + kw)) * s.c;
          for (int c = 0; c < s.c; c++) y[c] = std::max(y[c], x[c]);
        }
      }
    }
  }
}
