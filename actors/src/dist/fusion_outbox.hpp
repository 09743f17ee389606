// A worker's fusion of small keys (what Horovod and BytePS call tensor fusion): the requests of
// small keys bound for one server are gathered into one batch message (wire::msg::batch)
// instead of travelling one message each. A server's batch leaves when the call that filled
// it has issued all its keys (end_call), when one more request would take it over its byte
// budget or over the metadata one message may carry, or - with a window - once the window
// since its first request has passed, so that requests of later calls join it.
// A batch of one request leaves as that request's own message.
// Order: a key's requests are added under its channel's lock, a server's batches leave in the
// order they were formed (handed to the connection under that server's lock) on one stream,
// and inside a batch requests are ordered by priority only where that keeps each key part's
// order (a request goes no earlier than any later request of its part).
// No CAF, no sockets: batches leave through the send function the router gives.
// Thread-safety: every member may be called from any thread; each server's batch is guarded
// by its own mutex; the window's thread (only with a window) takes the same locks.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "kvactor/net/transport.hpp"
#include "kvactor/serialization/protocol.hpp"

namespace kvactor::detail {

struct fusion_settings {
  /// Keys of at most this many bytes (and whole on one server) are fused; 0: none is.
  std::uint64_t key_bytes = 0;
  /// A batch leaves once the bytes its requests move (sent or answered) reach this.
  std::uint64_t budget = 0;
  /// How long a batch waits for requests of later calls; 0: only one call's keys travel
  /// together.
  std::chrono::microseconds window{0};
  /// The metadata a batch may carry (the transport's cap, less room for the message head).
  std::size_t max_meta_bytes = 0;
};

class fusion_outbox {
 public:
  /// Sends a batch to a server: ok, or why it could not go (then every request in it fails).
  using send_fn = std::function<status(std::uint32_t server, net::outgoing&& batch)>;
  /// Fails the request sent under id with why.
  using fail_fn = std::function<void(std::uint64_t id, const status& why)>;

  fusion_outbox(fusion_settings s, send_fn send, fail_fn fail);
  ~fusion_outbox();
  fusion_outbox(const fusion_outbox&) = delete;
  fusion_outbox& operator=(const fusion_outbox&) = delete;

  /// Once the number of servers is known, before the first add(); starts the window's thread.
  void start(std::uint32_t servers);
  /// Sends what is pending and stops the window's thread.
  void stop();

  /// Whether a key of `bytes` bytes in `parts` parts travels fused.
  bool fuses(std::uint64_t bytes, std::size_t parts) const noexcept {
    return parts == 1 && bytes <= settings_.key_bytes && bytes > 0;
  }
  /// A tracked request for `server`: m without its meta (d is its data meta), `weight` the
  /// bytes it moves either way. m's payload must stay valid until the batch has left.
  void add(std::uint32_t server, net::outgoing&& m, wire::data_meta&& d, std::uint64_t weight);
  /// A call has issued all its keys: without a window, its batches leave now.
  void end_call();
  /// Every pending batch leaves now (before commands, barriers and shutdown).
  void flush();

  const fusion_settings& settings() const noexcept { return settings_; }

 private:
  using clock = std::chrono::steady_clock;
  struct entry {
    net::outgoing m;
    wire::data_meta d;
  };
  struct pending {
    std::mutex mu;
    std::vector<entry> entries;
    std::uint64_t weight = 0;
    std::size_t meta_bytes = 0;
    clock::time_point due = clock::time_point::max();
  };

  // Requests of a batch that could not leave: failed once no lock is held (a failure
  // completes futures, whose continuations may call into the store).
  struct unsent {
    status why;
    std::vector<std::uint64_t> ids;
  };
  unsent send_locked(std::uint32_t server, pending& p);
  void report(unsent&& u);
  void run_window();

  const fusion_settings settings_;
  send_fn send_;
  fail_fn fail_;
  std::vector<std::unique_ptr<pending>> servers_;

  std::mutex window_mu_;
  std::condition_variable window_cv_;
  clock::time_point next_due_ = clock::time_point::max();  // guarded by window_mu_
  bool stopping_ = false;                                  // ditto
  std::thread window_;
};

/// The order a batch's entries leave in: by priority, highest first, as far as each key
/// part's own order allows (stable otherwise). Returns the permutation of indices.
std::vector<std::size_t> fusion_order(const std::vector<std::int32_t>& priorities,
                                      const std::vector<const wire::data_meta*>& metas);

}  // namespace kvactor::detail
