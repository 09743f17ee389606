// A whole cluster inside the test process: the scheduler and servers run on threads (the
// functions kvactor-server calls), and workers are dist stores made from a cluster_config, so
// no environment variable is touched. Also: capturing this process's stderr, where nodes log.
// Thread-safety: one test thread uses each object.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "dist/nodes.hpp"
#include "kvactor/kvstore.hpp"

namespace kvactor::testing {

/// A TCP port on 127.0.0.1 that was free a moment ago (and that nobody listens on now).
inline int unused_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    return -1;
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

/// A cluster of `servers` servers and `workers` workers on 127.0.0.1:port.
inline detail::cluster_config cluster_config_for(int port, std::uint32_t servers,
                                                 std::uint32_t workers,
                                                 std::chrono::milliseconds timeout) {
  detail::cluster_config c;
  c.role = "worker";
  c.root_host = "127.0.0.1";
  c.root_port = static_cast<std::uint16_t>(port);
  c.num_servers = servers;
  c.num_workers = workers;
  c.cluster_id = "in-process-" + std::to_string(port);
  c.secret = "an-in-process-test-secret";
  c.node_host = "127.0.0.1";
  c.connect_timeout = timeout;
  return c;
}

/// Runs the scheduler and the servers of cfg on threads until they return.
class node_threads {
 public:
  explicit node_threads(const detail::cluster_config& cfg) {
    codes_ = std::vector<std::atomic<int>>(1 + cfg.num_servers);
    for (auto& c : codes_)
      c = -1;
    threads_.emplace_back([this, cfg] { codes_[0] = detail::run_scheduler(cfg); });
    for (std::uint32_t s = 0; s < cfg.num_servers; ++s)
      threads_.emplace_back([this, cfg, s] {
        options o;
        o.worker_threads = 1;
        codes_[1 + s] = detail::run_server(cfg, o);
      });
  }
  ~node_threads() { join(); }
  node_threads(const node_threads&) = delete;
  node_threads& operator=(const node_threads&) = delete;

  /// Waits for every node; their exit codes, the scheduler's first.
  std::vector<int> join() {
    for (auto& t : threads_)
      if (t.joinable()) t.join();
    std::vector<int> out;
    for (auto& c : codes_)
      out.push_back(c);
    return out;
  }

 private:
  std::vector<std::atomic<int>> codes_;
  std::vector<std::thread> threads_;
};

/// A worker's store of cfg's cluster (joins it: blocks until the cluster has assembled).
inline kvstore join_as_worker(const detail::cluster_config& cfg, const std::string& type) {
  return kvstore{detail::make_dist_store(type, options{}, cfg, /*device_values=*/false)};
}

/// While alive, whatever this process writes to stderr goes to a file; text() reads it.
class stderr_capture {
 public:
  stderr_capture() : file_(std::tmpfile()) {
    std::fflush(stderr);
    saved_ = ::dup(2);
    ::dup2(::fileno(file_), 2);
  }
  ~stderr_capture() {
    restore();
    std::fclose(file_);
  }
  stderr_capture(const stderr_capture&) = delete;
  stderr_capture& operator=(const stderr_capture&) = delete;

  /// Stops capturing (idempotent) and returns everything captured.
  std::string text() {
    restore();
    std::string out;
    std::rewind(file_);
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, file_)) > 0;)
      out.append(buf, n);
    return out;
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    saved_ = -1;
  }
  std::FILE* file_;
  int saved_ = -1;
};

}  // namespace kvactor::testing
