// The optimizer registry: turns a declarative optimizer_config into an updater. Shared by
// local stores and (later) servers, so both compute the same update.
// Thread-safety: pure function; the updaters it returns are safe to share across shards.
#pragma once

#include <memory>

#include "kvactor/result.hpp"
#include "kvactor/serialization/optimizer_config.hpp"
#include "kvactor/updater.hpp"

namespace kvactor::detail {

/// invalid_argument for an unknown type, an unknown hyper-parameter or a value out of range.
result<std::shared_ptr<const updater>> make_optimizer(const optimizer_config& cfg);

}  // namespace kvactor::detail
