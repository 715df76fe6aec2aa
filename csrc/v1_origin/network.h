// network.h — ResNet-50 (torchvision's v1.5: the stride sits on the 3x3 conv of each stage's first block) for one
// 224x224 RGB image in HWC layout, built from the ops in ops.h.
//
// The model keeps only the path of the weights directory: every layer reads its weights from there when it runs.
#pragma once
#include <string>
#include <vector>

#include "ops.h"
#include "common/profile.h"

// An activation and its shape: every layer's output is a fresh heap buffer.
struct Tensor {
  std::vector<float> data;
  Shape shape;
};

class ResNet50 {
 public:
  static constexpr int kInput = 224;     // input is kInput x kInput x 3, HWC, normalised
  static constexpr int kClasses = 1000;  // output is kClasses logits

  // threads: ignored; the model runs on one thread whatever is asked.
  ResNet50(const std::string& weights_dir, int threads);
  int threads() const { return 1; }
  // image: kInput*kInput*3 floats; logits: kClasses floats. const and stateless: safe from several threads.
  // prof: nullptr, or a Profiler that receives one record per layer (pyresnet profile).
  void forward(const float* image, float* logits, Profiler* prof = nullptr) const;

 private:
  std::string dir_;
  Tensor conv_bn(const Tensor& x, const std::string& conv, const std::string& bn, ConvParams p, bool relu,
                 Profiler* prof) const;
  Tensor bottleneck(const Tensor& x, const std::string& prefix, int width, int stride, bool downsample,
                    Profiler* prof) const;
};
