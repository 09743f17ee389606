// A server shard's core and who runs it now. The shard actor's handlers wait for the gate;
// the I/O thread that decoded a small request only tries it, and handles the request itself
// when the gate is free, the core exists and no message to the actor is in flight (then
// everything sent to the shard before has been handled, so each connection's order holds).
// That saves a hand-off to an actor thread per small request; big requests (an update could
// hold the I/O thread for milliseconds), batches and commands always go by message.
// Thread-safety: the core and what the actor keeps with it only under `mu`; in_flight is
// atomic (counted up before a message to the actor is sent, down by the actor, under `mu`,
// when it takes it). No I/O thread ever waits for `mu`.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>

#include "server_core.hpp"

namespace kvactor::detail {

struct server_gate {
  /// Requests of at most this many bytes (their part's values) may run on an I/O thread.
  static constexpr std::size_t inline_bytes = 64 * 1024;

  std::mutex mu;
  std::atomic<std::size_t> in_flight{0};
  std::unique_ptr<server_core> core;  // null until the node table came

  /// The core, held, if r may run here and now; null otherwise (then send r to the actor).
  std::unique_lock<std::mutex> try_here(const server_request& r) {
    if (!r.rejected.is_ok() || r.meta.dtype > static_cast<std::uint8_t>(dtype::uint8) ||
        r.meta.numel > inline_bytes / size_of(static_cast<dtype>(r.meta.dtype)) ||
        in_flight.load(std::memory_order_acquire) != 0)
      return {};
    std::unique_lock<std::mutex> held(mu, std::try_to_lock);
    if (!held || !core || in_flight.load(std::memory_order_acquire) != 0) return {};
    return held;
  }
};

}  // namespace kvactor::detail
