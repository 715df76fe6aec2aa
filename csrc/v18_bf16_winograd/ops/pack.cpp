// pack.cpp — the data layouts the micro-kernel reads: weights packed into panels once at load, and the zero-padded
// copy of a 3x3 or 7x7 conv's input made before the layer runs (conv_fused.h).
//
// The padded copy holds a batch of images, image after image: pad_row() writes row `row` of the rows of all of them.
//
// The panels are bf16 with the two taps of each pair side by side per output channel ([cout / nb][k * run / 2][nb][2],
// the layout vdpbf16ps reads), an odd row of k * cin taps ended by a zero tap; pad_row() copies bf16 rows, and
// pad_row_f32() makes the bf16 (padded) copy of an fp32 input.
#include <cstring>

#include "conv_fused.h"

void pack_panels(const float* ohwi, int cout, int k, int cin, int nb, bf16_t* packed) {
  const int row = k * cin, run = (row + 1) / 2 * 2;  // taps of a kernel row, and as packed (even)
  const size_t taps = static_cast<size_t>(k) * run;  // per output channel, as packed
  for (int o = 0; o < cout; o++) {
    bf16_t* dst = packed + static_cast<size_t>(o / nb) * taps * nb;
    for (int kh = 0; kh < k; kh++) {
      for (int j = 0; j < run; j++) {  // (kw, c), then the zero tap of an odd row
        const size_t i = static_cast<size_t>(kh) * run + j;  // the tap's index in the packed rows
        const float v = j < row ? ohwi[(static_cast<size_t>(o) * k + kh) * row + j] : 0.0f;
        dst[(i / 2 * nb + o % nb) * 2 + i % 2] = to_bf16(v);
      }
    }
  }
}

void pad_row(const bf16_t* in, Shape s, int pad, bf16_t* out, int row) {
  const size_t pw = static_cast<size_t>(s.w + 2 * pad) * s.c;  // values per padded row
  bf16_t* o = out + row * pw;  // the padded images are contiguous: their rows are one sequence
  const int img = row / (s.h + 2 * pad), h = row % (s.h + 2 * pad) - pad;
  if (h < 0 || h >= s.h) {
    std::memset(o, 0, pw * sizeof(bf16_t));
    return;
  }
  const size_t edge = static_cast<size_t>(pad) * s.c;
  std::memset(o, 0, edge * sizeof(bf16_t));
  std::memcpy(o + edge, in + img * s.size() + static_cast<size_t>(h) * s.w * s.c,
              static_cast<size_t>(s.w) * s.c * sizeof(bf16_t));
  std::memset(o + edge + static_cast<size_t>(s.w) * s.c, 0, edge * sizeof(bf16_t));
}

void pad_row_f32(const float* in, Shape s, int pad, bf16_t* out, int row) {
  const size_t pw = static_cast<size_t>(s.w + 2 * pad) * s.c;
  bf16_t* o = out + row * pw;
  const int img = row / (s.h + 2 * pad), h = row % (s.h + 2 * pad) - pad;
  if (h < 0 || h >= s.h) {
    std::memset(o, 0, pw * sizeof(bf16_t));
    return;
  }
  const size_t edge = static_cast<size_t>(pad) * s.c;
  std::memset(o, 0, edge * sizeof(bf16_t));
  const float* src = in + img * s.size() + static_cast<size_t>(h) * s.w * s.c;
  bf16_t* dst = o + edge;
  for (size_t i = 0; i < static_cast<size_t>(s.w) * s.c; i++) dst[i] = to_bf16(src[i]);  // vectorised
  std::memset(o + edge + static_cast<size_t>(s.w) * s.c, 0, edge * sizeof(bf16_t));
}
