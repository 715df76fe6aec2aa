// network.cpp — the ResNet-50 model: its load, and forward(), which runs the forward pass that codegen.py writes at
// build time (generated.cpp, in the build directory; `pyresnet codegen --out DIR` writes it for reading).
//
// The network is a walk over torchvision's layer list: conv -> BatchNorm -> ReLU, maxpool, sixteen bottleneck
// blocks in four stages, global average pool, fc. The constructor makes that walk once, over the shapes, to register
// every tensor (by name, the only place names exist), check the buffer size, read the weights and give every conv
// layer its pointers, and checks that the generated code was generated from the same layer list. forward() locks the
// buffers and calls the generated code.
#include "network.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "weights.h"

ResNet50::ResNet50(const std::string& weights_dir, int /*threads*/) : buffers_(std::make_unique<Buffers>()) {
  // 1. The layer list: each conv's parameters, and the names of its tensors (kept for step 3, then dropped).
  // convs_ is filled in execution order, the order the generated code indexes it in.
  struct Named {
    ConvBN* layer;
    int cin;
    std::string conv, bn;
  };
  std::vector<Named> named;
  size_t largest = 0;  // the largest activation met, to check kMaxActivation
  size_t next = 0;
  auto conv_bn = [&](const std::string& conv, const std::string& bn, Shape in, ConvParams p) {
    if (next == convs_.size()) throw std::logic_error("ResNet50: more conv layers than kConvs");
    ConvBN& l = convs_[next++];
    l.p = p;
    pool_.add(conv + ".weight", static_cast<size_t>(p.cout) * p.kernel * p.kernel * in.c);
    for (const char* t : {".running_mean", ".running_var", ".weight", ".bias"}) pool_.add(bn + t, p.cout);
    named.push_back({&l, in.c, conv, bn});
    const Shape out = conv2d_shape(in, p);
    largest = std::max(largest, out.size());
    return out;
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
      const Shape sc = conv_bn(prefix + ".conv3", prefix + ".bn3", sb, {4 * width, 1, 1, 0});
      if (b == 0) conv_bn(prefix + ".downsample.0", prefix + ".downsample.1", s, {4 * width, 1, stride, 0});
      s = sc;
    }
  }  // 7x7x2048
  if (i != kBlocks || next != convs_.size() || s.c != kFeatures || largest != kMaxActivation)
    throw std::logic_error("ResNet50: the layer walk does not match kBlocks, kConvs, kFeatures or kMaxActivation");
  // The generated code must have been generated from this same layer list.
  int count = 0;
  const GeneratedConv* gen = generated_conv_params(&count);
  bool same = count == kConvs;
  for (int k = 0; same && k < kConvs; k++) {
    const ConvParams a = gen[k].p, b = named[k].layer->p;
    same = gen[k].cin == named[k].cin && a.cout == b.cout && a.kernel == b.kernel && a.stride == b.stride &&
           a.pad == b.pad;
  }
  if (!same) throw std::logic_error("ResNet50: generated.cpp was generated from another layer list");
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

void ResNet50::forward(const float* image, float* logits, Profiler* prof) const {
  // The buffers belong to the model, so two calls at once on one model would overwrite each other's activations:
  // the mutex makes them take turns. The binding has released the GIL, so a waiting Python thread blocks here,
  // without the GIL; locking a std::mutex allocates nothing.
  std::lock_guard<std::mutex> lock(mutex_);
  Buffers& buf = *buffers_;

  float* const main[3] = {buf.main[0], buf.main[1], buf.main[2]};
  generated_forward(convs_.data(), fc_weight_, fc_bias_, main, buf.shortcut, buf.features, image, logits, prof);
}
