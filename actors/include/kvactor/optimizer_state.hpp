// The per-key state of kvactor's built-in optimizers: how many updates the key has had (it
// drives learning-rate schedules and bias corrections) and the optimizer's slots (momentum,
// moving averages, ...), each shaped like the weight. This is what save_optimizer_states
// writes and load_optimizer_states restores.
// Thread-safety: owned by one shard; not shared.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvactor/tensor.hpp"
#include "kvactor/updater.hpp"

namespace kvactor {

class optimizer_state final : public updater_state {
 public:
  /// Updates applied to this key so far.
  std::uint64_t count = 0;
  /// The optimizer's tensors, in the order its documentation gives (e.g. Adam: mean, var).
  std::vector<tensor> slots;
  /// Under multi-precision, the float32 master copy of a float16/bfloat16 weight (the
  /// optimizer updates it; the stored weight is its rounding). Undefined otherwise.
  tensor master;
};

}  // namespace kvactor
