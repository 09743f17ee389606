// Private to device/src: the host thread that runs device completion callbacks, one at a time
// in the order they were posted (the CUDA driver's callback thread and the emulated streams
// only post here, so that callbacks may call back into CUDA and kvactor). An exception
// escaping a callback is reported on stderr.
// Thread-safety: post() may be called from any thread.
#pragma once

#include <functional>

namespace kvactor::detail {

/// Never blocks for long; throws std::bad_alloc when the queue cannot grow.
void post_callback(std::function<void()> fn);

}  // namespace kvactor::detail
