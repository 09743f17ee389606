// The state a runtime shares with its connections and listeners: the io_context, the buffer
// pool and the registry that shutdown() walks. Connections and listeners hold it by
// shared_ptr, so the io_context outlives every socket and timer bound to it.
// Thread-safety: the registry is guarded by mu; io is Asio's (thread-safe); the counters are
// atomic.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "kvactor/buffer_pool.hpp"

namespace kvactor::net::detail {

class conn_impl;
class listener_impl;

/// One line on stderr, written with a single call so that lines of threads do not mix.
void log_line(const std::string& text);

struct core {
  explicit core(buffer_pool* p) : pool(p) {}

  boost::asio::io_context io;
  buffer_pool* const pool;

  /// Registers c unless the runtime is shutting down.
  bool add(const std::shared_ptr<conn_impl>& c);
  void remove(conn_impl* c);
  bool add(const std::shared_ptr<listener_impl>& l);
  void remove(listener_impl* l);

  /// Runs f on an I/O thread, or right here once the I/O threads are gone (so that a
  /// completion promised "exactly once" is not lost in an io_context that never runs again).
  template <class Executor, class F>
  void post_or_run(const Executor& ex, F&& f) {
    {
      std::lock_guard<std::mutex> g(mu);
      if (!io_gone) {
        boost::asio::post(ex, std::forward<F>(f));
        return;
      }
    }
    f();
  }

  // Counters for runtime::get_stats(); kept by the connections on their strands.
  std::atomic<std::size_t> pending{0};
  std::atomic<std::uint64_t> read_buffer_bytes{0};
  std::atomic<std::size_t> shm_segments{0};
  std::atomic<std::uint64_t> shm_bytes_sent{0};
  std::atomic<std::uint64_t> shm_bytes_received{0};

  std::mutex mu;
  bool stopping = false;  ///< shutdown() began: nothing new is registered
  bool io_gone = false;   ///< the I/O threads have exited
  std::unordered_map<conn_impl*, std::shared_ptr<conn_impl>> conns;
  std::unordered_map<listener_impl*, std::shared_ptr<listener_impl>> listeners;
};

}  // namespace kvactor::net::detail
