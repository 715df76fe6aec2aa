// network.cpp — ResNet-50 with no heap allocation, no string and no lookup during an inference.
//
// The network is a walk over torchvision's layer list: conv -> BatchNorm -> ReLU, maxpool, sixteen bottleneck
// blocks in four stages, global average pool, fc. The constructor makes that walk once, over the shapes, to register
// every tensor (by name, the only place names exist), check the buffer size, read the weights and give every layer
// its pointers; forward() then only follows pointers, through activation buffers the model owns.
#include "network.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "weights.h"

ResNet50::ResNet50(const std::string& weights_dir, int /*threads*/) : buffers_(std::make_unique<Buffers>()) {
  // 1. The layer list: each conv's parameters, and the names of its tensors (kept for step 3, then dropped).
  struct Named {
    ConvBN* layer;
    int cin;
    std::string conv, bn;
  };
  std::vector<Named> named;
  size_t largest = 0;  // the largest activation met, to check kMaxActivation
  auto conv_bn = [&](ConvBN& l, const std::string& conv, const std::string& bn, Shape in, ConvParams p) {
    l.p = p;
    l.name = conv;
    pool_.add(conv + ".weight", static_cast<size_t>(p.cout) * p.kernel * p.kernel * in.c);
    for (const char* t : {".running_mean", ".running_var", ".weight", ".bias"}) pool_.add(bn + t, p.cout);
    named.push_back({&l, in.c, conv, bn});
    const Shape out = conv2d_shape(in, p);
    largest = std::max(largest, out.size());
    return out;
  };
  Shape s = conv_bn(stem_, "conv1", "bn1", {kInput, kInput, 3}, {64, 7, 2, 3});  // 112x112x64
  s = maxpool_shape(s, 3, 2, 1);                                                   // 56x56x64
  const int blocks[4] = {3, 4, 6, 3};
  const int widths[4] = {64, 128, 256, 512};
  int i = 0;
  for (int stage = 0; stage < 4; stage++) {
    const int width = widths[stage];
    for (int b = 0; b < blocks[stage]; b++, i++) {
      const std::string prefix = "layer" + std::to_string(stage + 1) + "." + std::to_string(b);
      const int stride = (b == 0 && stage > 0) ? 2 : 1;
      Block& blk = blocks_[i];
      const Shape sa = conv_bn(blk.conv1, prefix + ".conv1", prefix + ".bn1", s, {width, 1, 1, 0});
      const Shape sb = conv_bn(blk.conv2, prefix + ".conv2", prefix + ".bn2", sa, {width, 3, stride, 1});
      const Shape sc = conv_bn(blk.conv3, prefix + ".conv3", prefix + ".bn3", sb, {4 * width, 1, 1, 0});
      blk.name = prefix;
      blk.has_downsample = b == 0;
      if (blk.has_downsample)
        conv_bn(blk.downsample, prefix + ".downsample.0", prefix + ".downsample.1", s, {4 * width, 1, stride, 0});
      s = sc;
    }
  }  // 7x7x2048
  if (i != kBlocks || s.c != kFeatures || largest != kMaxActivation)
    throw std::logic_error("ResNet50: the layer walk does not match kBlocks, kFeatures or kMaxActivation");
  pool_.add("fc.weight", static_cast<size_t>(kClasses) * kFeatures);
  pool_.add("fc.bias", kClasses);

  // 2. Every tensor read once, into the pool (WeightsError naming the tensor for a bad file).
  pool_.load(weights_dir);

  // 3. Names -> pointers, once; forward() never sees a name.
  for (const Named& n : named) {
    ConvBN& l = *n.layer;
    const size_t c = static_cast<size_t>(l.p.cout);
    l.weight = pool_.get(n.conv + ".weight", c * l.p.kernel * l.p.kernel * n.cin);
    l.mean = pool_.get(n.bn + ".running_mean", c);
    l.var = pool_.get(n.bn + ".running_var", c);
    l.gamma = pool_.get(n.bn + ".weight", c);
    l.beta = pool_.get(n.bn + ".bias", c);
  }
  fc_weight_ = pool_.get("fc.weight", static_cast<size_t>(kClasses) * kFeatures);
  fc_bias_ = pool_.get("fc.bias", kClasses);
}

