// A server's answers to one fused batch (wire::msg::batch): the answers given while the
// batch's shards apply it are gathered and leave as one batch_reply; an answer that comes
// later (a dist_sync push waits for the other workers' pushes) leaves alone, as a reply, so
// that no request's answer waits for another's.
// No CAF: shards report through shard_done() when they have handled their share.
// Thread-safety: every member may be called from any thread (shards run on any); the gathered
// answers are guarded by a mutex.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "../completion.hpp"
#include "kvactor/net/transport.hpp"
#include "kvactor/tensor.hpp"
#include "server_core.hpp"

namespace kvactor::detail {

class reply_batch {
 public:
  /// Answers go to c on `stream`; a batch_reply carries at most max_meta metadata bytes and
  /// max_payload payload bytes (more answers: more messages).
  reply_batch(net::connection_ptr c, std::uint64_t stream, std::size_t max_meta,
              std::uint64_t max_payload);
  /// Sends what was gathered if shards never reported (a server that stops).
  ~reply_batch();
  reply_batch(const reply_batch&) = delete;
  reply_batch& operator=(const reply_batch&) = delete;

  /// Before the batch goes to its shards: how many shards will report, and how many
  /// requests it holds (room for their answers).
  void expect(std::size_t shards, std::size_t requests) {
    left_.reset(shards);
    gathered_.reserve(requests);
  }
  /// r's answer (r came in this batch).
  void reply(const server_request& r, const status& s, const tensor* value);
  /// A shard has handled its share; after the last, what was gathered leaves.
  void shard_done();

 private:
  struct answer {
    std::uint64_t id;
    std::int32_t priority;
    status s;
    tensor value;
  };
  void send(std::vector<answer>& answers);

  net::connection_ptr conn_;
  std::uint64_t stream_;
  std::size_t max_meta_;
  std::uint64_t max_payload_;
  completion left_;
  std::mutex mu_;
  bool open_ = true;              // guarded by mu_
  std::vector<answer> gathered_;  // ditto
};

}  // namespace kvactor::detail
