// common/weights_error.h — the error every stage's weight reader throws for a missing, short or unreadable tensor
// file; each binding registers it as its module's WeightsError, which pyresnet.load turns into one sentence.
#pragma once
#include <stdexcept>

struct WeightsError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
