// network.cpp — ResNet-50 written the way one first writes it down.
//
// The network is a walk over torchvision's layer list: conv -> BatchNorm -> ReLU, maxpool, sixteen bottleneck
// blocks in four stages, global average pool, fc. Each layer reads its weights from the weights directory when
// it runs and returns a newly allocated output.
#include "network.h"

#include "weights.h"

ResNet50::ResNet50(const std::string& weights_dir, int /*threads*/) : dir_(weights_dir) {}

// conv (no bias) -> BatchNorm -> optional ReLU; `conv` and `bn` are state_dict prefixes such as "layer1.0.conv1".
Tensor ResNet50::conv_bn(const Tensor& x, const std::string& conv, const std::string& bn, ConvParams p,
                         bool relu_after, Profiler* prof) const {
  LayerTimer timer(prof);
  const Shape os = conv2d_shape(x.shape, p);
  Tensor y{std::vector<float>(os.size()), os};
  const size_t wcount = static_cast<size_t>(p.cout) * p.kernel * p.kernel * x.shape.c;
  std::vector<float> w = read_tensor(dir_, conv + ".weight", wcount);  // from disk, every inference
  conv2d(x.data.data(), x.shape, w.data(), p, y.data.data());

  const size_t c = static_cast<size_t>(p.cout);
  std::vector<float> mean = read_tensor(dir_, bn + ".running_mean", c);
  std::vector<float> var = read_tensor(dir_, bn + ".running_var", c);
  std::vector<float> gamma = read_tensor(dir_, bn + ".weight", c);
  std::vector<float> beta = read_tensor(dir_, bn + ".bias", c);
  Tensor z{std::vector<float>(os.size()), os};
  batchnorm(y.data.data(), os, mean.data(), var.data(), gamma.data(), beta.data(), 1e-5f, z.data.data());
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
  std::vector<float> w = read_tensor(dir_, "fc.weight", static_cast<size_t>(kClasses) * x.shape.c);
  std::vector<float> bias = read_tensor(dir_, "fc.bias", kClasses);
  fc(features.data(), x.shape.c, w.data(), bias.data(), kClasses, logits);
  fc_timer.done("fc", "fc", Shape{1, 1, kClasses}, 2.0 * kClasses * x.shape.c);
}
