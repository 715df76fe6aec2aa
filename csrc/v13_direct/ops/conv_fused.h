// conv_fused.h — a conv layer with its BatchNorm folded in (FusedConv), how a layer is planned, and the folding.
//
// Inference BatchNorm is a per-channel affine map, so it folds into the conv before it: scaled weights and a bias.
// The conv's store then adds that bias, adds the residual where the layer has one and applies ReLU, so no
// BatchNorm, add or ReLU pass over memory is left.
//
// A layer runs as a GEMM on the register-tiled micro-kernel (microkernel.h, conv_task.h): its weights are packed
// into panels of NB output channels (pack_panels), a 3x3 or 7x7 conv reads a zero-padded copy of its input
// (pad_row), and it is split into tasks: groups of panels (as many as fit in kGroupBytes, to stay in L2, planned
// by plan_conv()) x ranges of pixel tiles (pixel_parts()). ConvKernels is the table of kernels for one instruction
// set (made by its kernels_<isa>.cpp); conv_fused() runs one layer alone, for tests. The kernels exist for AVX2 and
// AVX-512 (kernels_avx512.cpp); conv_kernels() picks them (dispatch.cpp).
//
// Every kernel takes a batch of n images, stored image after image: the pixels of a layer's GEMM are the
// n x ho x wo pixels of the batch, so each panel of weights loaded for a task is applied to the pixels of every
// image; the task split depends on n (pixel_parts()), never on threads.
#pragma once
#include <cstddef>
#include <string>

#include "ops.h"

// A conv layer with its BatchNorm folded in: shapes, task split, weights and bias.
struct FusedConv {
  int cin = 0, cout = 0, k = 1, stride = 1, pad = 0;
  int h = 0, w = 0;    // input size, before padding
  int ho = 0, wo = 0;  // output size
  int group = 1;       // panels of NB output channels per task: their weights stay in L2 while a task runs
  const float* weight = nullptr;  // packed: [cout / NB][k * k * cin][NB], BatchNorm scale folded in
  const float* bias = nullptr;    // [cout]: BatchNorm shift folded in
};

// The conv kernels for one instruction set, each on a batch of n images. task(): one task of a layer, see
// conv_tasks(). `in` is the layer's input, n images, already zero-padded when pad > 0 (so each is (h + 2 pad) x
// (w + 2 pad) x cin); residual is nullptr or the tensor to add (the output's shape).
struct ConvKernels {
  const char* isa;  // "avx2" or "avx512"
  int nb;  // output channels per packed panel: two vector registers
  int mr;  // output pixels per micro-kernel tile
  void (*task)(const FusedConv& layer, int n, const float* in, float* out, const float* residual, bool relu,
               int task);
};
ConvKernels conv_kernels_avx2();
ConvKernels conv_kernels_avx512();  // only call when cpu_has_avx512()
bool cpu_has_avx512();              // CPUID, via the compiler's __builtin_cpu_supports
// The kernels for isa: "avx2", "avx512", "auto" (the best this CPU has), or "" for $PYRESNET_ISA if set, else auto.
// std::invalid_argument for AVX-512 on a CPU without it, or for any other name.
ConvKernels conv_kernels(std::string isa);

// Tasks a layer is split into, at least (where it has enough pixel tiles), so that the narrow layers keep many cores
// busy too.
constexpr int kMinTasks = 32;
// The weights a conv task applies to each tile of its pixels, at most (unless one panel is larger): a group of
// panels that stays in the per-core L2 cache while the task's input rows stay in L1.
constexpr size_t kGroupBytes = 128 * 1024;
// Micro-kernel tiles in one task's range of pixels, at most, unless kMinTasks needs longer ranges. A batch makes a
// layer's pixel ranges n times longer, which is the point (each task loads its panels once for all of them); past
// this, a larger batch means more tasks rather than longer ones, so that many cores still share the work. Not
// reached in layer4 up to max_batch 16; a smaller limit measured slower (README.md).
constexpr int kMaxTaskTiles = 256;

// The layer that reads an `in`-shaped input with parameters p and runs on kern (weight and bias not set yet).
// Throws std::invalid_argument when p.cout is not a multiple of the panel width kern.nb.
FusedConv plan_conv(Shape in, ConvParams p, const ConvKernels& kern);

namespace {  // internal in every file: kernels_avx512.cpp's copies must never stand in for the AVX2 files' ones

// The ranges of pixel tiles that each of `groups` groups of panels is cut into, for `tiles` tiles (of all n images):
// enough for kMinTasks tasks, more when a range would exceed kMaxTaskTiles tiles, never more than there are tiles.
inline int pixel_parts(int tiles, int groups) {
  const int for_threads = (kMinTasks + groups - 1) / groups, for_size = (tiles + kMaxTaskTiles - 1) / kMaxTaskTiles;
  const int parts = for_threads > for_size ? for_threads : for_size;
  return parts < 1 ? 1 : parts > tiles ? tiles : parts;
}

// Tasks of a layer on n images: groups of `group` panels of nb output channels x pixel_parts() ranges of the
// batch's pixel tiles. Fixed by the shape, n and the kernels, never by the thread count: each output value is
// computed by one task, the same way whoever runs it, and by the same code in whichever tile its pixel falls.
inline int conv_tasks(const FusedConv& l, const ConvKernels& kern, int n) {
  const int groups = l.cout / kern.nb / l.group;
  return groups * pixel_parts((n * l.ho * l.wo + kern.mr - 1) / kern.mr, groups);
}

}  // namespace

// w'[o] = w[o] * s[o] and bias[o] = beta[o] - mean[o] * s[o], with s[o] = gamma[o] / sqrt(var[o] + eps), computed
// in double: OHWI weights of cout rows of r floats into `weight`, the shift into `bias`.
void fold_batchnorm(const float* ohwi, const float* mean, const float* var, const float* gamma, const float* beta,
                    double eps, int cout, size_t r, float* weight, float* bias);

// Packs OHWI weights (cout rows of r = k * k * cin floats) into panels of nb output channels.
void pack_panels(const float* ohwi, int cout, int r, int nb, float* packed);

// Row `row` (0 .. n (h + 2 pad) - 1) of the zero-padded copy of n HWC images, image after image; one task per row.
void pad_row(const float* in, Shape s, int pad, float* out, int row);

// One conv layer alone on n images of shape s, as the network runs it: plans it, packs the (folded) OHWI weights,
// zero-pads the input and runs every task, on the calling thread. out = conv(in, weight) + bias (+ residual), then
// ReLU if relu. For tests; it allocates its packed weights and padded input. std::invalid_argument for a shape the
// kernels cannot run.
void conv_fused(const float* in, int n, Shape s, const float* weight, const float* bias, ConvParams p,
                const float* residual, bool relu, const ConvKernels& kern, float* out);
