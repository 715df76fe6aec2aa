// network.cpp — ResNet-50 with every weight read once, when the model is built.
//
// The network is a walk over torchvision's layer list: conv -> BatchNorm -> ReLU, maxpool, sixteen bottleneck
// blocks in four stages, global average pool, fc. Each layer builds its tensors' names ("layer2.1.conv2" +
// ".weight") and looks them up in the pool (WeightPool, weights.h) when it runs, and returns a newly allocated
// output.
#include "network.h"

#include "weights.h"

// Registers every tensor forward() will ask for, with its size, in the order forward() uses them (the same walk
// over the layers, on shapes only), then reads them all into the pool: the only disk reads of this model's life.
ResNet50::ResNet50(const std::string& weights_dir, int /*threads*/) {
  auto conv_bn = [this](const std::string& conv, const std::string& bn, int cin, ConvParams p) {
    pool_.add(conv + ".weight", static_cast<size_t>(p.cout) * p.kernel * p.kernel * cin);
    for (const char* t : {".running_mean", ".running_var", ".weight", ".bias"}) pool_.add(bn + t, p.cout);
  };
  conv_bn("conv1", "bn1", 3, {64, 7, 2, 3});
  const int blocks[4] = {3, 4, 6, 3};
  const int widths[4] = {64, 128, 256, 512};
  int cin = 64;
  for (int stage = 0; stage < 4; stage++) {
    const int width = widths[stage];
    for (int b = 0; b < blocks[stage]; b++) {
      const std::string prefix = "layer" + std::to_string(stage + 1) + "." + std::to_string(b);
      conv_bn(prefix + ".conv1", prefix + ".bn1", cin, {width, 1, 1, 0});
      conv_bn(prefix + ".conv2", prefix + ".bn2", width, {width, 3, 1, 1});  // stride does not change the size
      conv_bn(prefix + ".conv3", prefix + ".bn3", width, {4 * width, 1, 1, 0});
      if (b == 0) conv_bn(prefix + ".downsample.0", prefix + ".downsample.1", cin, {4 * width, 1, 1, 0});
      cin = 4 * width;
    }
  }
  pool_.add("fc.weight", static_cast<size_t>(kClasses) * cin);
  pool_.add("fc.bias", kClasses);
  pool_.load(weights_dir);  // WeightsError naming the tensor: at load time, not mid-inference
}

// conv (no bias) -> BatchNorm -> optional ReLU; `conv` and `bn` are state_dict prefixes such as "layer1.0.conv1".
Tensor ResNet50::conv_bn(const Tensor& x, const std::string& conv, const std::string& bn, ConvParams p,
                         bool relu_after, Profiler* prof) const {
  LayerTimer timer(prof);
  const Shape os = conv2d_shape(x.shape, p);
  Tensor y{std::vector<float>(os.size()), os};
  const size_t wcount = static_cast<size_t>(p.cout) * p.kernel * p.kernel * x.shape.c;
  const float* w = pool_.get(conv + ".weight", wcount);  // from the pool: a name lookup, no disk
  conv2d(x.data.data(), x.shape, w, p, y.data.data());

  const size_t c = static_cast<size_t>(p.cout);
  const float* mean = pool_.get(bn + ".running_mean", c);
  const float* var = pool_.get(bn + ".running_var", c);
  const float* gamma = pool_.get(bn + ".weight", c);
  const float* beta = pool_.get(bn + ".bias", c);
  Tensor z{std::vector<float>(os.size()), os};
  batchnorm(y.data.data(), os, mean, var, gamma, beta, 1e-5f, z.data.data());
  if (relu_after) relu(z.data.data(), z.data.size(), z.data.data());
  if (timer.on())
    timer.done(conv, conv_label(p, relu_after ? "+bn+relu" : "+bn"), os, 2.0 * os.size() * p.kernel * p.kernel * x.shape.c);
  return z;
}

// One bottleneck block: 1x1 (width) -> 3x3 (width, stride) -> 1x1 (4*width), plus the shortcut, then ReLU.
// The first block of every stage has a downsample shortcut (strided 1x1 conv + BN); the others add x itself.
Tensor ResNet50::bottleneck(const Tensor& x, const std::string& prefix, int width, int stride, bool downsample,
                            Profiler* prof) const {
  Tensor a = conv_bn(x, prefix + ".conv1", prefix + ".bn1", {width, 1, 1, 0}, true, prof);
  Tensor b = conv_bn(a, prefix + ".conv2", prefix + ".bn2", {width, 3, stride, 1}, true, prof);
  Tensor c = conv_bn(b, prefix + ".conv3", prefix + ".bn3", {4 * width, 1, 1, 0}, false, prof);
  Tensor shortcut = downsample ? conv_bn(x, prefix + ".downsample.0", prefix + ".downsample.1",
                                         {4 * width, 1, stride, 0}, false, prof)
                               : x;
  LayerTimer timer(prof);
  Tensor out{std::vector<float>(c.data.size()), c.shape};
  add(c.data.data(), shortcut.data.data(), c.data.size(), out.data.data());
  relu(out.data.data(), out.data.size(), out.data.data());
  timer.done(prefix + ".add", "add+relu", out.shape, static_cast<double>(out.data.size()));
  return out;
}

void ResNet50::forward(const float* image, float* logits, Profiler* prof) const {
  Tensor x{std::vector<float>(image, image + kInput * kInput * 3), Shape{kInput, kInput, 3}};
  x = conv_bn(x, "conv1", "bn1", {64, 7, 2, 3}, true, prof);  // 112x112x64

  LayerTimer pool_timer(prof);
  const Shape ps = maxpool_shape(x.shape, 3, 2, 1);  // 56x56x64
  Tensor pooled{std::vector<float>(ps.size()), ps};
  maxpool(x.data.data(), x.shape, 3, 2, 1, pooled.data.data());
  x = pooled;
  pool_timer.done("maxpool", "maxpool3x3/s2", ps, 9.0 * ps.size());

  // Four stages of 3, 4, 6 and 3 blocks; stages 2-4 halve the spatial size in their first block.
  const int blocks[4] = {3, 4, 6, 3};
  const int widths[4] = {64, 128, 256, 512};
  for (int stage = 0; stage < 4; stage++) {
    for (int b = 0; b < blocks[stage]; b++) {
      const std::string prefix = "layer" + std::to_string(stage + 1) + "." + std::to_string(b);
      const int stride = (b == 0 && stage > 0) ? 2 : 1;
      x = bottleneck(x, prefix, widths[stage], stride, b == 0, prof);
    }
  }  // 7x7x2048

  LayerTimer avg_timer(prof);
  std::vector<float> features(x.shape.c);
  avgpool(x.data.data(), x.shape, features.data());
  avg_timer.done("avgpool", "avgpool", Shape{1, 1, x.shape.c}, static_cast<double>(x.shape.size()));

  LayerTimer fc_timer(prof);
  const float* w = pool_.get("fc.weight", static_cast<size_t>(kClasses) * x.shape.c);
  const float* bias = pool_.get("fc.bias", kClasses);
  fc(features.data(), x.shape.c, w, bias, kClasses, logits);
  fc_timer.done("fc", "fc", Shape{1, 1, kClasses}, 2.0 * kClasses * x.shape.c);
}
