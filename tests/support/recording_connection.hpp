// A worker's connection for server tests without sockets: it keeps what is sent on it and how
// it closed, and says it is worker `rank`.
// Thread-safety: send and close from any thread (under mu); read `sent` and `closed` under mu.
#pragma once

#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "kvactor/net/transport.hpp"

namespace kvactor::detail::testing {

class recording_connection final : public net::connection {
 public:
  explicit recording_connection(std::int64_t rank = 0) {
    id_.role = "worker";
    id_.rank = rank;
  }
  void send(net::outgoing m) override {
    std::lock_guard<std::mutex> g(mu);
    sent.push_back(std::move(m));
    cv.notify_all();
  }
  void close(const status& why) override {
    std::lock_guard<std::mutex> g(mu);
    if (closed.is_ok()) closed = why;
    cv.notify_all();
  }
  bool is_open() const override { return closed.is_ok(); }
  const net::identity& peer() const override { return id_; }
  std::string remote_address() const override { return "worker:1"; }
  std::string local_address() const override { return "server:2"; }

  std::mutex mu;
  std::condition_variable cv;
  std::vector<net::outgoing> sent;
  status closed;

 private:
  net::identity id_;
};

}  // namespace kvactor::detail::testing
