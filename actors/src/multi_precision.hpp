// Multi-precision: float16/bfloat16 weights are updated through a float32 master copy — the
// gradient is cast up, the optimizer updates the master, and the stored weight becomes the
// master's rounding (MXNet's multi_precision). float32/float64 weights pass straight through.
// The master lives in the key's optimizer_state, so it is saved and loaded with the state.
// Thread-safety: as the wrapped updater.
#pragma once

#include <memory>

#include "kvactor/updater.hpp"

namespace kvactor::detail {

std::shared_ptr<const updater> with_multi_precision(std::shared_ptr<const updater> inner);

}  // namespace kvactor::detail
