// winograd.h — the 3x3 stride-1 convs by Winograd's minimal filtering, F(m x m, 3 x 3), with bf16 GEMMs: the input
// and output transforms, in fp32, and the bf16 GEMMs between them.
//
// A direct 3x3 conv spends 9 multiplies per input channel on each output value. Winograd's algorithm computes a
// tile of m x m outputs from an (m + 2) x (m + 2) input tile with (m + 2)^2 multiplies per input channel instead of
// 9 m^2: F(2x2, 3x3) does 16 where direct does 36, F(4x4, 3x3) 36 where direct does 144: 2.25 and 4 times fewer.
// Per output channel o and input channel c, with g the 3x3 filter and d an input tile,
//     Y = A^T [ sum over c of (G g G^T) (.) (B^T d B) ] A        ((.) = elementwise product)
// so the conv becomes three passes, each a task list on the model's pool:
//   1. input transform   V[xi][tile][c]  = (B^T d B)[xi] for every tile and input channel (xi = one of the
//                        (m + 2)^2 positions of the transformed tile): the bf16 input widened to fp32 (exact),
//                        transformed in fp32, each value of V rounded once to bf16;
//   2. (m + 2)^2 GEMMs    M[xi][tile][o] = sum over c of V[xi][tile][c] * U[xi][c][o], where U = G g G^T was
//                        computed at load from the fp32 folded weights (winograd_pack.cpp, in double), rounded to
//                        bf16 and packed into the same pair-interleaved panels as the direct convs' weights, so the
//                        GEMMs run the bf16 micro-kernel of microkernel.h (k = 1, run = cin, no bias: vdpbf16ps,
//                        or its emulation) with the one difference that M is stored in fp32, not rounded;
//   3. output transform  Y = A^T M A per tile and output channel in fp32, + the folded BatchNorm bias, ReLU,
//                        rounded to bf16 into the HWC output (the part of an edge tile past the output's border is
//                        dropped).
// So where a direct bf16 layer multiplies its input and weights as they are stored, a Winograd layer multiplies V
// and U, each rounded to bf16 after its transform; both round their output. The transforms are additions and
// a few multiplies by constants, vectorised across channels (the HWC layout makes a tile position's channels
// contiguous). The price of the fewer multiplies: the transformed tensors are (m + 2)^2 / m^2 times the activation
// (4 times for F(2x2), 2.25 times for F(4x4); V in bf16, M in fp32) and must go through memory, and the
// transformed weights are (m + 2)^2 / 9 times the 3x3 weights (16/9 and 4 times).
//
// Like microkernel.h, everything here is template code in an anonymous namespace calling nothing from the standard
// library, instantiated for each instruction set in its kernels_<isa>.cpp.
//
// The passes take a batch of n images. A Winograd tile belongs to one image (the transforms' tasks are an image's
// tile row x a chunk of channels), but the GEMMs run over the tiles of all n images, image after image, so each
// panel of transformed weights is loaded once per batch instead of once per image.
#pragma once
#include <cstddef>

#include "conv_fused.h"
#include "microkernel.h"

// Channels per transform task: the transforms split a layer into tile rows x chunks of this many channels.
constexpr int kWinoChunk = 64;
// The widest input a Winograd layer may have (layer4's 512 channels): the zero row that stands in for the border.
// A multiple of kWinoChunk, which is even: the GEMMs take the input channels in pairs.
constexpr int kWinoMaxChannels = 512;

// Task counts of the three passes of a Winograd layer (l.wino > 0) on n images. Fixed by the shape, n and the
// instruction set, never by the thread count; each output value is computed by one task. A GEMM task is a position
// x a panel ((m + 2)^2 x panels tasks, at least 16 x 2) over the tiles of all n images.
inline int wino_input_tasks(const FusedConv& l, int n) { return n * l.tiles_h * (l.cin / kWinoChunk); }
inline int wino_gemm_tasks(const FusedConv& l, int nb) { return (l.wino + 2) * (l.wino + 2) * (l.cout / nb); }
inline int wino_output_tasks(const FusedConv& l, int n) { return n * l.tiles_h * (l.cout / kWinoChunk); }

// Packed bf16 weights per output channel of a layer: k * run direct (run: k * cin rounded up to even), (m + 2)^2 *
// cin as Winograd.
inline size_t packed_per_channel(const FusedConv& l) {
  if (l.wino) return static_cast<size_t>(l.wino + 2) * (l.wino + 2) * l.cin;
  return static_cast<size_t>(l.k) * l.run;
}

