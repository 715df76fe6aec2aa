// winograd_pack.cpp — the weight side of Winograd F(m x m, 3 x 3), done once at load: U = G g G^T for every
// (output channel, input channel) filter g, computed in double from the fp32 folded weights, rounded to bf16 and
// packed into the direct convs' pair-interleaved panel layout, one set of panels per transformed position
// (winograd.h has the input and output sides).
#include <cstddef>

#include "winograd.h"

namespace {

// G (Lavin & Gray 2016) for F(2x2, 3x3) and F(4x4, 3x3): rows are the m + 2 interpolation points.
constexpr double kG2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
constexpr double kG4[6][3] = {{1.0 / 4, 0, 0},
                              {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                              {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                              {1.0 / 24, 1.0 / 12, 1.0 / 6},
                              {1.0 / 24, -1.0 / 12, 1.0 / 6},
                              {0, 0, 1}};

}  // namespace

void wino_pack_weights(const float* ohwi, int cout, int cin, int m, int nb, bf16_t* packed) {
  const int a = m + 2;
  const double(*g)[3] = m == 4 ? kG4 : kG2;
  const int panels = cout / nb;
  for (int o = 0; o < cout; o++) {
    for (int c = 0; c < cin; c++) {
      double f[3][3];  // the filter of (o, c); OHWI: [o][kh][kw][c]
      for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) f[i][j] = ohwi[((static_cast<size_t>(o) * 3 + i) * 3 + j) * cin + c];
      double gf[6][3];  // G f
      for (int i = 0; i < a; i++)
        for (int j = 0; j < 3; j++) gf[i][j] = g[i][0] * f[0][j] + g[i][1] * f[1][j] + g[i][2] * f[2][j];
      for (int i = 0; i < a; i++) {
        for (int j = 0; j < a; j++) {  // (G f G^T)[i][j]
          const double u = gf[i][0] * g[j][0] + gf[i][1] * g[j][1] + gf[i][2] * g[j][2];
          const size_t xi = static_cast<size_t>(i) * a + j;
          // [xi][panel][c / 2][nb][2]: the pair (c, c + 1) of channel o side by side
          const size_t at = ((xi * panels + o / nb) * cin + c / 2 * 2) * nb + (o % nb) * 2 + c % 2;
          packed[at] = to_bf16(static_cast<float>(u));
        }
      }
    }
  }
}
