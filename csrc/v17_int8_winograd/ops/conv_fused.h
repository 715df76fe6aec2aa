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
// set (made by its kernels_<isa>.cpp); conv_int8() runs one layer alone, for tests. The kernels exist for AVX2 and
// AVX-512 (kernels_avx512.cpp, kernels_avx512_vnni.cpp); conv_kernels() picks them (dispatch.cpp).
//
// Every kernel takes a batch of n images, stored image after image: the pixels of a layer's GEMM are the
// n x ho x wo pixels of the batch, so each panel of weights loaded for a task is applied to the pixels of every
// image; the task split depends on n (pixel_parts()), never on threads.
//
// Every conv runs on int8 weights (symmetric, per output channel: quantize_weights()) and uint8 activations (per
// tensor; zero point 0 where a conv reads a ReLU output, all but the stem), accumulating in int32. FusedConv carries
// the requantization its store applies. The kernels sum exactly by vpdpbusd (AVX512_VNNI), or by vpmaddubsw and
// vpmaddwd (AVX2, AVX-512BW), which is exact for 7-bit weights only (ConvKernels::weight_max): quantize_weights()
// takes the largest step count.
//
// A 3x3 stride-1 layer whose input is a ReLU output may run as an exact integer Winograd F(2x2, 3x3) (winograd.h):
// FusedConv says so (wino), ConvKernels carries the two Winograd passes, and conv_int8() runs such a layer too.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "ops.h"

// A conv layer with its BatchNorm folded in: shapes, task split, weights and bias.
struct FusedConv {
  int cin = 0, cout = 0, k = 1, stride = 1, pad = 0;
  int h = 0, w = 0;    // input size, before padding
  int ho = 0, wo = 0;  // output size
  int group = 1;       // panels of NB output channels per task: their weights stay in L2 while a task runs
  // int8, packed [cout / NB][k][quads][NB][4] (quads = the k * cin taps of a kernel row in groups of 4, the last one
  // padded with zero weights): 4 consecutive taps of one output channel in each 32-bit lane, the operand layout of
  // vpdpbusd. The store computes, per output value,
  //   r = float(acc) * scale[o] + bias[o]             (fma; scale[o] = input scale x the channel's weight scale)
  //   r = float(res) * res_scale + r   or  r + res    (uint8 residual, or fp32 residual when res_f32)
  //   r = max(r, 0) when relu
  //   out = r (out_f32), or clamp(round_half_even(r * inv_out), 0, 255) as uint8
  // in this order on every instruction set, so the paths agree bit for bit.
  int quads = 0;
  const std::int8_t* weight = nullptr;
  const float* bias = nullptr;    // [cout]: BatchNorm shift folded in
  const float* scale = nullptr;  // [cout]
  float res_scale = 0.0f;        // real units per step of a uint8 residual
  float inv_out = 0.0f;          // uint8 output steps per real unit: 1 / the output's scale
  bool out_f32 = false;          // the output is fp32 real values (the downsample branch), not uint8
  bool res_f32 = false;          // the residual is fp32 real values (the downsample's output)
  // wino: this 3x3 stride-1 conv runs as Winograd F(2x2, 3x3) (winograd.h) on tiles_h x tiles_w tiles of 2x2
  // outputs per image, with wino_weight, its transformed weights ([16][cout / NB][cin / 2][NB][2] int16), in place
  // of weight, in tasks of wino_group panels; it adds no residual (the bottleneck's conv2 stores uint8 with ReLU).
  bool wino = false;
  int tiles_h = 0, tiles_w = 0, wino_group = 1;
  const std::int16_t* wino_weight = nullptr;
};

