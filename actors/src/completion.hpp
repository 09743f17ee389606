// The one rule by which a call, an op or a command completes: N parts answer, the first
// error among them is the outcome, and exactly one of the answers (the last) learns that it
// was the last, so that its caller, and only it, acts on the outcome. Local calls
// (call_state), a worker's ops and calls (dist_op, dist_call) and a server's commands
// (command_ack) all count with it.
// Thread-safety: done_one() and first_error() may be called from any thread at once;
// reset() only before the parts are handed out.
#pragma once

#include <atomic>
#include <cstddef>
#include <mutex>

#include "kvactor/error.hpp"

namespace kvactor::detail {

class completion {
 public:
  explicit completion(std::size_t parts = 0) noexcept : left_(parts) {}
  completion(const completion&) = delete;
  completion& operator=(const completion&) = delete;

  /// Sets the number of parts, for an owner that learns it only after construction.
  void reset(std::size_t parts) noexcept { left_.store(parts, std::memory_order_relaxed); }

  /// One part answered with s. True for exactly one call: the last part's (after which
  /// first_error() is the outcome). Locks only when s is an error and for the last part.
  bool done_one(const status& s) {
    if (!s.is_ok()) {
      std::lock_guard<std::mutex> g(mu_);
      if (first_.is_ok()) first_ = s;
    }
    return left_.fetch_sub(1, std::memory_order_acq_rel) == 1;
  }

  /// The first error any part reported, or ok.
  status first_error() const {
    std::lock_guard<std::mutex> g(mu_);
    return first_;
  }

  std::size_t left() const noexcept { return left_.load(std::memory_order_acquire); }

 private:
  std::atomic<std::size_t> left_;
  mutable std::mutex mu_;
  status first_;
};

}  // namespace kvactor::detail
