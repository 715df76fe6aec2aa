// weights.h — reading tensors in the pyresnet weights format (weights/FORMAT.md).
//
// One raw little-endian float32 file per tensor, <dir>/<torchvision state_dict key>.bin, conv weights in OHWI.
// The Python loader checks the manifest (every shape and sha256) before a model is built; this reader checks
// again that each file holds exactly the bytes the network expects, so a file that is missing, truncated or
// replaced later is an error naming the tensor, never a short read.
//
// The network calls read_tensor() for every layer of every inference, as the original did: the weights are read
// from disk again and again.
#pragma once
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/weights_error.h"


// Reads <dir>/<name>.bin, which must hold exactly `count` float32 values.
std::vector<float> read_tensor(const std::string& dir, const std::string& name, size_t count);
