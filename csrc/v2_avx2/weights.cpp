// weights.cpp — reads one tensor file of the pyresnet weights format; see weights.h.
#include "weights.h"

#include <cstdio>
#include <memory>

std::vector<float> read_tensor(const std::string& dir, const std::string& name, size_t count) {
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
  std::vector<float> data(count);
  if (std::fread(data.data(), sizeof(float), count, f.get()) != count)
    throw WeightsError("weights: tensor '" + name + "': short read from " + path);
  return data;
}
