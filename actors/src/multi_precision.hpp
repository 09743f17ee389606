// Multi-precision: float16/bfloat16 weights are updated through a float32 master copy — the
// gradient is cast up, the optimizer updates the master, and the stored weight becomes the
// master's rounding (MXNet's multi_precision). float32/float64 weights pass straight through.
// The master lives in the key's optimizer_state, so it is saved and loaded with the state.
// Thread-safety: as the wrapped updater.
#pragma once

#include <memory>

#include "kvactor/result.hpp"
#include "kvactor/serialization/optimizer_config.hpp"
#include "kvactor/updater.hpp"

namespace kvactor::detail {

std::shared_ptr<const updater> with_multi_precision(std::shared_ptr<const updater> inner);

/// An optimizer config as stores and servers take it apart: multi_precision belongs to the
/// store (it wraps whichever optimizer), so it is taken out and the rest goes to the
/// optimizer registry (MXNet's servers likewise get the optimizer, then the multi-precision
/// command).
struct split_optimizer {
  optimizer_config inner;  // the config without multi_precision
  bool multi_precision = false;
  std::shared_ptr<const updater> inner_updater;  // built from inner, not wrapped
  /// The updater a store runs: inner_updater, wrapped when multi_precision.
  std::shared_ptr<const updater> effective() const;
};

/// The registry's error when the inner config names no valid optimizer.
result<split_optimizer> split_multi_precision(const optimizer_config& cfg);

}  // namespace kvactor::detail