// conv (no bias) -> BatchNorm -> optional ReLU. BatchNorm and ReLU run in place in `out` (both are elementwise).
Shape ResNet50::conv_bn(const float* x, Shape s, const ConvBN& l, bool relu_after, float* out,
                        Profiler* prof) const {
  LayerTimer timer(prof);
  const Shape os = conv2d_shape(s, l.p);
  conv2d(x, s, l.weight, l.p, out);
  batchnorm(out, os, l.mean, l.var, l.gamma, l.beta, 1e-5f, out);
  if (relu_after) relu(out, os.size(), out);
  if (timer.on())
    timer.done(l.name, conv_label(l.p, relu_after ? "+bn+relu" : "+bn"), os, 2.0 * os.size() * l.p.kernel * l.p.kernel * s.c);
  return os;
}

// One bottleneck block: 1x1 (width) -> 3x3 (width, stride) -> 1x1 (4*width), plus the shortcut, then ReLU.
// x is not written: it is the shortcut itself when there is no downsample.
Shape ResNet50::bottleneck(const Block& blk, const float* x, Shape s, float* a, float* b, float* shortcut,
                          Profiler* prof) const {
  const Shape sa = conv_bn(x, s, blk.conv1, true, a, prof);
  const Shape sb = conv_bn(a, sa, blk.conv2, true, b, prof);
  const Shape sc = conv_bn(b, sb, blk.conv3, false, a, prof);  // conv1's output is not read again: reuse its buffer
  const float* identity = x;
  if (blk.has_downsample) {
    conv_bn(x, s, blk.downsample, false, shortcut, prof);
    identity = shortcut;
  }
  LayerTimer timer(prof);
  add(a, identity, sc.size(), a);
  relu(a, sc.size(), a);
  if (timer.on()) timer.done(blk.name + ".add", "add+relu", sc, static_cast<double>(sc.size()));
  return sc;
}

void ResNet50::forward(const float* image, float* logits, Profiler* prof) const {
  // The buffers belong to the model, so two calls at once on one model would overwrite each other's activations:
  // the mutex makes them take turns. The binding has released the GIL, so a waiting Python thread blocks here,
  // without the GIL; locking a std::mutex allocates nothing.
  std::lock_guard<std::mutex> lock(mutex_);
  Buffers& buf = *buffers_;

  Shape s = conv_bn(image, {kInput, kInput, 3}, stem_, true, buf.main[0], prof);  // 112x112x64, from the caller
  LayerTimer pool_timer(prof);
  maxpool(buf.main[0], s, 3, 2, 1, buf.main[1]);
  s = maxpool_shape(s, 3, 2, 1);  // 56x56x64
  pool_timer.done("maxpool", "maxpool3x3/s2", s, 9.0 * s.size());

  // Sixteen blocks; the activation moves one main buffer on per block (x -> x+1 mod 3).
  int x = 1;
  for (const Block& blk : blocks_) {
    s = bottleneck(blk, buf.main[x], s, buf.main[(x + 1) % 3], buf.main[(x + 2) % 3], buf.shortcut, prof);
    x = (x + 1) % 3;
  }  // 7x7x2048

  LayerTimer avg_timer(prof);
  avgpool(buf.main[x], s, buf.features);
  avg_timer.done("avgpool", "avgpool", Shape{1, 1, s.c}, static_cast<double>(s.size()));

  LayerTimer fc_timer(prof);
  fc(buf.features, s.c, fc_weight_, fc_bias_, kClasses, logits);
  fc_timer.done("fc", "fc", Shape{1, 1, kClasses}, 2.0 * kClasses * s.c);
}
