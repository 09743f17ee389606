// A server's answers to one fused batch (wire::msg::batch): the answers given while the
// batch's shards apply it are gathered and leave as one batch_reply; an answer that comes
// later (a dist_sync push waits for the other workers' pushes) does not wait for anything
// either: given while another batch is applied (the batch whose push closed the round), it
// leaves with that batch's answers, in one batch_reply per connection; otherwise alone, as a
// reply.
// No CAF: shards report through shard_done() when they have handled their share.
// Thread-safety: every member may be called from any thread (shards run on any); the gathered
// answers are guarded by a mutex. An `applying` scope belongs to the thread that opened it.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "../completion.hpp"
#include "kvactor/net/transport.hpp"
#include "kvactor/tensor.hpp"
#include "server_core.hpp"

namespace kvactor::detail {

class reply_batch {
  struct answer {
    std::uint64_t id;
    std::int32_t priority;
    status s;
    tensor value;
  };
  // Late answers of other batches, by the connection and stream they go to.
  struct late_group {
    net::connection_ptr conn;
    std::uint64_t stream;
    std::vector<answer> answers;
  };

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

  /// A shard applies its share of `b` on this thread (opened before, closed before its
  /// shard_done()). Its answers to b's requests gather here, without the lock the batch's
  /// shards would contend for on every answer, and so do the late answers of other batches
  /// given meanwhile: in a dist_sync cluster one worker's batch closes the rounds of many
  /// small keys at once, and each would otherwise answer another worker's push with a message
  /// of its own. On closing, the scope hands them to b.
  class applying {
   public:
    explicit applying(reply_batch& b) noexcept;
    ~applying();
    applying(const applying&) = delete;
    applying& operator=(const applying&) = delete;

   private:
    friend class reply_batch;
    void add_late(const net::connection_ptr& c, std::uint64_t stream, answer&& a);

    reply_batch& batch_;
    applying* previous_;
    std::vector<answer> own_;
    std::vector<late_group> late_;
  };

 private:
  static answer answer_of(const server_request& r, const status& s, const tensor* value);
  void send_all(std::vector<answer>& own, std::vector<late_group>& late);
  void send(const net::connection_ptr& c, std::uint64_t stream, std::vector<answer>& answers);

  net::connection_ptr conn_;
  std::uint64_t stream_;
  std::size_t max_meta_;
  std::uint64_t max_payload_;
  completion left_;
  std::mutex mu_;
  // Written under mu_; read without it only to see that the batch has left (it never
  // opens again).
  std::atomic<bool> open_{true};
  std::vector<answer> gathered_;  // guarded by mu_
  std::vector<late_group> late_;  // ditto
};

}  // namespace kvactor::detail
