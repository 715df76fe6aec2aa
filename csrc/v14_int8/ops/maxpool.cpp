// maxpool.cpp — max pooling over HWC (ResNet-50 uses one, 3x3 stride 2 pad 1, after the first conv).
//
// The window is clipped to the image, so padded positions never win: the same result as padding with
// -infinity, which is what torch does.
//
// v7_fold: the loop over output rows takes a range (maxpool_rows), so that the network can hand rows to its
// thread pool; maxpool() is the whole range. And channels are the inner loop, so every window tap is one
// contiguous, vectorised pass over a pixel's channels; the channel-outer order gathered 9 floats from 9 cache
// lines per output value (with the rows as tasks: 1.00 -> 0.13 ms, 2 threads).
// v14_int8: maxpool_rows_u8(): the same rows, each pooled row quantized to uint8 for layer1's int8 convs.
#include <algorithm>
#include <cmath>
#include <limits>

#include "ops.h"

void maxpool(const float* in, Shape s, int kernel, int stride, int pad, float* out) {
  maxpool_rows(in, s, kernel, stride, pad, out, 0, maxpool_shape(s, kernel, stride, pad).h);
}

// One output row ho into y (o.w x o.c floats).
static void pool_row(const float* in, Shape s, int kernel, int stride, int pad, int ho, float* y) {
  const Shape o = maxpool_shape(s, kernel, stride, pad);
  const int h0 = ho * stride - pad;
  const int kh_begin = std::max(0, -h0), kh_end = std::min(kernel, s.h - h0);
  for (int wo = 0; wo < o.w; wo++, y += o.c) {
    const int w0 = wo * stride - pad;
    const int kw_begin = std::max(0, -w0), kw_end = std::min(kernel, s.w - w0);
    for (int c = 0; c < s.c; c++) y[c] = -std::numeric_limits<float>::infinity();
    for (int kh = kh_begin; kh < kh_end; kh++) {
      for (int kw = kw_begin; kw < kw_end; kw++) {
        const float* x = in + (static_cast<size_t>(h0 + kh) * s.w + (w0 + kw)) * s.c;
        for (int c = 0; c < s.c; c++) y[c] = std::max(y[c], x[c]);
      }
    }
  }
}

void maxpool_rows(const float* in, Shape s, int kernel, int stride, int pad, float* out, int row_begin, int row_end) {
  const Shape o = maxpool_shape(s, kernel, stride, pad);
  for (int ho = row_begin; ho < row_end; ho++)
    pool_row(in, s, kernel, stride, pad, ho, out + static_cast<size_t>(ho) * o.w * o.c);
}

void maxpool_rows_u8(const float* in, Shape s, int kernel, int stride, int pad, float inv_scale, std::uint8_t* out,
                     int row_begin, int row_end) {
  const Shape o = maxpool_shape(s, kernel, stride, pad);
  constexpr int kMaxRow = 56 * 64;  // one pooled row of ResNet-50 (the network checks its shape against this)
  float row[kMaxRow];
  const int per_row = o.w * o.c;
  if (per_row > kMaxRow) return;
  for (int ho = row_begin; ho < row_end; ho++) {
    pool_row(in, s, kernel, stride, pad, ho, row);
    std::uint8_t* y = out + static_cast<size_t>(ho) * per_row;
    for (int i = 0; i < per_row; i++)
      y[i] = static_cast<std::uint8_t>(std::nearbyint(std::min(std::max(row[i] * inv_scale, 0.0f), 255.0f)));
  }
}
