// network.cpp — the ResNet-50 model: its load, and forward(), which runs the forward pass that codegen.py writes at
// build time (generated.cpp, in the build directory; `pyresnet codegen --out DIR` writes it for reading).
//
// The network is a walk over torchvision's layer list: conv -> BatchNorm -> ReLU, maxpool, sixteen bottleneck
// blocks in four stages, global average pool, fc. The constructor chooses the conv kernels for the CPU, or as isa
// asks (conv_kernels(), ops/dispatch.cpp), then runs named steps: walk() lists the layers (plan_conv() gives each
// its shapes, and wino_tile() a 3x3 stride-1 conv its Winograd tile) and registers the tensors they need;
// check_layers() checks the buffer sizes and that the generated code was generated from the same layer list; the
// weights are read once, into a temporary pool; fold() writes every conv's weights with its BatchNorm folded in
// (fold_batchnorm()), packed into the micro-kernel's bf16 panels by pack() (transformed first for a Winograd layer),
// and its fp32 bias, and fc's parameters, into the model's own arena; allocate_buffers() sizes the head's buffers
// for one image and the tail's for max_batch. The thread pool starts with the model; the generated code runs every
// layer's work on it. forward() locks the buffers and the pool and, per chunk of max_batch images, runs the
// generated head on each image and the generated tail on the chunk.
#include "network.h"

#include <algorithm>
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

// So is a nonsense max_batch.
static int checked_batch(int max_batch) {
  if (max_batch < 1 || max_batch > ResNet50::kMaxBatch)
    throw std::invalid_argument("max_batch must be a whole number from 1 to " + std::to_string(ResNet50::kMaxBatch) +
                                ", got " + std::to_string(max_batch));
  return max_batch;
}

// The Winograd tile size m for a 3x3 stride-1 conv on an h x h input (0: direct), chosen by measurement of speed and
// of agreement with fp32 (README.md): direct on layer1 (56x56), F(4x4, 3x3) on layer2 (28x28), F(2x2, 3x3) on layer3
// and layer4. In bf16 the transforms' rounding costs accuracy where fp32's did not: on layer1's 64 channels any
// Winograd tile takes the stage's median logit error past PyTorch's own bf16 (though F(4x4) there is faster); on
// layer2 F(4x4) costs little accuracy, and on layer3 and layer4 F(2x2) none measurable.
static int wino_tile(int h) { return h >= 56 ? 0 : h >= 28 ? 4 : 2; }

ResNet50::ResNet50(const std::string& weights_dir, int threads, const std::string& isa, bool winograd, int max_batch)
    : kernels_(conv_kernels(isa)),
      max_batch_(checked_batch(max_batch)),
      workers_(std::make_unique<ThreadPool>(checked_threads(threads))) {
  WeightPool raw;  // the weights as stored: read once, dropped once folded
  const std::vector<Named> named = walk(raw, winograd);
  check_layers();
  raw.load(weights_dir);  // every tensor read once (WeightsError naming the tensor for a bad file)
  fold(raw, named);
  allocate_buffers();
}

