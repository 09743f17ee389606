// Optimizer state tensors as checkpoint records (serialization/optimizer_states.hpp) and
// back; used by local stores and servers alike.
// Thread-safety: pure functions.
#pragma once

#include "kvactor/serialization/optimizer_states.hpp"
#include "kvactor/tensor.hpp"

namespace kvactor::detail {

/// A copy of t's bytes with its element type and shape.
wire::slot_record to_slot(const tensor& t);

}  // namespace kvactor::detail
