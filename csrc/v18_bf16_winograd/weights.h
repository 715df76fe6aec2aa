// weights.h — reading tensors in the pyresnet weights format (weights/FORMAT.md), into one pool.
//
// One raw little-endian float32 file per tensor, <dir>/<torchvision state_dict key>.bin, conv weights in OHWI.
// The Python loader checks the manifest (every shape and sha256) before a model is built; this reader checks
// again that each file holds exactly the bytes the network expects, so a file that is missing, truncated or
// replaced later is an error naming the tensor, never a short read.
//
// The weights are read once, when the model is built, into a WeightPool: ONE contiguous float arena holding every
// tensor, plus an index from tensor name to (offset, count). Nothing is read from disk during an inference.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/weights_error.h"


// Reads <dir>/<name>.bin, which must hold exactly `count` float32 values, into dst[0 .. count).
void read_tensor(const std::string& dir, const std::string& name, size_t count, float* dst);

// Every tensor of a network in one contiguous arena. Usage: add() each tensor the network needs, then load()
// once; afterwards get() returns a tensor's floats. The arena never moves after load(), so pointers stay valid
// for the pool's lifetime. The arena starts on a 64-byte boundary (a cache line) and every tensor starts on one
// too, so the conv kernels' 32-byte weight loads never straddle two cache lines when a row is a multiple of 8
// floats (all but conv1's). A plain std::vector<float> promises only 16 bytes, and a large block from malloc starts
// 16 bytes past a cache line, so every other 32-byte load of a weight row would straddle two lines.
class WeightPool {
 public:
  // Registers tensor `name` of `count` floats (its place in the arena follows the tensors added before it).
  void add(const std::string& name, size_t count);
  // Allocates the arena (one allocation for all tensors) and reads every registered tensor into it.
  // Throws WeightsError, naming the tensor, for a missing or wrongly sized file.
  void load(const std::string& dir);
  // The floats of tensor `name`, which must have been added with exactly `count` floats (std::logic_error
  // otherwise: that is a bug in the network, not in the weights).
  const float* get(const std::string& name, size_t count) const;
  // Floats held by the arena (25.5 million for ResNet-50, about 102 MB, plus the padding between tensors).
  size_t floats() const { return total_; }

 private:
  struct Entry {
    size_t offset = 0, count = 0;
  };
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  static constexpr size_t kAlign = 64;                // bytes: the arena and every tensor start on a cache line
  std::vector<std::string> order_;                    // tensor names in arena order, for load()
  std::unordered_map<std::string, Entry> index_;      // name -> where its floats are
  size_t total_ = 0;                                  // floats registered so far, padding included
  std::unique_ptr<float[], Free> arena_;              // all the weights, back to back (std::aligned_alloc)
};
