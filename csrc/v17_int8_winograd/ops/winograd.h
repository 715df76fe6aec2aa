// winograd.h — the int8 network's 3x3 stride-1 convs by Winograd F(2x2, 3x3) in integers: the input and output
// transforms and the GEMMs between them, exact.
//
// A direct 3x3 conv spends 9 multiplies per input channel on each output value; F(2x2, 3x3) computes a 2x2 tile of
// outputs from a 4x4 input tile with 16 multiplies per input channel instead of 36. Per output channel o, with g
// the 3x3 filter of (o, c) and d a 4x4 input tile of channel c,
//     Y = A^T [ sum over c of (G g G^T) (.) (B^T d B) ] A        ((.) = elementwise product).
// G has halves; G2 = diag(1, 2, 2, 1) G is integer, so U = G2 g G2^T is integer (computed at load,
// winograd_pack.cpp), and the halves move to the output side: with A2^T = 2 A^T diag(1, 1/2, 1/2, 1) =
// [[2, 1, 1, 0], [0, 1, -1, -2]], also integer,
//     4 Y = A2^T [ sum over c of U (.) (B^T d B) ] A2.
// Y is the direct conv's int32 sum S, exactly, so the store (FusedConv's requantization, the same float32
// operations as microkernel.h's) gives the direct path's bits.
//
// Where the integers could round or overflow, and why they do not (8-bit weights, the worst case; 7-bit ones are
// smaller):
//   * V = B^T d B: B^T's rows are two of +-1, so each V value is a sum of 4 uint8 values with signs: |V| <= 510,
//     int16 (the input's zero point is 0: every conv transformed here reads a ReLU output).
//   * U = G2 g G2^T: the rows of G2 sum to at most 3 in magnitude, so |U| <= 9 x 128 = 1152, int16.
//   * M = sum over c of U V: vpmaddwd / vpdpwssd multiply int16 pairs into int32 without saturation (it happens
//     only for -32768 x -32768 twice), |U V| <= 510 x 1152 = 587,520; summed over up to 512 channels,
//     |M| < 3.1 x 10^8 < 2^31.
//   * 4 Y = A2^T M A2: sums of up to 16 M values times 1, 2 or 4 may pass 2^31; int32 arithmetic wraps modulo
//     2^32, and the result, 4 S, fits (|S| <= 255 x 128 x 9 x 512 < 1.6 x 10^8, 4 |S| < 6.1 x 10^8 < 2^31), so
//     the wrapped sum is exactly 4 S, and S = (4 S) >> 2 exactly.
//
// The conv becomes two passes, each a task list on the model's pool:
//   1. input transform   V[xi][tile][c] = (B^T d B)[xi], int16, for every tile and input channel (xi = one of the
//                        16 positions of the transformed tile), read from the unpadded uint8 input (zeros outside);
//   2. per group of MR tiles and panel of NB output channels: the 16 GEMMs
//                        M[xi][tile][o] = sum over c of V[xi][tile][c] U[xi][c][o], int32, on a micro-kernel of
//                        microkernel.h's shape whose dot product takes pairs of int16 (V::dot16), into a buffer on
//                        the stack; then the output transform S = (A2^T M A2) >> 2 and the store: bias, ReLU, uint8.
//                        M never goes through memory.
// Like microkernel.h, everything here is template code in an anonymous namespace, instantiated for each
// instruction set in its kernels_<isa>.cpp.
//
// The passes take a batch of n images. A tile belongs to one image (the transforms' tasks are an image's tile row x
// a chunk of channels), but the GEMMs run over the tiles of all n images, so each panel of transformed weights is
// loaded once per batch.
#pragma once
#include <cstddef>
#include <cstdint>

#include "conv_fused.h"
#include "microkernel.h"

// Channels per transform task: the transforms split a layer into tile rows x chunks of this many channels.
constexpr int kWinoChunk = 64;
// The widest input a Winograd layer may have (layer4's 512 channels): the zero row that stands in for the border.
constexpr int kWinoMaxChannels = 512;

// Task counts of the two passes of a Winograd layer (l.wino) on n images. Fixed by the shape, n and the
// instruction set, never by the thread count; each output value is computed by one task. The input transform: a
// tile row of an image x a chunk of channels; the GEMMs with the output transform: a group of panels x a range of
// the batch's micro-kernel tiles (pixel_parts(), as the direct convs split their pixels).
inline int wino_input_tasks(const FusedConv& l, int n) { return n * l.tiles_h * (l.cin / kWinoChunk); }
inline int wino_tasks(const FusedConv& l, const ConvKernels& kern, int n) {
  const int groups = l.cout / kern.nb / l.wino_group;
  return groups * pixel_parts((n * l.tiles_h * l.tiles_w + kern.mr - 1) / kern.mr, groups);
}

// Transforms one layer's int8 3x3 weights, OHWI [cout][3][3][cin], into U = G2 g G2^T (exact integers, |U| <= 9 x
// 128) and packs them as [16][cout / nb][cin / 2][nb][2] int16: one set of panels per transformed position.
void wino_pack_weights(const std::int8_t* ohwi, int cout, int cin, int nb, std::int16_t* packed);