// Transforms the folded fp32 3x3 weights of one layer, OHWI [cout][3][3][cin], into U = G g G^T (in double), rounds
// each to bf16 and packs them as [(m + 2)^2][cout / nb][cin / 2][nb][2]: one set of pair-interleaved panels per
// transformed position xi (pack_panels()'s layout with k = 1, run = cin).
void wino_pack_weights(const float* ohwi, int cout, int cin, int m, int nb, bf16_t* packed);

namespace {

// The transform matrices (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): B^T for the
// input, A^T for the output; G, for the weights, is in winograd_pack.cpp. F(2x2, 3x3) interpolates at 0, 1, -1 (and
// infinity), F(4x4, 3x3) at 0, +-1, +-2 (and infinity); its larger constants cost some accuracy (README.md).
template <int M>
struct WinoMatrices;
template <>
struct WinoMatrices<2> {
  static constexpr float BT[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
  static constexpr float AT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
};
template <>
struct WinoMatrices<4> {
  static constexpr float BT[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                     {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
  static constexpr float AT[4][6] = {
      {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
};

// acc + a * x for a constant a: with the loops below unrolled, a is known at compile time and the zeros, ones
// and minus ones of the matrices become nothing, an add or a subtract.
template <class V>
inline typename V::reg axpy(float a, typename V::reg x, typename V::reg acc) {
  if (a == 0.0f) return acc;
  if (a == 1.0f) return V::add(acc, x);
  if (a == -1.0f) return V::sub(acc, x);
  return V::fma(V::set1(a), x, acc);
}

// Zeros: the input outside the image (the conv's 1-pixel padding), and the bias of the GEMMs (they have none;
// the folded bias is added after the output transform).
alignas(64) const bf16_t kWinoZeroInput[kWinoMaxChannels] = {};
alignas(64) const float kWinoZeroBias[2 * 16] = {};  // NB fp32 values, NB <= 32

// Pass 1, one task: tile row ty of image img (row = img * tiles_h + ty counts the tile rows of the batch), input
// channels [chunk * 64, chunk * 64 + 64); for every tile of the row, V[xi][tile][c] = (B^T d B)[xi], the tiles of
// the batch numbered image after image.
template <class V, int M>
void wino_input_task(const FusedConv& l, int n, const bf16_t* in, bf16_t* v, int task) {
  using T = WinoMatrices<M>;
  constexpr int A = M + 2, W = V::kWidth;
  using R = typename V::reg;
  const int chunks = l.cin / kWinoChunk;
  const int row = task / chunks, c0 = task % chunks * kWinoChunk;
  const int ty = row % l.tiles_h;
  in += static_cast<size_t>(row / l.tiles_h) * l.h * l.w * l.cin;  // image row / tiles_h
  const size_t plane = static_cast<size_t>(n) * l.tiles_h * l.tiles_w * l.cin;  // values per position xi
  for (int tx = 0; tx < l.tiles_w; tx++) {
    const bf16_t* src[A][A];  // the tile's input pixels; kWinoZeroInput outside the image
    for (int i = 0; i < A; i++) {
      for (int j = 0; j < A; j++) {
        const int y = ty * M - 1 + i, x = tx * M - 1 + j;
        const bool inside = y >= 0 && y < l.h && x >= 0 && x < l.w;
        src[i][j] = inside ? in + (static_cast<size_t>(y) * l.w + x) * l.cin : kWinoZeroInput;
      }
    }
    bf16_t* dst = v + (static_cast<size_t>(row) * l.tiles_w + tx) * l.cin;
    for (int c = c0; c < c0 + kWinoChunk; c += W) {
      R t[A][A];  // t = B^T d
#pragma GCC unroll 8
      for (int i = 0; i < A; i++) {
#pragma GCC unroll 8
        for (int j = 0; j < A; j++) {
          R s = V::zero();
#pragma GCC unroll 8
          for (int k = 0; k < A; k++) s = axpy<V>(T::BT[i][k], V::load_bf16(src[k][j] + c), s);
          t[i][j] = s;
        }
      }
#pragma GCC unroll 8
      for (int i = 0; i < A; i++) {  // V = t B
#pragma GCC unroll 8
        for (int j = 0; j < A; j++) {
          R s = V::zero();
#pragma GCC unroll 8
          for (int k = 0; k < A; k++) s = axpy<V>(T::BT[j][k], t[i][k], s);
          V::store_bf16(dst + (i * A + j) * plane + c, s);
        }
      }
    }
  }
}

// Pass 2, one task: position xi, panel of nb output channels, the tiles of all n images: the GEMM M[xi] = V[xi] U[xi]
// on the bf16 micro-kernel, a tile row of V being one pixel's run of Cin taps (Cin / 2 pairs), M stored in fp32.
template <class V>
void wino_gemm_task(const FusedConv& l, int n, const bf16_t* v, float* mo, int task) {
  constexpr int NB = 2 * V::kWidth, MR = V::kTileM;
  const int panels = l.cout / NB;
  const int xi = task / panels, panel = task % panels;
  const int tiles = n * l.tiles_h * l.tiles_w;
  const int groups = (tiles + MR - 1) / MR;  // micro-kernel tiles of MR Winograd tiles
  const bf16_t* a = v + static_cast<size_t>(xi) * tiles * l.cin;
  const bf16_t* w = l.weight + (static_cast<size_t>(xi) * panels + panel) * l.cin * NB;
  const bf16_t* px[MR];
  size_t po[MR];
  for (int g = 0; g < groups; g++) {
    const int t0 = g * MR;
    const int count = min_int(MR, tiles - t0);
    for (int p = 0; p < MR; p++) {
      const int t = t0 + min_int(p, count - 1);
      px[p] = a + static_cast<size_t>(t) * l.cin;
      po[p] = (static_cast<size_t>(xi) * tiles + t) * l.cout + static_cast<size_t>(panel) * NB;
    }
    micro_tile<V>(px, 1, 0, l.cin, w, kWinoZeroBias, mo, nullptr, po, count, false);
  }
}

// Pass 3, one task: tile row ty of image img (row = img * tiles_h + ty), output channels [chunk * 64, chunk * 64 +
// 64): Y = A^T M A + bias, ReLU, rounded to bf16 and stored where it falls inside that image's output.
template <class V, int M>
void wino_output_task(const FusedConv& l, int n, const float* mo, bf16_t* out, bool relu, int task) {
  using T = WinoMatrices<M>;
  constexpr int A = M + 2, W = V::kWidth;
  using R = typename V::reg;
  const int chunks = l.cout / kWinoChunk;
  const int row = task / chunks, c0 = task % chunks * kWinoChunk;
  const int ty = row % l.tiles_h;
  out += static_cast<size_t>(row / l.tiles_h) * l.ho * l.wo * l.cout;  // image row / tiles_h
  const size_t plane = static_cast<size_t>(n) * l.tiles_h * l.tiles_w * l.cout;
  const int rows = min_int(M, l.ho - ty * M);
  for (int tx = 0; tx < l.tiles_w; tx++) {
    const int cols = min_int(M, l.wo - tx * M);
    const float* src = mo + (static_cast<size_t>(row) * l.tiles_w + tx) * l.cout;
    bf16_t* dst = out + (static_cast<size_t>(ty) * M * l.wo + static_cast<size_t>(tx) * M) * l.cout;
    for (int c = c0; c < c0 + kWinoChunk; c += W) {
      R t[M][A];  // t = A^T m
#pragma GCC unroll 8
      for (int i = 0; i < M; i++) {
#pragma GCC unroll 8
        for (int j = 0; j < A; j++) {
          R s = V::zero();
#pragma GCC unroll 8
          for (int k = 0; k < A; k++) s = axpy<V>(T::AT[i][k], V::load(src + (k * A + j) * plane + c), s);
          t[i][j] = s;
        }
      }
      const R b = V::load(l.bias + c);
#pragma GCC unroll 8
      for (int i = 0; i < M; i++) {  // Y = t A + bias
#pragma GCC unroll 8
        for (int j = 0; j < M; j++) {
          R s = b;
#pragma GCC unroll 8
          for (int k = 0; k < A; k++) s = axpy<V>(T::AT[j][k], t[i][k], s);
          if (relu) s = V::max(s, V::zero());
          if (i < rows && j < cols) V::store_bf16(dst + (static_cast<size_t>(i) * l.wo + j) * l.cout + c, s);
        }
      }
    }
  }
}

// The tile size is the layer's (l.wino): one entry point per pass for ConvKernels.
template <class V>
void wino_input(const FusedConv& l, int n, const bf16_t* in, bf16_t* v, int task) {
  if (l.wino == 4)
    wino_input_task<V, 4>(l, n, in, v, task);
  else
    wino_input_task<V, 2>(l, n, in, v, task);
}
template <class V>
void wino_output(const FusedConv& l, int n, const float* mo, bf16_t* out, bool relu, int task) {
  if (l.wino == 4)
    wino_output_task<V, 4>(l, n, mo, out, relu, task);
  else
    wino_output_task<V, 2>(l, n, mo, out, relu, task);
}

}  // namespace
