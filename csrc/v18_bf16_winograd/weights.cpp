// weights.cpp — reads tensor files of the pyresnet weights format into one arena; see weights.h.
//
// read_tensor() reads into memory the caller provides (a slice of the WeightPool's arena), and WeightPool gathers
// every tensor of the network at load time, in one 64-byte aligned allocation.
#include "weights.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <new>

void read_tensor(const std::string& dir, const std::string& name, size_t count, float* dst) {
  const std::string path = dir + "/" + name + ".bin";
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw WeightsError("weights: tensor '" + name + "': cannot open " + path);
  // The file must hold exactly count floats: fewer is a truncated file, more is a different shape.
  std::fseek(f.get(), 0, SEEK_END);
  const long bytes = std::ftell(f.get());
  std::fseek(f.get(), 0, SEEK_SET);
  if (bytes < 0 || static_cast<size_t>(bytes) != count * sizeof(float))
    throw WeightsError("weights: tensor '" + name + "': " + path + " has " + std::to_string(bytes) +
                       " bytes, expected " + std::to_string(count * sizeof(float)));
  if (std::fread(dst, sizeof(float), count, f.get()) != count)
    throw WeightsError("weights: tensor '" + name + "': short read from " + path);
}

void WeightPool::add(const std::string& name, size_t count) {
  if (arena_) throw std::logic_error("WeightPool::add after load: " + name);
  if (!index_.emplace(name, Entry{total_, count}).second)
    throw std::logic_error("WeightPool: tensor '" + name + "' added twice");
  order_.push_back(name);
  constexpr size_t line = kAlign / sizeof(float);
  total_ += (count + line - 1) / line * line;  // the next tensor starts on a cache line too
}

void WeightPool::load(const std::string& dir) {
  // The one allocation for every weight of the network; total_ is a multiple of 16 floats, as aligned_alloc
  // wants the size to be a multiple of the alignment. Not zeroed: every float is read from a file (the few
  // padding floats between tensors are never read).
  arena_.reset(static_cast<float*>(std::aligned_alloc(kAlign, std::max<size_t>(total_, 1) * sizeof(float))));
  if (!arena_) throw std::bad_alloc();
  for (const std::string& name : order_) {
    const Entry& e = index_.at(name);
    read_tensor(dir, name, e.count, arena_.get() + e.offset);
  }
}

const float* WeightPool::get(const std::string& name, size_t count) const {
  const auto it = index_.find(name);
  if (it == index_.end() || it->second.count != count || !arena_)
    throw std::logic_error("WeightPool: tensor '" + name + "' was not loaded with " + std::to_string(count) +
                           " floats");
  return arena_.get() + it->second.offset;
}
