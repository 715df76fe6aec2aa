// network.cpp — the ResNet-50 model: its load, and forward(), which runs the forward pass that codegen.py writes at
// build time (generated.cpp, in the build directory; `pyresnet codegen --out DIR` writes it for reading).
//
// The network is a walk over torchvision's layer list: conv -> BatchNorm -> ReLU, maxpool, sixteen bottleneck
// blocks in four stages, global average pool, fc. The constructor chooses the conv kernels for the CPU, or as isa
// asks (conv_kernels(), ops/dispatch.cpp), then runs named steps: walk() lists the layers
// (plan_conv() gives each its shapes, a 3x3 stride-1 conv its Winograd tiles) and registers the tensors they need;
// check_layers() checks the buffer sizes and that the generated code was generated from the same layer list; the
// weights are read once, into a temporary pool, and the calibration's activation ranges (read_ranges()); fold()
// writes every conv's weights with its BatchNorm folded in (fold_batchnorm()), quantized to int8
// (quantize_weights()) and packed into the micro-kernel's panels (or a Winograd layer's) by pack(), its bias and
// requantization, and fc's parameters, into the model's own arena; allocate_buffers() sizes the head's buffers for
// one image and the tail's for max_batch. The thread pool starts with the model; the generated code runs every
// layer's work on it. forward() locks the buffers and the pool and, per chunk of max_batch images, runs the generated
// head on each image and the generated tail on the chunk.
#include "network.h"

#include <algorithm>
#include <cmath>
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

// The weight bits: 0 for the path's default (8 where the kernels take any int8 weight, vpdpbusd; 7 for vpmaddubsw),
// 7 anywhere, 8 only on a path that sums 8-bit weights exactly.
static int checked_bits(int bits, const ConvKernels& kern) {
  const int own = kern.weight_max >= 127 ? 8 : 7;
  if (bits == 0) return own;
  if (bits != 7 && bits != 8) throw std::invalid_argument("weight_bits must be 7 or 8, got " + std::to_string(bits));
  if (bits > own)
    throw std::invalid_argument("weight_bits=8 needs the avx512_vnni path (vpdpbusd); the " + std::string(kern.isa) +
                                " path's vpmaddubsw sums 7-bit weights only");
  return bits;
}

ResNet50::ResNet50(const std::string& weights_dir, int threads, const std::string& isa, int max_batch,
                   int weight_bits, int winograd)
    : kernels_(conv_kernels(isa)),
      weight_bits_(checked_bits(weight_bits, kernels_)),
      max_batch_(checked_batch(max_batch)),
      workers_(std::make_unique<ThreadPool>(checked_threads(threads))) {
  WeightPool raw;  // the weights as stored: read once, dropped once folded
  const std::vector<Named> named = walk(raw, winograd);
  check_layers();
  read_ranges(weights_dir);  // the calibration (WeightsError naming `pyresnet calibrate` when it is missing)
  raw.load(weights_dir);  // every tensor read once (WeightsError naming the tensor for a bad file)
  fold(raw, named);
  allocate_buffers();
}

