// network.h — ResNet-50 (torchvision's v1.5: the stride sits on the 3x3 conv of each stage's first block) for a
// batch of 224x224 RGB images in HWC layout, built from the ops in ops.h.
//
// The constructor reads every weight once, into a WeightPool (weights.h) it drops after folding (below): forward()
// reads nothing from disk.
//
// The model owns everything an inference touches, set up once by the constructor. Each conv layer is a small struct
// whose weight pointers are resolved at load; the activations live in fixed-size buffers, reused layer
// after layer. forward() allocates nothing, builds no string and looks nothing up by name. The price: the buffers
// are shared by every call on one model, so a mutex lets one call in at a time.
//
// The layer walk of forward() is not written here: codegen.py writes generated.cpp at build time, with
// generated_head() and generated_tail(), the network as straight-line calls. The model keeps the 53 conv layers in
// one array in execution order and hands that array, the fc weights and its buffers to the generated code.
//
// The model owns a ThreadPool (threadpool.h) of `threads` threads, created with it; the generated code runs every
// layer's work on it.
//
// The constructor folds every BatchNorm into its conv (scaled weights and a bias, ops/conv_fused.h) and keeps only
// the folded parameters; the conv adds the bias and the residual and applies ReLU in its store, so there is no
// separate BatchNorm, add or ReLU pass. The constructor is a sequence of named steps (network.cpp).
//
// Every conv runs the register-tiled GEMM micro-kernel (ops/microkernel.h) on weights the constructor packs into
// panels; a 3x3 or 7x7 conv reads a zero-padded copy of its input, in an activation buffer of its own.
//
// The kernels are chosen once, at load, for the CPU (AVX-512 when CPUID reports it, AVX2 otherwise, or what the
// caller forces); isa() reports which.
//
// The constructor chooses, per 3x3 stride-1 conv, Winograd tiles of 4x4 or 2x2 outputs (or none when the caller asks
// for winograd=false) and transforms those layers' weights; two activation buffers hold a Winograd layer's
// transformed input (bf16) and the output of its GEMMs (fp32).
//
// forward() takes a batch of n images. Each image goes alone through the layers up to layer3 (the head), into its
// slot of the batch's input buffer; then up to max_batch images go through layer4, pooling and fc together (the
// tail): its buffers hold max_batch images, image after image, and the conv kernels treat the pixels of all of them
// as one GEMM. A larger batch runs in chunks of max_batch.
//
// The conv weights are packed as bf16 at load and the activation buffers hold bf16; the biases, the pooled features
// and fc stay fp32. isa() reports one of three paths ('avx2', 'avx512', 'avx512_bf16').
#pragma once
#include <array>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ops.h"
#include "ops/conv_fused.h"
#include "common/profile.h"
#include "threadpool.h"
#include "weights.h"

// A conv layer as codegen.py saw it: input channels and parameters.
struct GeneratedConv {
  int cin;
  ConvParams p;
};

// generated.cpp (written by codegen.py at build time).
// The layer list the code was generated from, in execution order; *count receives its length, *first_batched the
// index of the first conv of generated_tail().
const GeneratedConv* generated_conv_params(int* count, int* first_batched);
// The forward pass in two parts. conv[i] is the i-th conv layer in execution order, run by kern; main[0..2],
// shortcut and padded are activation buffers, wino_v and wino_m a Winograd layer's transformed input and GEMM
// output, features the pooled ones; every layer's work runs on tp; prof as in
// ResNet50::forward(). generated_head(): one fp32 image through the layers before layer4, its bf16 output
// (14 x 14 x 1024) into out. generated_tail(): the n images in `in`, one after the other, through the rest, into
// n x 1000 fp32 logits.
void generated_head(const ConvKernels& kern, const FusedConv* conv, bf16_t* const* main, bf16_t* shortcut,
                    bf16_t* padded, bf16_t* wino_v, float* wino_m, const float* image, bf16_t* out, ThreadPool& tp,
                    Profiler* prof);
void generated_tail(const ConvKernels& kern, const FusedConv* conv, const float* fc_weight, const float* fc_bias,
                    bf16_t* const* main, bf16_t* shortcut, bf16_t* padded, bf16_t* wino_v, float* wino_m,
                    float* features, const bf16_t* in, int n, float* logits, ThreadPool& tp, Profiler* prof);

