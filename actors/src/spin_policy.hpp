#pragma once
// Whether a thread about to wait for a future should spin before parking, learned from that
// thread's own recent waits.
//
// Spinning saves the parking and waking (tens of microseconds on a loaded 2-core machine) when
// the result comes soon, and burns the CPU the operation's own I/O threads need when it does
// not: in 2x2 dist_sync rounds of 4 B, where a round waits for the other worker, the callers'
// spins were most of the gap between the store's CPU per operation and a raw exchange's. So a
// thread spins while enough of its last waits ended within the spin window, whether it spun
// for them or parked (a parked waiter learns when its state was published), and parks at once
// otherwise; one quick wait in a few turns spinning back on.
//
// Thread-safety: none; each thread owns its policy (thread_local in future.cpp).
#include <chrono>
#include <cstdint>

namespace kvactor::detail {

class spin_policy {
 public:
  static constexpr auto window = std::chrono::microseconds(30);
  /// Waits remembered, and how many of them must have ended within the window to spin.
  static constexpr int remembered = 16;
  static constexpr int quick_needed = 4;

  bool should_spin() const noexcept { return __builtin_popcount(history_) >= quick_needed; }

  /// One wait that had to wait (the state was not ready when it began) ended after `took`.
  void record(std::chrono::steady_clock::duration took) noexcept {
    const std::uint32_t quick = took <= window ? 1u : 0u;
    history_ = ((history_ << 1) | quick) & mask;
  }

 private:
  static constexpr std::uint32_t mask = (1u << remembered) - 1;
  std::uint32_t history_ = mask;  // a new thread spins, as every thread did before
};

}  // namespace kvactor::detail
