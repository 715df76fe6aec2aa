// common/profile.h — per-layer timers for `pyresnet profile`, compiled into every stage's forward pass.
//
// The network takes an optional Profiler*; with nullptr (every normal logits() call) a LayerTimer is one
// pointer test and records nothing, so profiling costs nothing when it is off and never allocates then.
// A Profiler belongs to one forward call, so profiling is safe while other threads run the same model.
//
// Every stage constructs a LayerTimer before each layer, on the thread that called forward(): that makes it the
// one place where the frame sees a layer boundary, so it is also where an interrupted call stops
// (common/interrupt.h).
#pragma once
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/interrupt.h"
#include "common/shape.h"

struct LayerRecord {
  std::string name;  // torchvision-style layer name, e.g. "layer2.0.conv2"
  std::string op;    // what ran, e.g. "conv3x3/s2+bn+relu"
  Shape out;         // output shape
  double flops;      // 2 x multiply-adds for conv and fc; one per element touched for the others
  double ms;
};

struct Profiler {
  std::vector<LayerRecord> records;
};

// "conv3x3/s2" + suffix: the op label of a conv layer (built only when profiling).
inline std::string conv_label(ConvParams p, const char* suffix) {
  std::string k = std::to_string(p.kernel);
  return "conv" + k + "x" + k + (p.stride > 1 ? "/s" + std::to_string(p.stride) : "") + suffix;
}

// Times one layer: construct before the work, call done() after it.
class LayerTimer {
 public:
  explicit LayerTimer(Profiler* p) : p_(p) {
    check_interrupt();  // throws Interrupted between two layers of an interrupted call
    if (p_) t0_ = std::chrono::steady_clock::now();
  }
  bool on() const { return p_ != nullptr; }
  // Takes string views, so a call with literals costs nothing when profiling is off; a name that must be built
  // (prefix + ".add") is built under `if (on())`.
  void done(std::string_view name, std::string_view op, Shape out, double flops) {
    if (!p_) return;
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0_).count();
    p_->records.push_back({std::string(name), std::string(op), out, flops, ms});
  }

 private:
  Profiler* p_;
  std::chrono::steady_clock::time_point t0_{};
};
