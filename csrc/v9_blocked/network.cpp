// network.cpp — the ResNet-50 model: its load, and forward(), which runs the forward pass that codegen.py writes at
// build time (generated.cpp, in the build directory; `pyresnet codegen --out DIR` writes it for reading).
//
// The network is a walk over torchvision's layer list: conv -> BatchNorm -> ReLU, maxpool, sixteen bottleneck
// blocks in four stages, global average pool, fc. The constructor runs named steps: walk() lists the layers
// (plan_conv() gives each its shapes) and registers the tensors they need; check_layers() checks the buffer sizes
// and that the generated code was generated from the same layer list; the weights are read once, into a temporary
// pool; fold() writes every conv's weights with its BatchNorm folded in (fold_batchnorm()), packed into the
// micro-kernel's panels by pack(), and its bias, and fc's parameters, into the model's own arena. The thread pool
// starts with the model; the generated code runs every layer's work on it. forward() locks the buffers and the pool
// and calls the generated code.
#include "network.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "weights.h"

// The thread count is checked before anything is read or started: a nonsense count is the caller's error.
static int checked_threads(int threads) {
  if (threads < 1 || threads > ResNet50::kMaxThreads)
    throw std::invalid_argument("threads must be a whole number from 1 to " + std::to_string(ResNet50::kMaxThreads) +
                                ", got " + std::to_string(threads));
  return threads;
}

ResNet50::ResNet50(const std::string& weights_dir, int threads)
    : kernels_(conv_kernels_avx2()),
      buffers_(std::make_unique<Buffers>()),
      workers_(std::make_unique<ThreadPool>(checked_threads(threads))) {
  WeightPool raw;  // the weights as stored: read once, dropped once folded
  const std::vector<Named> named = walk(raw);
  check_layers();
  raw.load(weights_dir);  // every tensor read once (WeightsError naming the tensor for a bad file)
  fold(raw, named);
}

// 1. The layer list: each conv's shapes and the names of its tensors, which are registered in raw. convs_ is
// filled in execution order, the order the generated code indexes it in: per block conv1, conv2, the downsample
// (first blocks only) and conv3, whose store adds the downsample's output.
std::vector<ResNet50::Named> ResNet50::walk(WeightPool& raw) {
  std::vector<Named> named;
  size_t next = 0;
  auto conv_bn = [&](const std::string& conv, const std::string& bn, Shape in, ConvParams p) {
    if (next == convs_.size()) throw std::logic_error("ResNet50: more conv layers than kConvs");
    FusedConv& l = convs_[next++];
    l = plan_conv(in, p, kernels_);
    raw.add(conv + ".weight", static_cast<size_t>(p.cout) * p.kernel * p.kernel * in.c);
    for (const char* t : {".running_mean", ".running_var", ".weight", ".bias"}) raw.add(bn + t, p.cout);
    named.push_back({&l, conv, bn});
    return conv2d_shape(in, p);
  };
  Shape s = conv_bn("conv1", "bn1", {kInput, kInput, 3}, {64, 7, 2, 3});  // 112x112x64
  s = maxpool_shape(s, 3, 2, 1);                                                   // 56x56x64
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
      if (b == 0) conv_bn(prefix + ".downsample.0", prefix + ".downsample.1", s, {4 * width, 1, stride, 0});
      s = conv_bn(prefix + ".conv3", prefix + ".bn3", sb, {4 * width, 1, 1, 0});
    }
  }  // 7x7x2048
  if (i != kBlocks || next != convs_.size() || s.c != kFeatures)
    throw std::logic_error("ResNet50: the layer walk does not match kBlocks, kConvs or kFeatures");
  raw.add("fc.weight", static_cast<size_t>(kClasses) * kFeatures);
  raw.add("fc.bias", kClasses);
  return named;
}

