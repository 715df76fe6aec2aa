// winograd_pack.cpp — the weight side of the int8 Winograd F(2x2, 3x3), done once at load: U = G2 g G2^T for every
// (output channel, input channel) int8 filter g, in exact integers, packed into panels of int16 pairs (winograd.h
// has the input and output sides, and why nothing here can overflow).
#include <cstddef>
#include <cstdint>

#include "winograd.h"

namespace {

// G2 = diag(1, 2, 2, 1) G, G of F(2x2, 3x3) (Lavin & Gray 2016) with its halves taken out: integer.
constexpr int kG2[4][3] = {{1, 0, 0}, {1, 1, 1}, {1, -1, 1}, {0, 0, 1}};

}  // namespace

void wino_pack_weights(const std::int8_t* ohwi, int cout, int cin, int nb, std::int16_t* packed) {
  const int panels = cout / nb;
  for (int o = 0; o < cout; o++) {
    for (int c = 0; c < cin; c++) {
      int f[3][3];  // the filter of (o, c); OHWI: [o][kh][kw][c]
      for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) f[i][j] = ohwi[((static_cast<size_t>(o) * 3 + i) * 3 + j) * cin + c];
      int gf[4][3];  // G2 f
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) gf[i][j] = kG2[i][0] * f[0][j] + kG2[i][1] * f[1][j] + kG2[i][2] * f[2][j];
      for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 4; j++) {  // (G2 f G2^T)[i][j], |.| <= 9 x 128
          const int u = gf[i][0] * kG2[j][0] + gf[i][1] * kG2[j][1] + gf[i][2] * kG2[j][2];
          const size_t xi = static_cast<size_t>(i) * 4 + j;
          // [xi][panel][c / 2][o % nb][c % 2]: channel pairs in each 32-bit lane
          packed[(((xi * panels + o / nb) * (cin / 2) + c / 2) * nb + o % nb) * 2 + c % 2] =
              static_cast<std::int16_t>(u);
        }
      }
    }
  }
}