// 1. The layer list: each conv's shapes and the names of its tensors, which are registered in raw. convs_ is
// filled in execution order, the order the generated code indexes it in: per block conv1, conv2, the downsample
// (first blocks only) and conv3, whose store adds the downsample's output.
std::vector<ResNet50::Named> ResNet50::walk(WeightPool& raw, bool winograd) {
  std::vector<Named> named;
  size_t next = 0;
  auto conv_bn = [&](const std::string& conv, const std::string& bn, Shape in, ConvParams p) {
    if (next == convs_.size()) throw std::logic_error("ResNet50: more conv layers than kConvs");
    FusedConv& l = convs_[next++];
    l = plan_conv(in, p, kernels_, winograd && p.kernel == 3 && p.stride == 1 ? wino_tile(in.h) : 0);
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
      if (stage == 3 && b == 0) first_batched_ = static_cast<int>(next);  // layer4 on: the tail, on the batch
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
  // Per part (the head, convs_[0 .. first_batched_), then the tail), per image: the largest activation, zero-padded
  // input and transformed tensor of a Winograd layer; the first two must be the constants exactly.
  size_t largest[2] = {0, 0}, largest_pad[2] = {0, 0}, largest_wino[2] = {0, 0};
  for (int k = 0; k < kConvs; k++) {
    const FusedConv& l = convs_[k];
    const int part = k >= first_batched_;
    largest[part] = std::max(largest[part], static_cast<size_t>(l.ho) * l.wo * l.cout);
    if (l.pad > 0 && !l.wino)
      largest_pad[part] = std::max(largest_pad[part], static_cast<size_t>(l.h + 2 * l.pad) * (l.w + 2 * l.pad) * l.cin);
    if (l.wino)
      largest_wino[part] = std::max(largest_wino[part], static_cast<size_t>(l.wino + 2) * (l.wino + 2) * l.tiles_h *
                                                            l.tiles_w * std::max(l.cin, l.cout));
  }
  const FusedConv& head_out = convs_[first_batched_ - 1];
  if (largest[0] != kMaxActivation || largest_pad[0] != kMaxPadded || largest_wino[0] > kMaxWino ||
      largest[1] != kBatchActivation || largest_pad[1] != kBatchPadded || largest_wino[1] > kBatchWino ||
      static_cast<size_t>(head_out.ho) * head_out.wo * head_out.cout != kBatchInput)
    throw std::logic_error("ResNet50: the buffer sizes (kMax*, kBatch*) do not fit the layers");
  int count = 0, first_batched = 0;
  const GeneratedConv* gen = generated_conv_params(&count, &first_batched);
  bool same = count == kConvs && first_batched == first_batched_;
  for (int k = 0; same && k < kConvs; k++) {
    const FusedConv& l = convs_[k];
    const ConvParams a = gen[k].p;
    same = gen[k].cin == l.cin && a.cout == l.cout && a.kernel == l.k && a.stride == l.stride && a.pad == l.pad;
  }
  if (!same) throw std::logic_error("ResNet50: generated.cpp was generated from another layer list");
}

// 3. The model's own parameters, in one 64-byte aligned arena, each tensor starting on a cache line: per conv its
// weights with the BatchNorm folded in (in fp32, double inside), packed as bf16 (pack()), and its fp32 bias; then
// fc's fp32 weights and bias, copied. The raw pool is dropped after this, so the model holds one copy of the weights.
void ResNet50::fold(const WeightPool& raw, const std::vector<Named>& named) {
  auto round64 = [](size_t bytes) { return (bytes + 63) / 64 * 64; };
  const size_t fcw = static_cast<size_t>(kClasses) * kFeatures;
  size_t bytes = round64(fcw * sizeof(float)) + round64(kClasses * sizeof(float));
  for (const FusedConv& l : convs_)
    bytes += round64(l.cout * packed_per_channel(l) * sizeof(bf16_t)) + round64(l.cout * sizeof(float));
  params_.reset(static_cast<unsigned char*>(std::aligned_alloc(64, bytes)));
  if (!params_) throw std::bad_alloc();
  unsigned char* dst = params_.get();
  std::vector<float> folded;  // one layer's folded OHWI weights, before packing
  for (const Named& n : named) {
    FusedConv& l = *n.layer;
    const size_t c = static_cast<size_t>(l.cout), r = static_cast<size_t>(l.k) * l.k * l.cin;
    bf16_t* weight = reinterpret_cast<bf16_t*>(dst);
    float* bias = reinterpret_cast<float*>(dst + round64(c * packed_per_channel(l) * sizeof(bf16_t)));
    folded.resize(c * r);
    fold_batchnorm(raw.get(n.conv + ".weight", c * r), raw.get(n.bn + ".running_mean", c),
                   raw.get(n.bn + ".running_var", c), raw.get(n.bn + ".weight", c), raw.get(n.bn + ".bias", c), 1e-5,
                   l.cout, r, folded.data(), bias);
    pack(l, folded.data(), weight);
    l.weight = weight;
    l.bias = bias;
    dst = reinterpret_cast<unsigned char*>(bias) + round64(c * sizeof(float));
  }
  float* fc = reinterpret_cast<float*>(dst);
  std::copy_n(raw.get("fc.weight", fcw), fcw, fc);
  fc_weight_ = fc;
  fc = reinterpret_cast<float*>(dst + round64(fcw * sizeof(float)));
  std::copy_n(raw.get("fc.bias", kClasses), kClasses, fc);
  fc_bias_ = fc;
}

// 4. One layer's folded OHWI weights into the micro-kernel's bf16 panels of kernels_.nb output channels, pairs of
// taps interleaved (a zero tap ending the stem's odd rows of 7 x 3); for a Winograd layer, transformed first (in
// double, then rounded: one set of panels per transformed position).
void ResNet50::pack(const FusedConv& l, const float* folded, bf16_t* dst) const {
  if (l.wino)
    wino_pack_weights(folded, l.cout, l.cin, l.wino, kernels_.nb, dst);
  else
    pack_panels(folded, l.cout, l.k, l.cin, kernels_.nb, dst);
}

// 5. The activation buffers, in one 64-byte aligned allocation (network.h, Buffers): the head's for one image, the
// tail's for max_batch, bf16; then the fp32 ones, the GEMM outputs of Winograd layers and the tail's features. The
// Winograd buffers are empty when no layer runs Winograd (winograd=false). Every size is a whole number of cache
// lines, so every buffer starts on one. Zeroed, so that the memory is committed here, at load, not by the first
// large batch.
void ResNet50::allocate_buffers() {
  const size_t n = static_cast<size_t>(max_batch_);
  const size_t wino = winograd() ? kMaxWino : 0, batch_wino = winograd() ? kBatchWino : 0;
  const size_t image_values = kBatchValues - kBatchWino + batch_wino;  // a batch image's bf16 values and floats
  const size_t image_floats = kBatchFloats - kBatchWino + batch_wino;
  const size_t values = 4 * kMaxActivation + kMaxPadded + wino + n * image_values;
  const size_t bytes = values * sizeof(bf16_t) + (wino + n * image_floats) * sizeof(float);
  arena_.reset(static_cast<unsigned char*>(std::aligned_alloc(64, bytes)));
  if (!arena_) throw std::bad_alloc();
  std::fill_n(arena_.get(), bytes, static_cast<unsigned char>(0));
  bf16_t* p = reinterpret_cast<bf16_t*>(arena_.get());
  auto take = [&p](size_t values) {
    bf16_t* b = p;
    p += values;
    return b;
  };
  for (bf16_t*& m : head_.main) m = take(kMaxActivation);
  head_.shortcut = take(kMaxActivation);
  head_.padded = take(kMaxPadded);
  head_.wino_v = take(wino);
  tail_in_ = take(n * kBatchInput);
  for (bf16_t*& m : tail_.main) m = take(n * kBatchActivation);
  tail_.shortcut = take(n * kBatchActivation);
  tail_.padded = take(n * kBatchPadded);
  tail_.wino_v = take(n * batch_wino);
  float* f = reinterpret_cast<float*>(p);
  head_.wino_m = f;
  tail_.wino_m = f + wino;
  tail_.features = f + wino + n * batch_wino;
}

void ResNet50::forward(const float* images, int n, float* logits, Profiler* prof) const {
  // The buffers belong to the model, so two calls at once on one model would overwrite each other's activations:
  // the mutex makes them take turns (the pool, too, runs one parallel_for at a time). The binding has released the
  // GIL, so a waiting Python thread blocks here, without the GIL; locking a std::mutex allocates nothing.
  std::lock_guard<std::mutex> lock(mutex_);
  const Buffers& h = head_;
  const Buffers& t = tail_;

  // A batch larger than max_batch runs in chunks of max_batch images; every image's outputs are computed by the
  // same code in the same order whatever chunk it is in, so the split changes no bit.
  for (int first = 0; first < n; first += max_batch_) {
    const int count = std::min(max_batch_, n - first);
    for (int i = 0; i < count; i++)  // the head, image by image: its activations stay in cache from layer to layer
      generated_head(kernels_, convs_.data(), h.main, h.shortcut, h.padded, h.wino_v, h.wino_m,
                     images + static_cast<size_t>(first + i) * kInput * kInput * 3, tail_in_ + i * kBatchInput,
                     *workers_, prof);
    generated_tail(kernels_, convs_.data(), fc_weight_, fc_bias_, t.main, t.shortcut, t.padded, t.wino_v, t.wino_m,
                   t.features, tail_in_, count, logits + static_cast<size_t>(first) * kClasses, *workers_, prof);
  }
}