// 1. The layer list: each conv's shapes and the names of its tensors, which are registered in raw. convs_ is
// filled in execution order, the order the generated code indexes it in: per block conv1, conv2, the downsample
// (first blocks only) and conv3, whose store adds the downsample's output. Each conv also gets its calibration points
// (arch.calibration_points(): "input", "conv1", then per block conv1, conv2, conv3, the downsample if any, and the
// block's output).
std::vector<ResNet50::Named> ResNet50::walk(WeightPool& raw, int winograd) {
  std::vector<Named> named;
  size_t next = 0;
  // in, out, res: calibration points (-1: none; an fp32 output, the downsample's, has none)
  auto conv_bn = [&](const std::string& conv, const std::string& bn, Shape in, ConvParams p, int in_pt, int out_pt,
                     int res_pt) {
    if (next == convs_.size()) throw std::logic_error("ResNet50: more conv layers than kConvs");
    FusedConv& l = convs_[next++];
    // Winograd for the 3x3 stride-1 convs (every one reads a ReLU output: uint8 with zero point 0) when asked, or,
    // by default, for those the kernels run faster that way (ConvKernels::wino_max_cin)
    const bool wino =
        p.kernel == 3 && p.stride == 1 && winograd != 0 && (winograd > 0 || in.c <= kernels_.wino_max_cin);
    l = plan_conv(in, p, kernels_, wino);
    raw.add(conv + ".weight", static_cast<size_t>(p.cout) * p.kernel * p.kernel * in.c);
    for (const char* t : {".running_mean", ".running_var", ".weight", ".bias"}) raw.add(bn + t, p.cout);
    named.push_back({&l, conv, bn, in_pt, out_pt, res_pt});
    return conv2d_shape(in, p);
  };
  Shape s = conv_bn("conv1", "bn1", {kInput, kInput, 3}, {64, 7, 2, 3}, 0, 1, -1);  // 112x112x64
  s = maxpool_shape(s, 3, 2, 1);                                                    // 56x56x64
  int x_pt = 1;   // the block input's point: the maxpool's output has the stem's range
  int point = 2;  // the next block's first point
  const int blocks[4] = {3, 4, 6, 3};
  const int widths[4] = {64, 128, 256, 512};
  int i = 0;
  for (int stage = 0; stage < 4; stage++) {
    const int width = widths[stage];
    for (int b = 0; b < blocks[stage]; b++, i++) {
      const std::string prefix = "layer" + std::to_string(stage + 1) + "." + std::to_string(b);
      const int stride = (b == 0 && stage > 0) ? 2 : 1;
      if (stage == 3 && b == 0) first_batched_ = static_cast<int>(next);  // layer4 on: the tail, on the batch
      // the block's points: conv1, conv2, conv3 (before the add; unused: the add is in conv3's store), the
      // downsample (first blocks; unused: its output stays fp32), then the block's output
      const int c1 = point, c2 = point + 1, out = point + (b == 0 ? 4 : 3);
      const Shape sa = conv_bn(prefix + ".conv1", prefix + ".bn1", s, {width, 1, 1, 0}, x_pt, c1, -1);
      const Shape sb = conv_bn(prefix + ".conv2", prefix + ".bn2", sa, {width, 3, stride, 1}, c1, c2, -1);
      if (b == 0) {  // runs before conv3, whose store adds its fp32 output
        conv_bn(prefix + ".downsample.0", prefix + ".downsample.1", s, {4 * width, 1, stride, 0}, x_pt, -1, -1);
        convs_[next - 1].out_f32 = true;
      }
      s = conv_bn(prefix + ".conv3", prefix + ".bn3", sb, {4 * width, 1, 1, 0}, c2, out, b == 0 ? -1 : x_pt);
      convs_[next - 1].res_f32 = b == 0;
      x_pt = out;
      point = out + 1;
    }
  }  // 7x7x2048
  if (i != kBlocks || next != convs_.size() || s.c != kFeatures || point != kCalibrationPoints)
    throw std::logic_error("ResNet50: the layer walk does not match kBlocks, kConvs, kFeatures or kCalibrationPoints");
  out_point_ = x_pt;
  raw.add("fc.weight", static_cast<size_t>(kClasses) * kFeatures);
  raw.add("fc.bias", kClasses);
  return named;
}