// The conv kernels for one instruction set, each on a batch of n images. task(): one task of a layer, see
// conv_tasks(). `in` is the layer's input, n uint8 images, already zero-padded when pad > 0 (so each is
// (h + 2 pad) x (w + 2 pad) x cin); out and residual (nullptr, or the tensor to add, the output's shape) are uint8
// or fp32 as the layer says (FusedConv::out_f32, res_f32).
struct ConvKernels {
  const char* isa;  // "avx2", "avx512" (AVX-512BW: vpmaddubsw, vpmaddwd) or "avx512_vnni" (vpdpbusd)
  int nb;  // output channels per packed panel: two vector registers of int32 lanes
  int mr;  // output pixels per micro-kernel tile
  // The weights the kernels sum exactly: -(weight_max + 1) .. weight_max; 63 (7 bits) for vpmaddubsw, whose pairs
  // of u8 x s8 products saturate at int16 (2 x 255 x 64 = 32640 fits, 2 x 255 x 127 does not), 127 for vpdpbusd.
  int weight_max;
  void (*task)(const FusedConv& layer, int n, const std::uint8_t* in, void* out, const void* residual, bool relu,
               int task);
  // One task of each pass of a Winograd layer (winograd.h) on n images: the input transform of the unpadded uint8
  // input into v; the GEMMs from v and the output transform into the output (bias, ReLU; uint8, or fp32 when
  // out_f32).
  void (*wino_input)(const FusedConv& layer, int n, const std::uint8_t* in, std::int16_t* v, int task);
  void (*wino_task)(const FusedConv& layer, int n, const std::int16_t* v, void* out, bool relu, int task);
  // The widest input of a 3x3 stride-1 conv that these kernels run faster as Winograd than directly, measured on the
  // network (README.md): the int16 GEMMs multiply at half vpdpbusd's rate, so never with VNNI (0); without it,
  // vpmaddwd's pairs against vpmaddubsw's triples, until the transformed weights (3.6 times the int8 ones) no longer
  // stay in cache: 128 input channels on AVX2's 5 x 16 tiles, 256 on AVX-512's 7 x 32.
  int wino_max_cin;
};
ConvKernels conv_kernels_avx2();
ConvKernels conv_kernels_avx512();       // only call when cpu_has_avx512() (AVX-512F and BW)
ConvKernels conv_kernels_avx512_vnni();  // only call when cpu_has_avx512_vnni()
bool cpu_has_avx512();                   // CPUID, via the compiler's __builtin_cpu_supports: AVX-512F and BW
bool cpu_has_avx512_vnni();              // ... and AVX512_VNNI
// The kernels for isa: "avx2", "avx512", "avx512_vnni", "auto" (the best this CPU has), or "" for $PYRESNET_ISA if
// set, else auto. std::invalid_argument naming the missing CPU feature for a path the CPU lacks, or for any other
// name one starting "isa must be".
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
// Winograd F(2x2, 3x3) when wino. Throws std::invalid_argument when p.cout is not a multiple of the panel width
// kern.nb, or for a Winograd layer the kernels cannot run (not 3x3 stride 1 pad 1, or channels not multiples of 64).
FusedConv plan_conv(Shape in, ConvParams p, const ConvKernels& kern, bool wino = false);

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

// Symmetric per-output-channel quantization of OHWI weights (cout rows of r floats) to `bits` bits (7 or 8):
// qmax = 2^(bits - 1) - 1, step[o] = max |w[o, :]| / qmax (1 for an all-zero row), q = round_half_even(w / step[o]),
// in -qmax .. qmax.
void quantize_weights(const float* ohwi, int cout, size_t r, int bits, std::int8_t* q, float* step);

// Packs int8 OHWI weights into the panels of FusedConv::weight (cout / nb panels of k * quads * nb * 4 bytes,
// quads = ceil(k * cin / 4)).
void pack_panels(const std::int8_t* ohwi, int cout, int k, int cin, int nb, std::int8_t* packed);

// Row `row` (0 .. n (h + 2 pad) - 1) of the zero-padded copy of n HWC images, image after image; one task per row.
void pad_row(const std::uint8_t* in, Shape s, int pad, std::uint8_t* out, int row);
// The same row of n fp32 images quantized on the way: clamp(round_half_even(x * inv_step) + zero, 0, 255), the
// border at the zero point (the stem's input, signed: real = step * (q - zero)).
void quantize_pad_row(const float* in, Shape s, int pad, float inv_step, int zero, std::uint8_t* out, int row);

// One int8 conv layer alone on n uint8 images, as the network runs it: int8 OHWI weights packed (transformed when
// wino), the input zero-padded (direct) or transformed (wino), every task run on the calling thread; scale, bias,
// res_scale, inv_out, out_f32 and res_f32 as in FusedConv (residual: nullptr, uint8, or fp32 when res_f32; out: uint8,
// or fp32 when out_f32). For tests; it allocates. std::invalid_argument for a shape the kernels cannot run, or a weight
// outside kern's exact range.
void conv_int8(const std::uint8_t* in, int n, Shape s, const std::int8_t* weight, const float* scale,
               const float* bias, ConvParams p, const void* residual, bool res_f32, float res_scale, bool relu,
               bool out_f32, float inv_out, const ConvKernels& kern, bool wino, void* out);
