// network.cpp — v8_winograd: ResNet-50 with BatchNorm folded into packed weights, a register-tiled conv kernel,
// and Winograd's F(m x m, 3 x 3) for the 3x3 stride-1 convs.
//
// v7_fused -> v8_winograd: the thirteen 3x3 stride-1 convs run as Winograd F(4x4, 3x3) (layer1, layer2) or
// F(2x2, 3x3) (layer3, layer4): their weights are transformed at load (ops/winograd.cpp), their inputs and outputs
// at run time, around v7's micro-kernel (ops/winograd.h); warm median 48.4 -> 39.9 ms on AMD EPYC, 2 threads.
// details: README.md
//
// The constructor makes the walk over the layer shapes once, as since v4, to register every tensor and check the
// buffer sizes; reads the weights into a temporary pool; folds each BatchNorm into its conv and packs the result;
// and checks that the generated forward pass was generated from the same layer list. forward() locks the buffers
// and the pool and calls the generated code.
#include "network.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/winograd.h"
#include "weights.h"

// The thread count is checked before anything is read or started: a nonsense count is the caller's error.
static int checked_threads(int threads) {
  if (threads < 1 || threads > ResNet50::kMaxThreads)
    throw std::invalid_argument("threads must be a whole number from 1 to " + std::to_string(ResNet50::kMaxThreads) +
                                ", got " + std::to_string(threads));
  return threads;
}

// The kernels for `isa` ("" = $PYRESNET_ISA, else the best the CPU has).
static ConvKernels choose_kernels(std::string isa) {
  if (isa.empty()) {
    const char* env = std::getenv("PYRESNET_ISA");
    isa = env && *env ? env : "auto";
  }
  if (isa == "avx2") return conv_kernels_avx2();
  if (isa == "avx512") {
    if (!cpu_has_avx512()) throw std::invalid_argument("isa 'avx512' asked for, but this CPU has no AVX-512F");
    return conv_kernels_avx512();
  }
  if (isa == "auto") return cpu_has_avx512() ? conv_kernels_avx512() : conv_kernels_avx2();
  throw std::invalid_argument("isa must be 'avx2', 'avx512' or 'auto', got '" + isa + "'");
}

// v8_winograd: the Winograd tile size m for a 3x3 stride-1 conv on an h x h input, chosen by measurement
// (README.md, `pyresnet profile -v v8`, 2 threads): F(4x4, 3x3) on layer1 and layer2 (56x56, 28x28: 0.51-0.58 ms
// a layer against 0.72-0.89 ms with F(2x2) and 1.20-1.22 ms direct); F(2x2, 3x3) on layer3 and layer4, where
// F(4x4) is no faster (14x14: 0.74-0.80 ms both) or slower (7x7: 1.5 ms, against 1.11-1.16 ms with F(2x2)): 4x4
// tiles over 14x14 and 7x7 outputs waste a quarter to a third of their outputs at the border, and their weights,
// 4x the 3x3 ones, stream from memory.
static int wino_tile(int h) { return h >= 28 ? 4 : 2; }

