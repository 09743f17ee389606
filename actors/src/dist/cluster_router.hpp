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
#include "kvactor/detail/thread_pool.hpp"

namespace kvactor::detail {

class cluster_router {
 public:
  /// Parts of at most max_payload bytes; sums of at least parallel_threshold bytes go to
  /// the pool.
  cluster_router(cluster_session& session, std::uint64_t max_payload,
                 std::size_t parallel_threshold);

  /// Before the first issue(): `self` is how the pool's completions reach this router
  /// (weakly: the store may go first).
  void start(std::weak_ptr<cluster_router> self, std::size_t reducer_threads);
  /// Stops the pool (after the transport).
  void stop();

  /// An op of g's key (values and outputs taken from g, leased), its parts planned.
  dist_op_ptr make_op(op_kind kind, key_group& g, int priority, std::shared_ptr<dist_call> call);
  /// A row-sparse push of g's values, their rows merged so that each row travels once.
  dist_op_ptr make_rows_push(const sparse_group& g, int priority, std::shared_ptr<dist_call> call);

  /// Sums, then sends o once every earlier op of its key (ch) is on the wire.
  void issue(const dist_op_ptr& o, const std::shared_ptr<key_channel>& ch);

  /// Where a pull's reply lands: straight in the first output (null: the transport buffers).
  void* destination(const net::message_head& h);
  /// A server's message: a reply to a part (its payload into the outputs) or to a command.
  void on_server_message(const net::connection_ptr& c, net::message&& m);

 private:
  static void sum_into(dist_op& o, std::size_t b, std::size_t e);
  static net::outgoing part_message(const dist_op& o, const part_plan& pp, std::uint64_t id,
                                    std::uint64_t rows);
  void send(const dist_op_ptr& o);
  void send_rows(const dist_op_ptr& o);
  void send_part(std::uint32_t server, std::uint64_t id, net::outgoing&& m);
  void quantize(const dist_op& o, const part_plan& pp, net::outgoing& m);
  static status scatter_rows(const dist_op& o, std::uint32_t part, const net::message& m);
  static status copy_pulled(const dist_op& o, std::uint32_t part, const net::message& m);

  cluster_session& session_;
  request_tracker& tracker_;
  std::uint64_t max_payload_;
  std::size_t parallel_threshold_;
  std::weak_ptr<cluster_router> self_;
  std::unique_ptr<thread_pool> pool_;
};

}  // namespace kvactor::detail
