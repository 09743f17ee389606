// A worker's data path: turns a key's op into its parts' messages (values of several
// devices summed first, big sums on the reducer pool; row-sparse ops sliced by row; pushes
// quantized with the key's residual under gradient compression), keeps each key's ops in
// issue order (its key_channel), and turns the servers' replies back into outputs (straight
// into the first output where it can, rows scattered to the outputs that want them).
// Thread-safety: issue() from any thread; on_reply() and destination() from the transport's
// I/O thread; a key's sends are serialised under its channel's mutex.
#pragma once

#include <cstdint>
#include <memory>

#include "../request.hpp"
#include "cluster_session.hpp"
#include "dist_op.hpp"
#include "fusion_outbox.hpp"
#include "kvactor/detail/thread_pool.hpp"

namespace kvactor::detail {

class cluster_router {
 public:
  /// Parts of at most max_payload bytes; sums of at least parallel_threshold bytes go to
  /// the pool.
  cluster_router(cluster_session& session, std::uint64_t max_payload,
                 std::size_t parallel_threshold, fusion_settings fusion);

  /// Before the first issue(): `self` is how the pool's completions reach this router
  /// (weakly: the store may go first).
  void start(std::weak_ptr<cluster_router> self, std::size_t reducer_threads);
  /// Once the cluster is joined (the servers are known), before the first issue().
  void joined();
  /// Stops the pool (after the transport).
  void stop();

  /// An op of g's key (values and outputs taken from g, leased), its parts planned.
  dist_op_ptr make_op(op_kind kind, key_group& g, int priority, std::shared_ptr<dist_call> call);
  /// A row-sparse push of g's values, their rows merged so that each row travels once.
  dist_op_ptr make_rows_push(const sparse_group& g, int priority, std::shared_ptr<dist_call> call);

  /// Sums, then sends o once every earlier op of its key (ch) is on the wire (or in its
  /// server's fused batch).
  void issue(const dist_op_ptr& o, const std::shared_ptr<key_channel>& ch);
  /// A call has issued all its ops: their fused batches leave (unless a window holds them).
  void end_call() { fusion_.end_call(); }
  /// Every fused batch leaves now: what follows (a command, a barrier) comes after it.
  void flush() { fusion_.flush(); }

  /// Where a pull's reply lands: straight in the first output (null: the transport buffers).
  void* destination(const net::message_head& h);
  /// A server's message: a reply to a part (its payload into the outputs) or to a command.
  void on_server_message(const net::connection_ptr& c, net::message&& m);

 private:
  static void sum_into(dist_op& o, std::size_t b, std::size_t e);
  static net::outgoing part_message(const dist_op& o, const part_plan& pp, std::uint64_t id);
  static wire::data_meta part_meta(const dist_op& o, const part_plan& pp, std::uint64_t rows);
  void send(const dist_op_ptr& o);
  void send_rows(const dist_op_ptr& o);
  // A tracked part's message, alone or in its server's batch; `weight`: the bytes it moves
  // either way.
  void send_part(const dist_op& o, const part_plan& pp, std::uint64_t id, net::outgoing&& m,
                 std::uint64_t rows, std::uint64_t weight);
  status send_message(std::uint32_t server, net::outgoing&& m, const char* what);
  void quantize(const dist_op& o, const part_plan& pp, net::outgoing& m);
  void on_batch_reply(const net::connection_ptr& c, const net::message& m);
  // A part's answer: its status, and the value a pull gets (data, bytes).
  void on_part_reply(request_tracker::part_ref&& t, status s, const void* data,
                     std::uint64_t bytes);
  static status scatter_rows(const dist_op& o, std::uint32_t part, const void* data,
                             std::uint64_t bytes);
  static status copy_pulled(const dist_op& o, std::uint32_t part, const void* data,
                            std::uint64_t bytes);

  cluster_session& session_;
  request_tracker& tracker_;
  std::uint64_t max_payload_;
  std::size_t parallel_threshold_;
  std::weak_ptr<cluster_router> self_;
  std::unique_ptr<thread_pool> pool_;
  fusion_outbox fusion_;
};

}  // namespace kvactor::detail
