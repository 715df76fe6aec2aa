// maxpool.cpp — max pooling over HWC (ResNet-50 uses one, 3x3 stride 2 pad 1, after the first conv).
//
// The window is clipped to the image, so padded positions never win: the same result as padding with
// -infinity, which is what torch does.
//
// v7_fold: the loop over output rows takes a range (maxpool_rows), so that the network can hand rows to its
// thread pool; maxpool() is the whole range. And channels are the inner loop, so every window tap is one
// contiguous, vectorised pass over a pixel's channels; the channel-outer order gathered 9 floats from 9 cache
// lines per output value (with the rows as tasks: 1.00 -> 0.13 ms, 2 threads).
// v14_int8: the loops are written once, for floats and for uint8 (maxpool_rows_u8(): the stem's output is uint8).
#include <algorithm>
#include <limits>

#include "ops.h"

void maxpool(const float* in, Shape s, int kernel, int stride, int pad, float* out) {
  maxpool_rows(in, s, kernel, stride, pad, out, 0, maxpool_shape(s, kernel, stride, pad).h);
}

namespace {

// The window never holds only padding, so starting at the type's lowest value is the same as at -infinity.
template <class T>
void pool_rows(const T* in, Shape s, int kernel, int stride, int pad, T* out, int row_begin, int row_end) {
  const Shape o = maxpool_shape(s, kernel, stride, pad);
  for (int ho = row_begin; ho < row_end; ho++) {
    const int h0 = ho * stride - pad;
    const int kh_begin = std::max(0, -h0), kh_end = std::min(kernel, s.h - h0);
    for (int wo = 0; wo < o.w; wo++) {
      const int w0 = wo * stride - pad;
      const int kw_begin = std::max(0, -w0), kw_end = std::min(kernel, s.w - w0);
      T* y = out + (static_cast<size_t>(ho) * o.w + wo) * o.c;
      for (int c = 0; c < s.c; c++) y[c] = std::numeric_limits<T>::lowest();
      for (int kh = kh_begin; kh < kh_end; kh++) {
        for (int kw = kw_begin; kw < kw_end; kw++) {
          const T* x = in + (static_cast<size_t>(h0 + kh) * s.w + (w0 + kw)) * s.c;
          for (int c = 0; c < s.c; c++) y[c] = std::max(y[c], x[c]);
        }
      }
    }
  }
}

}  // namespace

void maxpool_rows(const float* in, Shape s, int kernel, int stride, int pad, float* out, int row_begin, int row_end) {
  pool_rows(in, s, kernel, stride, pad, out, row_begin, row_end);
}

void maxpool_rows_u8(const std::uint8_t* in, Shape s, int kernel, int stride, int pad, std::uint8_t* out,
                     int row_begin, int row_end) {
  pool_rows(in, s, kernel, stride, pad, out, row_begin, row_end);
}
