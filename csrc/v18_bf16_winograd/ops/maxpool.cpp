// maxpool.cpp — max pooling over HWC (ResNet-50 uses one, 3x3 stride 2 pad 1, after the first conv).
//
// The window is clipped to the image, so padded positions never win: the same result as padding with
// -infinity, which is what torch does.
//
// The loop over output rows takes a range (maxpool_rows), so that the network can hand rows to its thread pool.
// And channels are the inner loop, so every window tap is one contiguous, vectorised pass over a pixel's channels,
// where a channel-outer order would gather 9 values from 9 cache lines per output value.
//
// The activations are bf16. The window's max is taken in fp32 (exact: widening a bf16 is a shift) over chunks of up
// to 256 channels held in a local array, and stored back as bf16, which rounds nothing: the max is one of the bf16
// inputs.
#include <algorithm>
#include <limits>

#include "ops.h"

void maxpool_rows(const bf16_t* in, Shape s, int kernel, int stride, int pad, bf16_t* out, int row_begin, int row_end) {
  constexpr int kChunk = 256;
  const Shape o = maxpool_shape(s, kernel, stride, pad);
  float y[kChunk];
  for (int ho = row_begin; ho < row_end; ho++) {
    const int h0 = ho * stride - pad;
    const int kh_begin = std::max(0, -h0), kh_end = std::min(kernel, s.h - h0);
    for (int wo = 0; wo < o.w; wo++) {
      const int w0 = wo * stride - pad;
      const int kw_begin = std::max(0, -w0), kw_end = std::min(kernel, s.w - w0);
      bf16_t* dst = out + (static_cast<size_t>(ho) * o.w + wo) * o.c;
      for (int c0 = 0; c0 < s.c; c0 += kChunk) {
        const int cn = std::min(kChunk, s.c - c0);
        for (int c = 0; c < cn; c++) y[c] = -std::numeric_limits<float>::infinity();
        for (int kh = kh_begin; kh < kh_end; kh++) {
          for (int kw = kw_begin; kw < kw_end; kw++) {
            const bf16_t* x = in + (static_cast<size_t>(h0 + kh) * s.w + (w0 + kw)) * s.c + c0;
            for (int c = 0; c < cn; c++) y[c] = std::max(y[c], from_bf16(x[c]));
          }
        }
        for (int c = 0; c < cn; c++) dst[c0 + c] = to_bf16(y[c]);
      }
    }
  }
}
