// Which thread runs a shard's core (shard_core.hpp) now. The shard actor's handlers wait for
// the gate; any other thread only tries it and, when the gate is taken, sends a message
// instead. So an op for an idle shard starts on the thread that issued it (no hand-off to a
// parked actor worker), and a reducer thread that finishes a step goes on with the op itself,
// while everything else still goes through the actor's mailbox in order.
//
// Order: the gate counts the messages sent to the actor and not yet taken by it. An op may
// enter the core off the actor only while none is in flight (`quiet()`): then every op sent
// earlier is already in the key scheduler, which keeps ordering per key and priority across
// keys exactly as for ops that came by message. The scheduler's own "mailbox is quiet" test
// reads the same count.
//
// Completions: the core does not complete a call's future while it holds the gate; it
// collects them, and the holder runs them once it has released the gate, so a user's
// continuation never runs inside the gate (where a call back into the store would find the
// gate taken by its own thread).
//
// Thread-safety: every member may be called from any thread; the core behind the gate only by
// the thread that holds it.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>

#include "shard_core.hpp"

namespace kvactor::detail {

class shard_gate {
 public:
  /// The right to run the core, released (and the collected completions run) on destruction.
  class hold {
   public:
    hold() = default;
    hold(hold&& o) noexcept : g_(o.g_), prev_(o.prev_) { o.g_ = nullptr; }
    hold& operator=(hold&&) = delete;
    hold(const hold&) = delete;
    hold& operator=(const hold&) = delete;
    ~hold() { release(); }

    explicit operator bool() const noexcept { return g_ != nullptr; }
    shard_core& core() const noexcept { return *g_->core_; }
    /// Gives up the gate, then completes the calls the core finished meanwhile.
    void release() {
      if (!g_) return;
      shard_core::finished_calls done;
      g_->core_->take_finished(done);
      held_ = prev_;
      g_->mu_.unlock();
      g_ = nullptr;
      shard_core::complete(done);
    }

   private:
    friend class shard_gate;
    explicit hold(shard_gate* g) noexcept : g_(g), prev_(held_) { held_ = g; }
    shard_gate* g_ = nullptr;
    const shard_gate* prev_ = nullptr;
  };

  shard_gate() = default;
  shard_gate(const shard_gate&) = delete;
  shard_gate& operator=(const shard_gate&) = delete;

  /// Installs the core (once, before the gate is used).
  void set_core(std::unique_ptr<shard_core> c) { core_ = std::move(c); }

  /// Waits for the gate (the actor's handlers; the holder never waits for the actor).
  hold enter() {
    mu_.lock();
    return hold{this};
  }
  /// The gate if it is free now; empty when another thread holds it, or this one does (a
  /// call into the store from inside the core: an updater, a fence's action).
  hold try_enter() {
    if (held_ == this || !mu_.try_lock()) return {};
    return hold{this};
  }

  /// A message to the actor is about to be sent (it counts until the actor takes it).
  void note_sent() noexcept { in_flight_.fetch_add(1, std::memory_order_acq_rel); }
  /// The actor took a message (called while holding the gate, before handling it).
  void note_taken() noexcept { in_flight_.fetch_sub(1, std::memory_order_acq_rel); }
  /// No message to the actor is in flight: everything sent so far is in the core.
  bool quiet() const noexcept { return in_flight_.load(std::memory_order_acquire) == 0; }

 private:
  static inline thread_local const shard_gate* held_ = nullptr;
  std::mutex mu_;
  std::atomic<std::size_t> in_flight_{0};
  std::unique_ptr<shard_core> core_;
};

}  // namespace kvactor::detail