namespace {

// B^T (input) and A2^T (output, A^T with G's halves moved in) of F(2x2, 3x3), interpolating at 0, 1, -1 and
// infinity (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
constexpr int kWinoBT[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
constexpr int kWinoAT[2][4] = {{2, 1, 1, 0}, {0, 1, -1, -2}};

// acc + a x for a constant a in -2 .. 2, on int16 lanes (kLanes16) or int32 lanes: with the loops below unrolled, a
// is known at compile time, so this is nothing, one or two adds or subtracts.
constexpr bool kLanes16 = true, kLanes32 = false;
template <class V, bool lanes16>
inline typename V::ireg iaxpy(int a, typename V::ireg x, typename V::ireg acc) {
  for (int k = 0; k < (a < 0 ? -a : a); k++)
    acc = lanes16 ? (a > 0 ? V::add16(acc, x) : V::sub16(acc, x)) : (a > 0 ? V::add32(acc, x) : V::sub32(acc, x));
  return acc;
}

// Zeros: the input outside the image (the conv's 1-pixel padding).
alignas(64) const std::uint8_t kWinoZeros[kWinoMaxChannels] = {};

// Pass 1, one task: tile row ty of image img (row = img * tiles_h + ty counts the tile rows of the batch), input
// channels [chunk * 64, chunk * 64 + 64); for every tile of the row, V[xi][tile][c] = (B^T d B)[xi], the tiles of
// the batch numbered image after image. The transform runs on int16 lanes, 2 V::kWidth channels a register.
template <class V>
void wino_input_task(const FusedConv& l, int n, const std::uint8_t* in, std::int16_t* v, int task) {
  using R = typename V::ireg;
  constexpr int L = 2 * V::kWidth;  // int16 lanes per register
  const int chunks = l.cin / kWinoChunk;
  const int row = task / chunks, c0 = task % chunks * kWinoChunk;
  const int ty = row % l.tiles_h;
  in += static_cast<size_t>(row / l.tiles_h) * l.h * l.w * l.cin;  // image row / tiles_h
  const size_t plane = static_cast<size_t>(n) * l.tiles_h * l.tiles_w * l.cin;  // values per position xi
  for (int tx = 0; tx < l.tiles_w; tx++) {
    const std::uint8_t* src[4][4];  // the tile's input pixels; kWinoZeros outside the image
    for (int i = 0; i < 4; i++) {
      for (int j = 0; j < 4; j++) {
        const int y = ty * 2 - 1 + i, x = tx * 2 - 1 + j;
        const bool inside = y >= 0 && y < l.h && x >= 0 && x < l.w;
        src[i][j] = inside ? in + (static_cast<size_t>(y) * l.w + x) * l.cin : kWinoZeros;
      }
    }
    std::int16_t* dst = v + (static_cast<size_t>(row) * l.tiles_w + tx) * l.cin;
    for (int c = c0; c < c0 + kWinoChunk; c += L) {
      R t[4][4];  // t = B^T d
#pragma GCC unroll 4
      for (int i = 0; i < 4; i++) {
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
          R s = V::izero();
#pragma GCC unroll 4
          for (int k = 0; k < 4; k++)
            s = iaxpy<V, kLanes16>(kWinoBT[i][k], V::load_u8_16(src[k][j] + c), s);
          t[i][j] = s;
        }
      }
#pragma GCC unroll 4
      for (int i = 0; i < 4; i++) {  // V = t B
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
          R s = V::izero();
#pragma GCC unroll 4
          for (int k = 0; k < 4; k++) s = iaxpy<V, kLanes16>(kWinoBT[j][k], t[i][k], s);
          V::istore(dst + (i * 4 + j) * plane + c, s);
        }
      }
    }
  }
}

// One micro-kernel tile of a GEMM: count (1 .. MR) Winograd tiles x NB output channels, over cin / 2 pairs of
// input channels; px[p] is tile p's row of V (cin int16), w the panel, [cin / 2][NB][2] int16 (4 bytes per 32-bit
// lane, the layout of the direct kernels' quads), mo + po[p] where tile p's NB sums go.
template <class V>
inline void wino_tile(const std::int16_t* const* px, int pairs, const std::int16_t* w, std::int32_t* mo,
                      const size_t* po, int count) {
  using I = typename V::ireg;
  constexpr int W = V::kWidth, MR = V::kTileM, NB = 2 * W;
  I c[MR][2];
#pragma GCC unroll 16
  for (int p = 0; p < MR; p++) c[p][0] = V::izero(), c[p][1] = V::izero();
  const std::int8_t* wk = reinterpret_cast<const std::int8_t*>(w);
  for (int j = 0; j < pairs; j++, wk += NB * 4) {
    const I w0 = V::wload(wk), w1 = V::wload(wk + W * 4);
#pragma GCC unroll 16
    for (int p = 0; p < MR; p++) {
      const I a = V::bcast(reinterpret_cast<const std::uint8_t*>(px[p] + 2 * j));
      c[p][0] = V::dot16(c[p][0], a, w0);
      c[p][1] = V::dot16(c[p][1], a, w1);
    }
  }
#pragma GCC unroll 16
  for (int p = 0; p < MR; p++) {
    if (p >= count) break;
    V::istore(mo + po[p], c[p][0]);
    V::istore(mo + po[p] + W, c[p][1]);
  }
}

