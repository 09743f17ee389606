// The errors of a store's calls that nobody looked at, kept for kvstore::wait_all() to report
// (MXNet's engine rethrows on WaitAll): a pull of an uninitialised key whose future was
// dropped must not pass silently.
// Thread-safety: every member may be called from any thread.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "kvactor/future.hpp"

namespace kvactor::detail {

class unobserved_errors final : public error_sink,
                                public std::enable_shared_from_this<unobserved_errors> {
 public:
  /// Remembers f's error, if it completes with one, until the next take_first().
  void watch(const future<void>& f);
  void failed(std::shared_ptr<const state_base> s) override;
  /// The first error (in completion order) recorded since the previous call whose future
  /// nobody has observed (get, get_status, then, when_all), or ok. Forgets all of them.
  status take_first();

 private:
  // Under mu_: drops what can no longer be the answer, so that a program that never calls
  // wait_all() does not accumulate every failed call.
  void prune();

  std::mutex mu_;
  std::vector<std::shared_ptr<const state_base>> failed_;  // in completion order
  std::size_t prune_at_ = 64;
};

}  // namespace kvactor::detail
