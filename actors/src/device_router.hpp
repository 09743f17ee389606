// The router of dist_sync_device / dist_async_device: a wrapper around the cluster router
// that takes values and outputs on CUDA devices (device_router.cpp says how and in what
// order).
// Thread-safety: as every router (store_front.hpp).
#pragma once

#include <memory>

#include "store_front.hpp"

namespace kvactor::detail {

/// `inner` (the cluster router, built on `st`) behind the device wrapper.
std::unique_ptr<router> with_device_values(front_state& st, std::unique_ptr<router> inner);

}  // namespace kvactor::detail