class ResNet50 {
 public:
  static constexpr int kInput = 224;     // input is kInput x kInput x 3, HWC, normalised
  static constexpr int kClasses = 1000;  // output is kClasses logits
  static constexpr int kFeatures = 2048;  // channels after layer4: the pooled features the fc layer reads
  static constexpr int kBlocks = 16;      // bottleneck blocks: 3 + 4 + 6 + 3
  static constexpr int kConvs = 53;       // conv layers: the stem, 3 per block, 4 downsample shortcuts
  static constexpr int kMaxThreads = 1024;  // the same bound as pyresnet.load's check
  static constexpr int kMaxBatch = 1024;    // max_batch at most: the same bound as pyresnet.load's check
  // max_batch when none is given: each image of a batch costs kBatchValues bf16 values and kBatchFloats floats of
  // buffers (2.3 MB); 8 is the
  // fp32 stages' default, whose batches of 16 or 32 measure no faster than 8 on the 2-core Zen 4 of README.md.
  static constexpr int kDefaultBatch = 8;

  // The largest activation of the network, in bf16 values. On the 224x224 input the layers produce (H x W x C):
  //   conv1 7x7/2                                  112 x 112 x   64 = 802816   <- the largest,
  //   layer1: every block's output and downsample   56 x  56 x  256 = 802816   <- tied
  //   maxpool; layer1 conv1, conv2                   56 x  56 x   64 = 200704
  //   layer2.0.conv1 (before its stride-2 3x3)       56 x  56 x  128 = 401408
  //   layer2 block outputs                           28 x  28 x  512 = 401408
  //   layer3 block outputs (and layer3.0.conv1)      14 x  14 x 1024 = 200704
  //   layer4 block outputs (and layer4.0.conv1)       7 x   7 x 2048 = 100352
  // Every activation buffer of the head (the layers before layer4, one image at a time) holds kMaxActivation values
  // (1.6 MB); the constructor walks the layer shapes and checks that this is exactly the largest one.
  static constexpr size_t kMaxActivation = 112 * 112 * 64;
  // The largest zero-padded conv input: layer2.0.conv2's 56x56x128 with a 1-pixel border, 58 x 58 x 128 (the
  // stem's 230 x 230 x 3 and layer1's 58 x 58 x 64 are smaller). The constructor checks it.
  static constexpr size_t kMaxPadded = 58 * 58 * 128;
  // The largest transformed tensor of a Winograd layer: (m + 2)^2 positions x tiles x channels. With the tiles
  // network.cpp chooses it is layer2's, F(4x4) on 7 x 7 tiles: 36 x 49 x 128 (layer3's is 16 x 49 x 256, layer4's
  // 16 x 16 x 512; layer1 runs direct). V holds that many bf16 values, M that many floats. The constructor checks
  // that none is larger.
  static constexpr size_t kMaxWino = 36 * 7 * 7 * 128;
  // The tail (layer4, pooling, fc) holds max_batch images in each buffer; per image, in values: its input, the head's
  // output (14 x 14 x 1024); an activation (layer4.0.conv1's 14 x 14 x 512 output and every 7 x 7 x 2048 one); the
  // padded input of layer4.0.conv2, 16 x 16 x 512; a transformed tensor V of layer4's Winograd F(2x2) layers,
  // 16 x 4 x 4 x 512 (all bf16); and, in fp32, the output M of their GEMMs (as large) and the pooled features.
  // Checked by the constructor, as the head's.
  static constexpr size_t kBatchInput = 14 * 14 * 1024;
  static constexpr size_t kBatchActivation = 7 * 7 * 2048;
  static constexpr size_t kBatchPadded = 16 * 16 * 512;
  static constexpr size_t kBatchWino = 16 * 4 * 4 * 512;
  static constexpr size_t kBatchValues = kBatchInput + 4 * kBatchActivation + kBatchPadded + kBatchWino;  // bf16
  static constexpr size_t kBatchFloats = kBatchWino + kFeatures;                                         // fp32