// 2. The buffers fit the layers, and the generated code was generated from this same layer list.
void ResNet50::check_layers() const {
  size_t largest = 0;  // the largest activation: must be kMaxActivation exactly
  for (const FusedConv& l : convs_) largest = std::max(largest, static_cast<size_t>(l.ho) * l.wo * l.cout);
  size_t largest_pad = 0;  // the largest zero-padded input: must be kMaxPadded exactly
  for (const FusedConv& l : convs_)
    if (l.pad > 0)
      largest_pad = std::max(largest_pad, static_cast<size_t>(l.h + 2 * l.pad) * (l.w + 2 * l.pad) * l.cin);
  if (largest != kMaxActivation || largest_pad != kMaxPadded)
    throw std::logic_error("ResNet50: kMaxActivation or kMaxPadded is not the largest buffer of its kind");
  int count = 0;
  const GeneratedConv* gen = generated_conv_params(&count);
  bool same = count == kConvs;
  for (int k = 0; same && k < kConvs; k++) {
    const FusedConv& l = convs_[k];
    const ConvParams a = gen[k].p;
    same = gen[k].cin == l.cin && a.cout == l.cout && a.kernel == l.k && a.stride == l.stride && a.pad == l.pad;
  }
  if (!same) throw std::logic_error("ResNet50: generated.cpp was generated from another layer list");
}

// 3. The model's own parameters, in one 64-byte aligned arena, each tensor starting on a cache line: per conv its
// weights with the BatchNorm folded in, packed (pack()), and its bias; then fc's weights and bias, copied. The raw
// pool is dropped after this, so the model holds one copy of the weights.
void ResNet50::fold(const WeightPool& raw, const std::vector<Named>& named) {
  auto round16 = [](size_t n) { return (n + 15) / 16 * 16; };
  const size_t fcw = static_cast<size_t>(kClasses) * kFeatures;
  size_t floats = round16(fcw) + round16(kClasses);
  for (const FusedConv& l : convs_)
    floats += round16(static_cast<size_t>(l.cout) * l.k * l.k * l.cin) + round16(l.cout);
  params_.reset(static_cast<float*>(std::aligned_alloc(64, floats * sizeof(float))));
  if (!params_) throw std::bad_alloc();
  float* dst = params_.get();
  std::vector<float> folded;  // one layer's folded OHWI weights, before packing
  for (const Named& n : named) {
    FusedConv& l = *n.layer;
    const size_t c = static_cast<size_t>(l.cout), r = static_cast<size_t>(l.k) * l.k * l.cin;
    float* bias = dst + round16(c * r);
    folded.resize(c * r);
    fold_batchnorm(raw.get(n.conv + ".weight", c * r), raw.get(n.bn + ".running_mean", c),
                   raw.get(n.bn + ".running_var", c), raw.get(n.bn + ".weight", c), raw.get(n.bn + ".bias", c), 1e-5,
                   l.cout, r, folded.data(), bias);
    pack(l, folded.data(), dst);
    l.weight = dst;
    l.bias = bias;
    dst = bias + round16(c);
  }
  std::copy_n(raw.get("fc.weight", fcw), fcw, dst);
  fc_weight_ = dst;
  dst += round16(fcw);
  std::copy_n(raw.get("fc.bias", kClasses), kClasses, dst);
  fc_bias_ = dst;
}

// 4. One layer's folded OHWI weights into the micro-kernel's panels of kernels_.nb output channels.
void ResNet50::pack(const FusedConv& l, const float* folded, float* dst) const {
  pack_panels(folded, l.cout, l.k * l.k * l.cin, kernels_.nb, dst);
}

void ResNet50::forward(const float* image, float* logits, Profiler* prof) const {
  // The buffers belong to the model, so two calls at once on one model would overwrite each other's activations:
  // the mutex makes them take turns (the pool, too, runs one parallel_for at a time). The binding has released the
  // GIL, so a waiting Python thread blocks here, without the GIL; locking a std::mutex allocates nothing.
  std::lock_guard<std::mutex> lock(mutex_);
  Buffers& buf = *buffers_;

  float* const main[3] = {buf.main[0], buf.main[1], buf.main[2]};
  generated_forward(kernels_, convs_.data(), fc_weight_, fc_bias_, main, buf.shortcut, buf.padded, buf.features,
                    image, logits, *workers_, prof);
}
