// A worker's operations in flight: one dist_op per key of a call, its parts tracked until
// every server answered; dist_call completes a user call when all its keys' ops are done; a
// key_channel keeps a key's ops in issue order while one waits for its devices' sum.
// Thread-safety: dist_call and dist_op's part_done/finish may be called from any thread;
// the rest of a dist_op is written before it is sent, or under its key channel's mutex.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../completion.hpp"
#include "../key_registry.hpp"
#include "../request.hpp"
#include "kvactor/buffer_pool.hpp"
#include "kvactor/detail/compression.hpp"
#include "kvactor/serialization/protocol.hpp"
#include "part_plan.hpp"

namespace kvactor::detail {

/// Completion of a user call: all parts of all its keys, then the user's future directly, or
/// a follow-up first (init's barrier). The direct form is every push and pull: no function
/// object to allocate per call.
class dist_call {
 public:
  dist_call(std::size_t parts, std::shared_ptr<call_state> user)
      : parts_(parts), user_(std::move(user)) {
    if (parts == 0) user_->part_done(status{});
  }
  dist_call(std::size_t parts, std::function<void(status)> then)
      : parts_(parts), then_(std::move(then)) {
    if (parts == 0) then_(status{});
  }
  void part_done(const status& s) {
    if (!parts_.done_one(s)) return;
    if (user_)
      user_->part_done(parts_.first_error());
    else
      then_(parts_.first_error());
  }

 private:
  completion parts_;
  std::shared_ptr<call_state> user_;
  std::function<void(status)> then_;
};

struct key_channel;

struct dist_op {
  op_kind kind = op_kind::push;
  key_info_ptr info;
  int priority = 0;
  tensor_list values;
  tensor_list outs;
  tensor source;  // what is sent: values[0], or the devices' sum
  part_list parts;
  std::shared_ptr<dist_call> call;
  completion parts_left;   // reset to the number of parts before the first is sent
  bool ready = true;       // guarded by the key channel's mutex
  compression::params gc;  // compress this push
  std::uint64_t gc_version = 0;
  key_channel* channel = nullptr;
  // Row-sparse: a push's merged rows, or the rows each output of a row_pull wants.
  std::vector<std::int64_t> sparse_ids;
  tensor sparse_rows;
  std::vector<std::vector<std::int64_t>> want;
  bool compact_rows = false;  // outputs hold only the wanted rows, in id order
  std::vector<std::vector<std::int64_t>> part_ids;  // global row ids sent to each part
  std::vector<std::shared_ptr<buffer>> payloads;    // per part, alive until sent
  bool leased = false;
  std::atomic<bool> finished{false};
  // The timeline's (kvactor/detail/timeline.hpp): when the op was issued (0: not traced)
  // and when its parts went to the wire.
  std::int64_t trace_issued = 0;
  std::int64_t trace_sent = 0;

  bool pull_like() const {
    return kind == op_kind::pull || kind == op_kind::pushpull || kind == op_kind::broadcast;
  }
  bool rows_op() const { return kind == op_kind::row_pull || sparse_rows.defined(); }
  wire::msg wire_type() const {
    if (kind == op_kind::row_pull) return wire::msg::pull_rows;
    if (sparse_rows.defined()) return wire::msg::push_rows;
    switch (kind) {
      case op_kind::init:
        return wire::msg::init;
      case op_kind::push:
        return wire::msg::push;
      case op_kind::pushpull:
        return wire::msg::pushpull;
      default:
        return wire::msg::pull;
    }
  }
  void lease() {
    for (auto& v : values)
      v.storage_ptr()->begin_read();
    for (auto& o : outs)
      o.storage_ptr()->begin_write();
    leased = true;
  }
  void unlease() {
    if (!leased) return;
    leased = false;
    for (auto& v : values)
      v.storage_ptr()->end_read();
    for (auto& o : outs)
      o.storage_ptr()->end_write();
  }
  void part_done(const status& s) {
    if (parts_left.done_one(s)) finish();
  }
  void finish() {
    if (finished.exchange(true)) return;
    unlease();
    if (trace_issued) return finish_traced();
    if (call) call->part_done(parts_left.first_error());
  }
  /// finish() with the timeline's spans around the completion (cluster_router.cpp).
  void finish_traced();
  ~dist_op() {
    unlease();
    if (!finished.exchange(true) && call)
      call->part_done(status{errc::shut_down, std::string{to_string(kind)} + " of key " +
                                                  (info ? info->name() : "?") + " was dropped"});
  }
};
using dist_op_ptr = std::shared_ptr<dist_op>;

struct key_channel {
  std::mutex mu;
  std::deque<dist_op_ptr> waiting;
  tensor residual;  // gradient compression's error feedback for this key
  std::uint64_t gc_version = 0;
};

}  // namespace kvactor::detail