ResNet50::ResNet50(const std::string& weights_dir, int threads, const std::string& isa, bool winograd)
    : kernels_(choose_kernels(isa)),
      buffers_(std::make_unique<Buffers>()),
      workers_(std::make_unique<ThreadPool>(checked_threads(threads))) {
  // 1. The layer list: each conv's shape, and the names of its tensors (kept for step 3, then dropped).
  // convs_ is filled in load order (per block: conv1, conv2, conv3, downsample), the order generated_forward()
  // indexes it in.
  struct Named {
    int index;
    std::string conv, bn;
  };
  std::vector<Named> named;
  WeightPool raw;            // the weights as stored; dropped once folded and packed
  size_t largest = 0;        // the largest activation met, to check kMaxActivation
  size_t largest_pad = 0;    // the largest padded conv input, to check kMaxPadded
  size_t largest_wino = 0;   // the largest transformed tensor of a Winograd layer, to check kMaxWino
  size_t packed_floats = 0;  // conv panels and biases, every one rounded up to a cache line
  auto round16 = [](size_t n) { return (n + 15) / 16 * 16; };
  int next = 0;
  auto conv_bn = [&](const std::string& conv, const std::string& bn, Shape in, ConvParams p) {
    if (next == kConvs) throw std::logic_error("ResNet50: more conv layers than kConvs");
    if (p.cout % kernels_.nb != 0) throw std::logic_error("ResNet50: output channels not a multiple of a panel");
    FusedConv& l = convs_[next];
    const Shape out = conv2d_shape(in, p);
    l.cin = in.c;
    l.cout = p.cout;
    l.k = p.kernel;
    l.stride = p.stride;
    l.pad = p.pad;
    l.h = in.h;
    l.w = in.w;
    l.ho = out.h;
    l.wo = out.w;
    // As many panels per task as fit in kGroupBytes (a divisor of the panel count); then enough pixel ranges for
    // kMinTasks tasks, so the narrow layers keep many cores busy too; never more pixel ranges than tiles.
    const int panels = p.cout / kernels_.nb;
    const int tiles = (out.h * out.w + kTileM - 1) / kTileM;
    const size_t r = static_cast<size_t>(p.kernel) * p.kernel * in.c;
    const size_t panel_bytes = r * kernels_.nb * sizeof(float);
    l.group = 1;
    for (int g = 1; g <= panels; g++)
      if (panels % g == 0 && g * panel_bytes <= kGroupBytes) l.group = g;
    const int groups = panels / l.group;
    l.m_parts = std::max(1, std::min(tiles, (kMinTasks + groups - 1) / groups));
    raw.add(conv + ".weight", p.cout * r);
    for (const char* t : {".running_mean", ".running_var", ".weight", ".bias"}) raw.add(bn + t, p.cout);
    if (winograd && p.kernel == 3 && p.stride == 1 && p.pad == 1) l.wino = wino_tile(in.h);
    if (l.wino) {
      if (in.c % kWinoChunk != 0 || p.cout % kWinoChunk != 0 || in.c > kWinoMaxChannels)
        throw std::logic_error("ResNet50: a Winograd layer's channels must be a multiple of kWinoChunk");
      l.tiles_h = (out.h + l.wino - 1) / l.wino;
      l.tiles_w = (out.w + l.wino - 1) / l.wino;
      const size_t a2 = static_cast<size_t>(l.wino + 2) * (l.wino + 2);
      const size_t t = static_cast<size_t>(l.tiles_h) * l.tiles_w;
      l.m_parts = 1;  // (m + 2)^2 x panels GEMM tasks: at least 16 x 4
      largest_wino = std::max(largest_wino, a2 * t * std::max(in.c, p.cout));
    }
    packed_floats += round16(p.cout * packed_per_channel(l)) + round16(p.cout);
    named.push_back({next++, conv, bn});
    largest = std::max(largest, out.size());
    if (p.pad > 0 && l.wino == 0)
      largest_pad = std::max(largest_pad, static_cast<size_t>(in.h + 2 * p.pad) * (in.w + 2 * p.pad) * in.c);
    return out;
  };
  Shape s = conv_bn("conv1", "bn1", {kInput, kInput, 3}, {64, 7, 2, 3});  // 112x112x64
  s = maxpool_shape(s, 3, 2, 1);                                          // 56x56x64
  const int blocks[4] = {3, 4, 6, 3};
  const int widths[4] = {64, 128, 256, 512};
  int i = 0;
  for (int stage = 0; stage < 4; stage++) {
    const int width = widths[stage];
    for (int b = 0; b < blocks[stage]; b++, i++) {
      const std::string prefix = "layer" + std::to_string(stage + 1) + "." + std::to_string(b);
      const int stride = (b == 0 && stage > 0) ? 2 : 1;
      const Shape sa = conv_bn(prefix + ".conv1", prefix + ".bn1", s, {width, 1, 1, 0});
      const Shape sb = conv_bn(prefix + ".conv2", prefix + ".bn2", sa, {width, 3, stride, 1});
      const Shape sc = conv_bn(prefix + ".conv3", prefix + ".bn3", sb, {4 * width, 1, 1, 0});
      if (b == 0) conv_bn(prefix + ".downsample.0", prefix + ".downsample.1", s, {4 * width, 1, stride, 0});
      s = sc;
    }
  }  // 7x7x2048
  if (i != kBlocks || next != kConvs || s.c != kFeatures || largest != kMaxActivation || largest_pad > kMaxPadded ||
      largest_wino > kMaxWino)
    throw std::logic_error("ResNet50: the layer walk does not match kBlocks, kConvs, kFeatures or the buffer sizes");
  // The generated code must have been generated from this same layer list.
  int count = 0;
  const GeneratedConv* gen = generated_conv_params(&count);
  bool same = count == kConvs;
  for (int k = 0; same && k < kConvs; k++) {
    const FusedConv& l = convs_[k];
    const ConvParams a = gen[k].p;
    same = gen[k].cin == l.cin && a.cout == l.cout && a.kernel == l.k && a.stride == l.stride && a.pad == l.pad;
  }
  if (!same) throw std::logic_error("ResNet50: generated.cpp was generated from another layer list");
  raw.add("fc.weight", static_cast<size_t>(kClasses) * kFeatures);
  raw.add("fc.bias", kClasses);
  packed_floats += round16(static_cast<size_t>(kClasses) * kFeatures) + round16(kClasses);

  // 2. Every tensor read once, into the temporary pool (WeightsError naming the tensor for a bad file).
  raw.load(weights_dir);

  // 3. Fold and pack, once: w' = w * gamma / sqrt(var + eps) per output channel, bias = beta - mean * that scale
  // (computed in double), then the scaled OHWI rows go into panels of nb channels.
  packed_.reset(static_cast<float*>(std::aligned_alloc(64, packed_floats * sizeof(float))));
  if (!packed_) throw std::bad_alloc();
  float* dst = packed_.get();
  std::vector<float> scaled;
  for (const Named& n : named) {
    FusedConv& l = convs_[n.index];
    const size_t r = static_cast<size_t>(l.k) * l.k * l.cin, c = static_cast<size_t>(l.cout);
    const float* w = raw.get(n.conv + ".weight", c * r);
    const float* mean = raw.get(n.bn + ".running_mean", c);
    const float* var = raw.get(n.bn + ".running_var", c);
    const float* gamma = raw.get(n.bn + ".weight", c);
    const float* beta = raw.get(n.bn + ".bias", c);
    scaled.resize(c * r);
    float* bias = dst + round16(c * packed_per_channel(l));
    for (size_t o = 0; o < c; o++) {
      const double scale = static_cast<double>(gamma[o]) / std::sqrt(static_cast<double>(var[o]) + 1e-5);
      for (size_t k = 0; k < r; k++) scaled[o * r + k] = static_cast<float>(w[o * r + k] * scale);
      bias[o] = static_cast<float>(beta[o] - mean[o] * scale);
    }
    if (l.wino)
      wino_pack_weights(scaled.data(), l.cout, l.cin, l.wino, kernels_.nb, dst);
    else
      pack_panels(scaled.data(), l.cout, static_cast<int>(r), kernels_.nb, dst);
    l.weight = dst;
    l.bias = bias;
    dst = bias + round16(c);
  }
  const size_t fcw = static_cast<size_t>(kClasses) * kFeatures;
  std::copy_n(raw.get("fc.weight", fcw), fcw, dst);
  fc_weight_ = dst;
  dst += round16(fcw);
  std::copy_n(raw.get("fc.bias", kClasses), kClasses, dst);
  fc_bias_ = dst;
}

void ResNet50::forward(const float* image, float* logits, Profiler* prof) const {
  // The buffers belong to the model, so two calls at once on one model would overwrite each other's activations:
  // the mutex makes them take turns (the pool, too, runs one parallel_for at a time). The binding has released the GIL, so a waiting Python thread blocks here,
  // without the GIL; locking a std::mutex allocates nothing.
  std::lock_guard<std::mutex> lock(mutex_);
  Buffers& buf = *buffers_;

  float* const main[3] = {buf.main[0], buf.main[1], buf.main[2]};
  generated_forward(kernels_, convs_.data(), fc_weight_, fc_bias_, main, buf.shortcut, buf.padded, buf.wino_v,
                    buf.wino_m, buf.features, image, logits, *workers_, prof);
}
