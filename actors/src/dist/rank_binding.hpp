// Worker ranks bound to connections. Holding the secret lets a process authenticate as any
// rank; what proves the rank the scheduler assigned is a token: the scheduler draws a random
// key per job, gives each worker HMAC(key, its rank) and each server the key. A worker's
// first request on a server connection is bind_rank with its token; a server takes requests
// only from a connection bound that way, and binds each rank once, so a second connection
// claiming a live rank is refused whatever it holds.
// Thread-safety: rank_binding is safe to use from any thread; answers run outside its lock.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "kvactor/result.hpp"

namespace kvactor::detail {

/// A fresh random key for a job (32 bytes); internal when no randomness is available.
result<std::string> new_rank_key();

/// The token of worker `rank` under `key`, as the scheduler gives it and servers check it.
result<std::string> rank_token(const std::string& key, const std::string& cluster_id,
                               std::int64_t rank);

class rank_binding {
 public:
  explicit rank_binding(std::string cluster_id) : cluster_id_(std::move(cluster_id)) {}

  /// A connection's claim to be worker `rank`. `answer` gets ok once the connection is bound,
  /// or unauthenticated with the reason; before the key is known the claim waits for it.
  void claim(const void* conn, std::int64_t rank, std::string token,
             std::function<void(const status&)> answer);
  /// The key arrived (in the node table): decides the claims that waited.
  void set_key(std::string key);
  /// The rank bound to conn, or -1.
  std::int64_t rank_of(const void* conn) const;
  /// conn closed. Its rank stays spent: worker connections are never made twice.
  void forget(const void* conn);

 private:
  struct pending {
    const void* conn;
    std::int64_t rank;
    std::string token;
    std::function<void(const status&)> answer;
  };
  status decide_locked(const void* conn, std::int64_t rank, const std::string& token);

  const std::string cluster_id_;
  mutable std::mutex mu_;
  std::string key_;  // empty until the node table arrives
  std::vector<pending> waiting_;
  std::unordered_map<const void*, std::int64_t> bound_;
  std::unordered_set<std::int64_t> spent_;
};

}  // namespace kvactor::detail
