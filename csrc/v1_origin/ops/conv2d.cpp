// conv2d.cpp — direct convolution, HWC in, OHWI weights, HWC out.
//
// Six nested loops in the order a person writes them down (output channel, output row, output column, kernel
// row, kernel column, input channel), with the padding handled by clipping the kernel window. One multiply-add
// per innermost iteration, no vectors, no blocking: this is the baseline every later stage is measured against.
#include <algorithm>

#include "ops.h"

void conv2d(const float* in, Shape s, const float* weight, ConvParams p, float* out) {
  const Shape o = conv2d_shape(s, p);
  const int K = p.kernel;
  for (int co = 0; co < p.cout; co++) {
    const float* wco = weight + static_cast<size_t>(co) * K * K * s.c;
    for (int ho = 0; ho < o.h; ho++) {
      const int h0 = ho * p.stride - p.pad;  // top-left input row of this window (may be in the padding)
      // clip the window so we never read the padding: padded taps contribute 0
      const int kh_begin = std::max(0, -h0), kh_end = std::min(K, s.h - h0);
      for (int wo = 0; wo < o.w; wo++) {
        const int w0 = wo * p.stride - p.pad;
        const int kw_begin = std::max(0, -w0), kw_end = std::min(K, s.w - w0);
        float acc = 0.0f;
        for (int kh = kh_begin; kh < kh_end; kh++) {
          for (int kw = kw_begin; kw < kw_end; kw++) {
            const float* x = in + (static_cast<size_t>(h0 + kh) * s.w + (w0 + kw)) * s.c;
            const float* w = wco + (static_cast<size_t>(kh) * K + kw) * s.c;
            for (int ci = 0; ci < s.c; ci++) acc += x[ci] * w[ci];
          }
        }
        out[(static_cast<size_t>(ho) * o.w + wo) * o.c + co] = acc;
      }
    }
  }
}
