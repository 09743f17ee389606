// A server shard's core and who runs it now. The shard actor's handlers wait for the gate;
// the I/O thread that decoded a request (or a fused batch's share of this shard) only tries
// it, and handles the request itself when the gate is free, the core exists and no message to
// the actor is in flight (then everything sent to the shard before has been handled, so each
// connection's order holds). That saves a hand-off to an actor thread and back per request.
// It may, when the request holds at most 64 KiB of values (a batch's share: all of them
// together), or at any size while the shard has no updater: a round then closes by taking its
// sum as the value and a pull answers with a reference to it, so nothing costs more than the
// pass over the bytes that receiving them took. An update could hold the I/O thread for
// milliseconds, so with an updater big requests go by message; commands always do.
// An I/O thread that opens a push's intake (push_intake.hpp) needs less: that no request of
// its worker to that key part, and no command, is in flight (try_for): the opening registers
// only that push in its part's round, and the core orders other workers' requests and other
// parts' against it as ever (each worker's requests to one part keep their order).
// Thread-safety: the core and what the actor keeps with it only under `mu`; the counts are
// atomic (counted up before a message to the actor is sent, down by the actor, under `mu`,
// when it takes it). No I/O thread ever waits for `mu`.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "server_core.hpp"

namespace kvactor::detail {

struct server_gate {
  /// Requests of at most this many bytes (their part's values) may run on an I/O thread.
  static constexpr std::size_t inline_bytes = 64 * 1024;
  /// The count a command is in flight under (every command: they may change any part).
  static constexpr std::size_t command_count = 255;

  std::mutex mu;
  std::atomic<std::size_t> in_flight{0};
  std::unique_ptr<server_core> core;  // null until the node table came
  /// core->streams(), readable without `mu` (kept by whoever changes the core's mode, under
  /// `mu`): where it is false no push is offered a sink, so none takes a detour.
  std::atomic<bool> streams{false};
  /// !core->effective_updater(), kept alike: where it is true a request of any size may run
  /// on an I/O thread.
  std::atomic<bool> no_updater{false};

  /// After the core's modes may have changed (holding `mu`).
  void note_modes() {
    streams.store(core->streams(), std::memory_order_release);
    no_updater.store(!core->effective_updater(), std::memory_order_release);
  }

  /// The count a request of `worker` to the key part `route` (its part_hash) is in flight
  /// under: hashed, so two pairs sharing one only make try_for stricter.
  static std::size_t count_for(std::int64_t worker, std::uint64_t route) noexcept {
    return static_cast<std::size_t>(
        (route ^ (static_cast<std::uint64_t>(worker) * 0x9E3779B97F4A7C15ull)) % command_count);
  }
  /// Before a message goes to the actor: `count` once per request it carries (a batch has
  /// several), `message` once per message.
  void sent(std::size_t count, bool message = true) {
    counts_[count].fetch_add(1, std::memory_order_acq_rel);
    if (message) in_flight.fetch_add(1, std::memory_order_acq_rel);
  }
  /// The actor took it (holding `mu`).
  void taken(std::size_t count, bool message = true) {
    if (message) in_flight.fetch_sub(1, std::memory_order_acq_rel);
    counts_[count].fetch_sub(1, std::memory_order_acq_rel);
  }

  /// The core, held, if r may run here and now; null otherwise (then send r to the actor).
  std::unique_lock<std::mutex> try_here(const server_request& r) {
    if (!may_run_here(r)) return {};
    return try_idle();
  }
  /// The same for a batch's share of this shard: all of its requests, or none; with an
  /// updater, at most inline_bytes of values in all.
  std::unique_lock<std::mutex> try_here(const std::vector<server_request_ptr>& rs) {
    const bool any_size = no_updater.load(std::memory_order_acquire);
    std::size_t bytes = 0;
    for (const auto& r : rs) {
      if (!may_run_here(*r)) return {};
      if (any_size) continue;
      bytes += r->meta.numel * size_of(static_cast<dtype>(r->meta.dtype));  // each <= 64 KiB
      if (bytes > inline_bytes) return {};
    }
    return try_idle();
  }

  /// The core, held, if the gate is free, the core exists and neither a request of `worker`
  /// to the key part `route` nor a command is in flight (everything they sent to the shard
  /// before has been handled); null otherwise.
  std::unique_lock<std::mutex> try_for(std::int64_t worker, std::uint64_t route) {
    auto& mine = counts_[count_for(worker, route)];
    auto quiet = [&] {
      return mine.load(std::memory_order_acquire) == 0 &&
             counts_[command_count].load(std::memory_order_acquire) == 0;
    };
    if (!quiet()) return {};
    std::unique_lock<std::mutex> held(mu, std::try_to_lock);
    if (!held || !core || !quiet()) return {};
    return held;
  }

 private:
  bool may_run_here(const server_request& r) const {
    return r.rejected.is_ok() && r.meta.dtype <= static_cast<std::uint8_t>(dtype::uint8) &&
           (r.meta.numel <= inline_bytes / size_of(static_cast<dtype>(r.meta.dtype)) ||
            no_updater.load(std::memory_order_acquire));
  }
  std::unique_lock<std::mutex> try_idle() {
    if (in_flight.load(std::memory_order_acquire) != 0) return {};
    std::unique_lock<std::mutex> held(mu, std::try_to_lock);
    if (!held || !core || in_flight.load(std::memory_order_acquire) != 0) return {};
    return held;
  }

  std::array<std::atomic<std::uint32_t>, command_count + 1> counts_{};
};

}  // namespace kvactor::detail
