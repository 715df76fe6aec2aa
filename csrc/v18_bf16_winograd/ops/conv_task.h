// conv_task.h — one task of a conv layer: which output pixels and channels it computes, and in which order, with
// the micro-kernel of microkernel.h.
//
// A task is a group of panels of NB output channels x one of the layer's ranges of pixel tiles, with the
// tiles outer: each tile's input is read once for the whole group, whose weights stay in L2. Same
// anonymous-namespace template code as microkernel.h, instantiated per instruction set.
//
// The pixels are those of a batch of n images, image after image; a tile may hold pixels of two images (each
// pixel's reduction is its own), so a group's weights are applied to every image of the batch in one task.
//
// The input, weights, residual and output are bf16.
#pragma once
#include <cstddef>

#include "conv_fused.h"
#include "microkernel.h"

namespace {

// One task of a layer on n images: the panels of group task / parts, the tiles of pixel range task % parts, with
// parts = pixel_parts(). Tiles are the outer loop: a tile's input rows stay in L1 while every panel of the group
// (in L2) is applied to them, so the input is read once per group rather than once per panel. `in` is the layer's
// input, n images, each zero-padded when pad > 0.
template <class V>
void conv_task(const FusedConv& l, int n, const bf16_t* in, bf16_t* out, const bf16_t* residual, bool relu,
               int task) {
  constexpr int NB = 2 * V::kWidth, MR = V::kTileM;
  const int plane = l.ho * l.wo;  // output pixels per image
  const int m_total = n * plane;  // pixel m is pixel m % plane of image m / plane
  const int tiles = (m_total + MR - 1) / MR;
  const int parts = pixel_parts(tiles, l.cout / NB / l.group);
  const int p_begin = task / parts * l.group, p_end = p_begin + l.group, part = task % parts;
  const int t_begin = static_cast<int>(static_cast<long long>(part) * tiles / parts);
  const int t_end = static_cast<int>(static_cast<long long>(part + 1) * tiles / parts);
  const int in_w = l.w + 2 * l.pad;  // the input is the padded copy when pad > 0
  const size_t rs = static_cast<size_t>(in_w) * l.cin;
  const size_t in_image = static_cast<size_t>(l.h + 2 * l.pad) * rs;  // values per input image
  const int run = l.run;  // k * cin rounded up to even
  const size_t panel_values = static_cast<size_t>(l.k) * run * NB;
  const bf16_t* px[MR];
  size_t po[MR];
  for (int t = t_begin; t < t_end; t++) {
    const int m0 = t * MR;
    const int count = min_int(MR, m_total - m0);
    for (int p = 0; p < MR; p++) {
      const int m = m0 + min_int(p, count - 1);  // a short last tile repeats its last pixel
      const int img = m / plane, oh = m % plane / l.wo, ow = m % l.wo;
      px[p] = in + img * in_image +
              (static_cast<size_t>(oh) * l.stride * in_w + static_cast<size_t>(ow) * l.stride) * l.cin;
      po[p] = static_cast<size_t>(m) * l.cout + static_cast<size_t>(p_begin) * NB;
    }
    for (int panel = p_begin; panel < p_end; panel++) {
      micro_tile<V>(px, l.k, rs, run, l.weight + panel * panel_values, l.bias + panel * NB, out, residual, po, count,
                    relu);
      for (int p = 0; p < MR; p++) po[p] += NB;
    }
  }
}

}  // namespace
