// The raw TCP baseline of bench_dist: S raw servers and C raw clients, threads of the driver
// process, exchanging the store's message pattern (the same parts, windows and bytes) with a
// minimal framing: a 16-byte request header {up, down} + up bytes, an 8-byte answer header
// {down} + down bytes. Every buffer is pooled and touched beforehand.
// Thread-safety: one thread drives a raw_mesh; run() starts and joins the client threads.
#pragma once

#include <kvactor/buffer_pool.hpp>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "config.hpp"
#include "measure.hpp"

namespace kvbench::dist {

/// A pooled buffer of at least 64 bytes, written once so that its pages are resident.
struct touched {
  std::shared_ptr<kvactor::buffer> buf;
  char* p = nullptr;
  explicit touched(std::size_t n)
      : buf(kvactor::buffer_pool::global().acquire(std::max<std::size_t>(n, 64))) {
    p = static_cast<char*>(buf->data());
    std::memset(p, 1, std::max<std::size_t>(n, 64));
  }
};

class raw_server;
class raw_client;

class raw_mesh {
 public:
  /// `servers` raw servers, `clients` raw clients each connected to every server; parts of
  /// up to max_part bytes.
  raw_mesh(int servers, int clients, std::size_t max_part);
  ~raw_mesh();

  /// One block: `warm` operations per client untimed, then n timed ones, at most `window`
  /// outstanding per client; the clients start together. CPU and context switches are this
  /// process's (raw clients and servers alike). rounds: a server answers a request that
  /// carries bytes only once every client's request of that round came (dist_sync's pushes).
  block_times run(const std::vector<part>& parts, op_kind o, std::size_t n, std::size_t window,
                  std::size_t warm, bool want_lat, bool rounds = false);

 private:
  touched sbuf_;
  std::vector<std::unique_ptr<raw_server>> servers_;
  std::vector<std::unique_ptr<raw_client>> clients_;
};

}  // namespace kvbench::dist
