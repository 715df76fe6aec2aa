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
// A 3x3 stride-1 layer may run as Winograd F(m x m, 3 x 3) (winograd.h): FusedConv says so, ConvKernels carries the
// three Winograd passes, and conv_winograd() runs one such layer alone.
//
// Every kernel takes a batch of n images, stored image after image: the pixels of a layer's GEMM are the
// n x ho x wo pixels of the batch (the Winograd tiles, n x tiles_h x tiles_w), so each panel of weights loaded for a
// task is applied to the pixels of every image; the task split depends on n (pixel_parts()), never on threads.
//
// Weights and activations are bf16 (ops.h), bias fp32; the kernels exist for three paths, 'avx2' and 'avx512' (bf16
// widened to fp32, FMA) and 'avx512_bf16' (vdpbf16ps, kernels_avx512_bf16.cpp). The kernels take the taps of a
// kernel row in pairs: pack_panels() interleaves the weights of each pair, and an odd row of taps (k * cin odd: the
// stem's 7 x 3) gets a zero weight at its end (FusedConv::run); pad_row_f32() converts an fp32 input to bf16.
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
  // taps per kernel row as packed, k * cin rounded up to even (the kernels take pairs). When it is odd, the extra
  // tap has a zero weight and reads the value that follows the row in memory (the next input pixel, or a padded
  // row's zeros): inside the buffer, which has at least one value after the last row read.
  int run = 0;
  // wino = m > 0 runs this 3x3 stride-1 conv as Winograd F(m x m, 3 x 3) (winograd.h), on tiles_h x tiles_w
  // tiles of m x m outputs per image. 0: direct.
  int wino = 0, tiles_h = 0, tiles_w = 0;
  // bf16, packed: [cout / NB][k * run / 2][NB][2], BatchNorm scale folded in (pack_panels()); Winograd:
  // [(m + 2)^2][cout / NB][cin / 2][NB][2] (wino_pack_weights())
  const bf16_t* weight = nullptr;
  const float* bias = nullptr;    // [cout], fp32: BatchNorm shift folded in
};

// The conv kernels for one instruction set, each on a batch of n images. task(): one task of a layer, see
// conv_tasks(). `in` is the layer's input, n images of bf16, already zero-padded when pad > 0 (so each is
// (h + 2 pad) x (w + 2 pad) x cin); residual is nullptr or the tensor to add (the output's shape). The three passes
// of a Winograd layer (winograd.h): input transform from the bf16 input into v (bf16), the GEMMs from v into m
// (fp32), output transform from m into out (bias, then ReLU when relu, rounded to bf16).
struct ConvKernels {
  const char* isa;  // "avx2", "avx512" or "avx512_bf16"
  int nb;  // output channels per packed panel: two vector registers of fp32 accumulators
  int mr;  // output pixels per micro-kernel tile
  void (*task)(const FusedConv& layer, int n, const bf16_t* in, bf16_t* out, const bf16_t* residual, bool relu,
               int task);
  void (*wino_input)(const FusedConv& layer, int n, const bf16_t* in, bf16_t* v, int task);
  void (*wino_gemm)(const FusedConv& layer, int n, const bf16_t* v, float* m, int task);
  void (*wino_output)(const FusedConv& layer, int n, const float* m, bf16_t* out, bool relu, int task);
};
ConvKernels conv_kernels_avx2();
ConvKernels conv_kernels_avx512();       // only call when cpu_has_avx512()
ConvKernels conv_kernels_avx512_bf16();  // only call when cpu_has_avx512_bf16()
bool cpu_has_avx512();                   // CPUID, via the compiler's __builtin_cpu_supports
bool cpu_has_avx512_bf16();              // AVX512_BF16, with the AVX-512F and BW it needs
// The kernels for isa: "avx2", "avx512", "avx512_bf16", "auto" (the best this CPU has), or "" for $PYRESNET_ISA if
// set, else auto. std::invalid_argument for a path the CPU lacks (naming the missing feature), or any other name.
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

// The layer that reads an `in`-shaped input with parameters p and runs on kern (weight and bias not set yet), as
// Winograd F(wino x wino, 3 x 3) when wino is 2 or 4. Throws std::invalid_argument when p.cout is not a multiple of
// the panel width kern.nb, or for a Winograd layer the kernels cannot run (see winograd.h).
FusedConv plan_conv(Shape in, ConvParams p, const ConvKernels& kern, int wino = 0);

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

// Packs fp32 OHWI weights (cout x k kernel rows of k * cin taps) into bf16 panels of nb output channels,
// [cout / nb][k * run / 2][nb][2], run = k * cin rounded up to even (a zero tap ends an odd row), each weight
// rounded to nearest even, the two taps of a pair side by side per output channel.
void pack_panels(const float* ohwi, int cout, int k, int cin, int nb, bf16_t* packed);

// Row `row` (0 .. n (h + 2 pad) - 1) of the zero-padded copy of n HWC images, image after image; one task per row.
void pad_row(const bf16_t* in, Shape s, int pad, bf16_t* out, int row);
// The same from fp32 images (the network's input, the conv_fused op's), rounded to bf16. pad may be 0: then it
// only converts.
void pad_row_f32(const float* in, Shape s, int pad, bf16_t* out, int row);

// One conv layer alone on n fp32 images of shape s, as the network runs it: rounds the input, the (folded) OHWI
// weights and the residual to bf16, plans the layer, zero-pads the input and runs every task on the calling thread.
// out = bf16(relu(conv + bias + residual)), widened back to fp32. For tests; it allocates its packed weights and
// converted tensors. std::invalid_argument for a shape the kernels cannot run.
void conv_fused(const float* in, int n, Shape s, const float* weight, const float* bias, ConvParams p,
                const float* residual, bool relu, const ConvKernels& kern, float* out);
// The same for a 3x3 stride-1 pad-1 conv as Winograd F(m x m, 3 x 3), as the network runs it: the input rounded to
// bf16, the fp32 (folded) OHWI weights transformed in double and each transformed weight rounded to bf16, the three
// passes run on the calling thread. For tests.
void conv_winograd(const float* in, int n, Shape s, const float* weight, const float* bias, int cout, int m,
                   bool relu, const ConvKernels& kern, float* out);