// 2. The buffers fit the layers, and the generated code was generated from this same layer list.
void ResNet50::check_layers() const {
  // Per part (the head, convs_[0 .. first_batched_), then the tail), per image: the largest activation and
  // zero-padded input; they must be the constants exactly. The kernels read whole quads of taps: a layer whose
  // kernel row is not a multiple of 4 taps (the stem: 7 x 3) reads up to 3 bytes past a row, times zero weights,
  // which only its padded copy has room for (the padded buffer is far larger than the stem's 230 x 230 x 3 bytes).
  // A Winograd layer's transformed input, 16 x tiles x channels, must fit kMaxWino / kBatchWino.
  size_t largest[2] = {0, 0}, largest_pad[2] = {0, 0}, largest_wino[2] = {0, 0};
  bool quads = true;
  for (int k = 0; k < kConvs; k++) {
    const FusedConv& l = convs_[k];
    const int part = k >= first_batched_;
    largest[part] = std::max(largest[part], static_cast<size_t>(l.ho) * l.wo * l.cout);
    if (l.pad > 0 && !l.wino)
      largest_pad[part] = std::max(largest_pad[part], static_cast<size_t>(l.h + 2 * l.pad) * (l.w + 2 * l.pad) * l.cin);
    if (l.wino)
      largest_wino[part] = std::max(largest_wino[part],
                                    static_cast<size_t>(16) * l.tiles_h * l.tiles_w * l.cin);
    quads = quads && (l.k * l.cin % 4 == 0 || l.pad > 0);
  }
  const FusedConv& head_out = convs_[first_batched_ - 1];
  if (largest[0] != kMaxActivation || largest_pad[0] != kMaxPadded || largest[1] != kBatchActivation ||
      largest_pad[1] != kBatchPadded || largest_wino[0] > kMaxWino || largest_wino[1] > kBatchWino || !quads ||
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

// The activation ranges, calibration.bin: float32 [kCalibrationPoints][2], (min, max) per point. Python
// (pyresnet.load) has checked it against the manifest and the weights; here we check that it is there and whole.
void ResNet50::read_ranges(const std::string& weights_dir) {
  try {
    read_tensor(weights_dir, "calibration", ranges_.size(), ranges_.data());
  } catch (const WeightsError& e) {
    throw WeightsError(std::string(e.what()) + "; the int8 stage needs the activation ranges of a calibration: run "
                       "`pyresnet calibrate IMAGES --weights " + weights_dir + "`");
  }
  for (int p = 0; p < kCalibrationPoints; p++)
    if (!(ranges_[2 * p] <= ranges_[2 * p + 1]) || !std::isfinite(ranges_[2 * p]) ||
        !std::isfinite(ranges_[2 * p + 1]))
      throw WeightsError("weights: calibration.bin in " + weights_dir + " holds a range that is not a finite (min, max)"
                         " pair; run `pyresnet calibrate` again");
}

// The scale of a uint8 tensor (zero point 0) from its calibrated range: 255 steps up to its max. Every such tensor
// is a ReLU output, so its min is 0; a tensor that was never positive (max 0) gets steps of 1/255: all zeros.
float ResNet50::step(int point) const {
  const float hi = ranges_[2 * point + 1];
  return hi > 0.0f ? hi / 255.0f : 1.0f / 255.0f;
}

// 3. The model's own parameters, in one 64-byte aligned arena, each tensor starting on a cache line: per conv its
// weights with the BatchNorm folded in, packed (pack()), and its bias; then fc's weights and bias, copied. The raw
// pool is dropped after this, so the model holds one copy of the weights. Every conv is quantized after folding:
// int8 weights (quantize_weights(), per output channel) and the requantization of its store (FusedConv): scale[o] =
// input step x weight step[o], the output's inverse step, the residual's step; the stem's input has a zero point,
// folded into its bias.
// The floats of the arena one layer's packed weights take: int8 panels (4 a float), or a Winograd layer's
// transformed int16 ones, 16 positions x cout x cin (2 a float).
static size_t weight_floats(const FusedConv& l) {
  return l.wino ? static_cast<size_t>(8) * l.cout * l.cin : static_cast<size_t>(l.cout) * l.k * l.quads;
}

void ResNet50::fold(const WeightPool& raw, const std::vector<Named>& named) {
  auto round16 = [](size_t n) { return (n + 15) / 16 * 16; };
  const size_t fcw = static_cast<size_t>(kClasses) * kFeatures;
  size_t floats = round16(fcw) + round16(kClasses);
  for (const FusedConv& l : convs_)  // int8 weights (4 a float), scale and bias
    floats += round16(weight_floats(l)) + 2 * round16(l.cout);
  params_.reset(static_cast<float*>(std::aligned_alloc(64, floats * sizeof(float))));
  if (!params_) throw std::bad_alloc();
  float* dst = params_.get();
  std::vector<float> folded;  // one layer's folded OHWI weights, before packing
  std::vector<float> wstep;   // and their quantization: the step of each output channel
  std::vector<std::int8_t> quantized;
  for (const Named& n : named) {
    FusedConv& l = *n.layer;
    const size_t c = static_cast<size_t>(l.cout), r = static_cast<size_t>(l.k) * l.k * l.cin;
    float* bias = dst + round16(weight_floats(l));
    folded.resize(c * r);
    fold_batchnorm(raw.get(n.conv + ".weight", c * r), raw.get(n.bn + ".running_mean", c),
                   raw.get(n.bn + ".running_var", c), raw.get(n.bn + ".weight", c), raw.get(n.bn + ".bias", c), 1e-5,
                   l.cout, r, folded.data(), bias);
    l.bias = bias;
    quantized.resize(c * r);
    wstep.resize(c);
    quantize_weights(folded.data(), l.cout, r, weight_bits_, quantized.data(), wstep.data());
    pack(l, quantized.data(), dst);
    float* scale = bias + round16(c);
    float in_step = step(n.in);
    if (n.in == 0) {
      // The stem reads the image, which is signed: uint8 with a zero point, 255 steps over its calibrated range
      // stretched to hold 0 (so that the zero padding is exact): real = step (q - zero). The sums are then of
      // (q - zero) w = q w - zero w, and the second part, zero x the channel's weight sum, is a constant per channel,
      // folded into the bias (in double), so the kernel and its store are the other layers'.
      const float lo = std::min(ranges_[0], 0.0f), hi = std::max(ranges_[1], 0.0f);
      in_step = hi > lo ? (hi - lo) / 255.0f : 1.0f / 255.0f;
      input_zero_ = static_cast<int>(std::clamp(std::nearbyint(-lo / in_step), 0.0f, 255.0f));
      input_inv_step_ = 1.0f / in_step;
      for (size_t o = 0; o < c; o++) {
        long long sum = 0;
        for (size_t i = 0; i < r; i++) sum += quantized[o * r + i];
        bias[o] = static_cast<float>(bias[o] - static_cast<double>(in_step) * wstep[o] * input_zero_ * sum);
      }
    }
    for (size_t o = 0; o < c; o++) scale[o] = in_step * wstep[o];
    l.scale = scale;
    l.inv_out = n.out >= 0 ? 1.0f / step(n.out) : 0.0f;
    l.res_scale = n.res >= 0 ? step(n.res) : 0.0f;
    dst = scale + round16(c);
  }
  std::copy_n(raw.get("fc.weight", fcw), fcw, dst);
  fc_weight_ = dst;
  dst += round16(fcw);
  std::copy_n(raw.get("fc.bias", kClasses), kClasses, dst);
  fc_bias_ = dst;
  out_scale_ = step(out_point_);
}

// 4. One layer's quantized OHWI weights into the micro-kernel's int8 panels of kernels_.nb output channels, or, for
// a Winograd layer, transformed into its int16 panels (wino_pack_weights()).
void ResNet50::pack(FusedConv& l, const std::int8_t* quantized, float* dst) const {
  if (l.wino) {
    std::int16_t* u = reinterpret_cast<std::int16_t*>(dst);
    wino_pack_weights(quantized, l.cout, l.cin, kernels_.nb, u);
    l.wino_weight = u;
    return;
  }
  std::int8_t* q = reinterpret_cast<std::int8_t*>(dst);
  pack_panels(quantized, l.cout, l.k, l.cin, kernels_.nb, q);
  l.weight = q;
}

// 5. The activation buffers, in one 64-byte aligned allocation (network.h, Buffers): the head's for one image, the
// tail's for max_batch, uint8 but for shortcut and features, fp32, and the Winograd layers' int16 one, which is empty
// in a part (the head, the tail) that runs no Winograd layer. Every size is a whole number of cache lines, so every
// buffer starts on one. Zeroed, so that the memory is committed here, at load, not by the first large batch.
void ResNet50::allocate_buffers() {
  const size_t n = static_cast<size_t>(max_batch_);
  bool wino[2] = {false, false};  // the head, the tail
  for (int k = 0; k < kConvs; k++) wino[k >= first_batched_] |= convs_[k].wino != 0;
  const size_t head_wino = wino[0] ? kMaxWino : 0, batch_wino = wino[1] ? kBatchWino : 0;
  const size_t image_bytes = kBatchBytes - (kBatchWino - batch_wino) * sizeof(std::int16_t);  // a batch image's
  const size_t bytes = 3 * kMaxActivation + kMaxActivation * sizeof(float) + kMaxPadded +
                       head_wino * sizeof(std::int16_t) + n * image_bytes;
  arena_.reset(static_cast<std::uint8_t*>(std::aligned_alloc(64, bytes)));
  if (!arena_) throw std::bad_alloc();
  std::fill_n(arena_.get(), bytes, std::uint8_t{0});
  std::uint8_t* p = arena_.get();
  auto take = [&p](size_t bytes) {
    std::uint8_t* b = p;
    p += bytes;
    return b;
  };
  auto take_f32 = [&take](size_t floats) { return reinterpret_cast<float*>(take(floats * sizeof(float))); };
  for (std::uint8_t*& m : head_.main) m = take(kMaxActivation);
  head_.shortcut = take_f32(kMaxActivation);
  head_.padded = take(kMaxPadded);
  head_.wino_v = reinterpret_cast<std::int16_t*>(take(head_wino * sizeof(std::int16_t)));
  tail_in_ = take(n * kBatchInput);
  for (std::uint8_t*& m : tail_.main) m = take(n * kBatchActivation);
  tail_.shortcut = take_f32(n * kBatchActivation);
  tail_.padded = take(n * kBatchPadded);
  tail_.wino_v = reinterpret_cast<std::int16_t*>(take(n * batch_wino * sizeof(std::int16_t)));
  tail_.features = take_f32(n * kFeatures);
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
      generated_head(kernels_, convs_.data(), h.main, h.shortcut, h.padded, h.wino_v, input_inv_step_,
                     input_zero_, images + static_cast<size_t>(first + i) * kInput * kInput * 3,
                     tail_in_ + i * kBatchInput, *workers_, prof);
    generated_tail(kernels_, convs_.data(), fc_weight_, fc_bias_, t.main, t.shortcut, t.padded, t.wino_v, t.features,
                   out_scale_, tail_in_, count, logits + static_cast<size_t>(first) * kClasses, *workers_, prof);
  }
}