// Pass 2, one task: a group of l.wino_group panels of NB output channels x one range of the batch's micro-kernel
// tiles of MR Winograd tiles (wino_tasks()); tiles outer, as in conv_task.h, so a tile group's rows of V are read
// once for every panel of the group, whose transformed weights (16 positions) stay in L2. For each tile group and
// panel: the 16 GEMMs into m, MR x NB sums per position on the stack (never through memory), then the output
// transform of those tiles and the store: S = (A2^T M A2) >> 2, r = fma(float(S), scale, bias), ReLU, uint8 (or r
// itself when out_f32), the same float32 operations as microkernel.h's store; outputs past the image's border are
// dropped.
template <class V>
void wino_task(const FusedConv& l, int n, const std::int16_t* v, void* out, bool relu, int task) {
  using I = typename V::ireg;
  using F = typename V::freg;
  constexpr int W = V::kWidth, MR = V::kTileM, NB = 2 * W;
  const int per_image = l.tiles_h * l.tiles_w;
  const int tiles = n * per_image;
  const int groups = (tiles + MR - 1) / MR;
  const int parts = pixel_parts(groups, l.cout / NB / l.wino_group);
  const int p_begin = task / parts * l.wino_group, p_end = p_begin + l.wino_group, part = task % parts;
  const int g_begin = static_cast<int>(static_cast<long long>(part) * groups / parts);
  const int g_end = static_cast<int>(static_cast<long long>(part + 1) * groups / parts);
  const size_t panel_values = static_cast<size_t>(l.cin) * NB;  // int16 weights of one position's panel
  const size_t position = static_cast<size_t>(tiles) * l.cin;    // int16 values of V per position
  const F inv = V::set1(l.inv_out), top = V::set1(255.0f);
  alignas(64) std::int32_t m[16 * MR * NB];  // one tile group x one panel: 16 positions of MR x NB sums
  size_t po[MR];
  for (int p = 0; p < MR; p++) po[p] = static_cast<size_t>(p) * NB;
  for (int g = g_begin; g < g_end; g++) {
    const int t0 = g * MR;
    const int count = min_int(MR, tiles - t0);
    for (int panel = p_begin; panel < p_end; panel++) {
      for (int xi = 0; xi < 16; xi++) {
        const std::int16_t* px[MR];
        for (int p = 0; p < MR; p++)
          px[p] = v + xi * position + static_cast<size_t>(t0 + min_int(p, count - 1)) * l.cin;
        const std::int16_t* w = l.wino_weight + (static_cast<size_t>(xi) * (l.cout / NB) + panel) * panel_values;
        wino_tile<V>(px, l.cin / 2, w, m + xi * MR * NB, po, count);
      }
      for (int p = 0; p < count; p++) {
        const int t = t0 + p, img = t / per_image, ty = t % per_image / l.tiles_w, tx = t % l.tiles_w;
        const int rows = min_int(2, l.ho - ty * 2), cols = min_int(2, l.wo - tx * 2);
        const size_t at = (static_cast<size_t>(img) * l.ho * l.wo + static_cast<size_t>(ty) * 2 * l.wo +
                           static_cast<size_t>(tx) * 2) * l.cout + static_cast<size_t>(panel) * NB;
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
          const std::int32_t* src = m + p * NB + h * W;  // position xi of this tile: src + xi * MR * NB
          I t2[2][4];  // A2^T m
#pragma GCC unroll 2
          for (int i = 0; i < 2; i++) {
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
              I s = V::izero();
#pragma GCC unroll 4
              for (int k = 0; k < 4; k++)
                s = iaxpy<V, kLanes32>(kWinoAT[i][k], V::iload(src + (k * 4 + j) * MR * NB), s);
              t2[i][j] = s;
            }
          }
          const int c = panel * NB + h * W;
          const F scale = V::loadf(l.scale + c), bias = V::loadf(l.bias + c);
#pragma GCC unroll 2
          for (int i = 0; i < 2; i++) {  // 4 S = t2 A2
#pragma GCC unroll 2
            for (int j = 0; j < 2; j++) {
              I s = V::izero();
#pragma GCC unroll 4
              for (int k = 0; k < 4; k++) s = iaxpy<V, kLanes32>(kWinoAT[j][k], t2[i][k], s);
              F r = V::fma(V::cvt(V::srai2(s)), scale, bias);
              if (relu) r = V::max(r, V::fzero());
              if (i >= rows || j >= cols) continue;
              const size_t o = at + (static_cast<size_t>(i) * l.wo + j) * l.cout + h * W;
              if (l.out_f32)  // the real values (ops.conv_int8's fp32 output: its tests read the exact sums)
                V::storef(static_cast<float*>(out) + o, r);
              else
                V::store_u8(static_cast<std::uint8_t*>(out) + o, V::min(V::max(V::mul(r, inv), V::fzero()), top));
            }
          }
        }
      }
    }
  }
}

}  // namespace