  // Reads every weight, folds each BatchNorm into its conv and allocates the activation buffers: all the
  // allocation this model will ever do. A bad weights file throws WeightsError naming the tensor.
  // threads: 1 .. kMaxThreads, the size of the model's thread pool (the calling thread + threads - 1 workers);
  // anything else throws std::invalid_argument (ValueError in Python).
  // isa: "avx2", "avx512", "avx512_bf16", or "" for $PYRESNET_ISA if set, else the best the CPU has; asking for a
  // path the CPU lacks, or for anything else, throws std::invalid_argument.
  // winograd: run the 3x3 stride-1 convs as Winograd F(m x m, 3 x 3) (the default), or directly.
  // max_batch: 1 .. kMaxBatch, the images that go through the tail together; its buffers are sized for them (2.3 MB
  // per image); anything else throws std::invalid_argument.
  ResNet50(const std::string& weights_dir, int threads, const std::string& isa = "", bool winograd = true,
           int max_batch = kDefaultBatch);
  int threads() const { return workers_->size(); }
  int max_batch() const { return max_batch_; }
  const char* isa() const { return kernels_.isa; }
  // Whether any conv runs as Winograd.
  bool winograd() const {
    for (const FusedConv& l : convs_)
      if (l.wino) return true;
    return false;
  }
  // images: n >= 1 images of kInput*kInput*3 floats, one after the other; logits: n x kClasses floats. Runs
  // chunks of max_batch images: each image through the head, then the chunk through the tail. Each image's logits
  // are bitwise what it gives alone: every output value is computed by the same code whatever the batch (a pixel's
  // reduction is its own, whichever tile it falls in). Allocates nothing. Safe from several threads, which take
  // turns: the activation buffers belong to the model, and a mutex guards them (see forward()).
  // prof: nullptr, or a Profiler that receives one record per layer (pyresnet profile): per image for the head's
  // layers, per chunk for the tail's; only a profiled call allocates (its records).
  void forward(const float* images, int n, float* logits, Profiler* prof = nullptr) const;

 private:
  // The activation buffers, in one allocation made by the constructor (a set for one image, the head's, and a set
  // for max_batch images, the tail's, image after image in each buffer, plus the tail's input):
  //   main[3]   the main path, in turn: a block reads its input x from one of them and writes the other two,
  //             conv1 -> a, conv2 -> b, conv3 -> a, adding the shortcut and applying ReLU as it stores; a holds
  //             the block's output and is the next block's input, so x moves one buffer on per block.
  //   shortcut  the downsample branch of each stage's first block, run before conv3 (x itself must survive until
  //             conv3 has added it).
  //   padded    the zero-padded copy of a 3x3 or 7x7 conv's input, which the micro-kernel reads.
  //   wino_v, wino_m  a Winograd layer's transformed input and the output of its GEMMs.
  //   features  the 2048 pooled features, the fc layer's input.
  // 64-byte aligned: every buffer starts on a cache line (each size is a whole number of lines), so the conv
  // kernels' 32-byte loads of a row of 8k channels never straddle two lines (at malloc's 16-byte alignment every
  // other one does; README.md).
  struct Buffers {
    bf16_t* main[3];
    bf16_t* shortcut;
    bf16_t* padded;
    bf16_t* wino_v;   // a Winograd layer's transformed input, V
    float* wino_m;    // and the output of its GEMMs, M, fp32
    float* features;  // (the tail's) fp32
  };

  // The constructor's steps (network.cpp). Named: a conv layer and the names of its tensors, for the load only.
  struct Named {
    FusedConv* layer;
    std::string conv, bn;
  };
  std::vector<Named> walk(WeightPool& raw, bool winograd);
  void check_layers() const;
  void fold(const WeightPool& raw, const std::vector<Named>& named);
  void pack(const FusedConv& l, const float* folded, bf16_t* dst) const;
  void allocate_buffers();
  int first_batched_ = 0;  // the index in convs_ of the first conv of the tail (layer4.0.conv1)

  struct FreeDeleter {
    void operator()(unsigned char* p) const { std::free(p); }
  };
  ConvKernels kernels_;                           // the conv kernels for this CPU, chosen at load
  std::unique_ptr<unsigned char[], FreeDeleter> params_;  // 64-byte aligned: packed bf16 conv weights, fp32 biases, fc
  std::array<FusedConv, kConvs> convs_;  // every conv with its BatchNorm folded in, in execution order
  const float* fc_weight_ = nullptr;
  const float* fc_bias_ = nullptr;
  const int max_batch_;
  std::unique_ptr<unsigned char[], FreeDeleter> arena_;  // the buffers' memory, owned by this model: nothing is shared
  Buffers head_{}, tail_{};                      // between two models
  bf16_t* tail_in_ = nullptr;                    // the tail's input: max_batch head outputs
  std::unique_ptr<ThreadPool> workers_;  // created with the model; forward() hands every layer's work to it
  mutable std::mutex mutex_;          // one forward() at a time on the buffers and the pool
};
