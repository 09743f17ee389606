// One operation on one key, as the facade hands it to a shard, and the bookkeeping that
// completes a call's future once all of its keys are done.
// Thread-safety: an op is built by the facade, then owned by one shard actor. call_state and
// op_counter are safe from any thread.
#pragma once

#include <boost/container/small_vector.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "completion.hpp"
#include "key_registry.hpp"
#include "kvactor/cuda.hpp"
#include "kvactor/detail/compression.hpp"
#include "kvactor/future.hpp"
#include "kvactor/row_sparse.hpp"
#include "kvactor/tensor.hpp"
#include "kvactor/updater.hpp"

namespace kvactor::detail {

enum class op_kind : std::uint8_t { init, push, pull, pushpull, broadcast, row_pull };
/// Where a shard is in running an op (the stages an op kind goes through: shard_core.cpp).
enum class op_stage : std::uint8_t { init, reduce, update, pull, finish };

/// Tensors of one key in one call; most calls give one or two, held without an allocation
/// (the facade allocates, the shard frees: cross-thread frees are what malloc does worst).
using tensor_list = boost::container::small_vector<tensor, 2>;

const char* to_string(op_kind k) noexcept;

/// Calls issued and not yet complete, for wait_all() and outstanding(). A completing call
/// leaves value() before its future is ready (whoever saw the future ready does not count it
/// any more) and wait_zero() after (whoever waited for zero finds every future ready).
class op_counter {
 public:
  void add() noexcept { n_.fetch_add(1); }
  /// Before the call's future is made ready.
  void completing() noexcept {
    finishing_.fetch_add(1);
    n_.fetch_sub(1);
  }
  /// After it is.
  void completed();
  void wait_zero();
  std::size_t value() const noexcept { return n_.load(); }

 private:
  std::atomic<std::size_t> n_{0};
  std::atomic<std::size_t> finishing_{0};  // between completing() and completed()
  std::mutex mu_;
  std::condition_variable cv_;
};

/// One user call, and the state of its future (one allocation for both): completes when the
/// last of its per-key ops is done.
class call_state : public state<void> {
 public:
  call_state(std::size_t parts, std::shared_ptr<op_counter> counter)
      : parts_(parts), counter_(std::move(counter)) {
    if (counter_) counter_->add();
  }
  future<void> get_future() {
    return future<void>{std::shared_ptr<state<void>>(shared_from_this(), this)};
  }
  void part_done(const status& s);

 private:
  completion parts_;
  std::shared_ptr<op_counter> counter_;
};

struct op {
  op() = default;
  op(const op&) = delete;
  op& operator=(const op&) = delete;
  /// An op dropped unfinished (its shard gone at shutdown) still releases its leases and
  /// completes its part of the call, so no accessor or future waits for it forever.
  ~op();

  op_kind kind = op_kind::push;
  key_info_ptr info;
  int priority = 0;
  tensor_list values;                           // read-leased until done
  tensor_list outs;                             // write-leased until done
  std::vector<row_sparse_tensor> sparse;        // a row-sparse push's values (read-leased)
  std::vector<std::vector<std::int64_t>> rows;  // row_pull: sorted unique ids, per output
  /// row_pull into outputs holding just the requested rows (rows.size() x the key's row, in
  /// id order: row-sparse outputs) rather than the key's shape with zeros elsewhere.
  bool compact_rows = false;
  std::shared_ptr<const updater> upd;
  /// Gradient compression of a multi-device push, and the version of the store's setting
  /// (a new setting starts from fresh residuals).
  compression::params gc;
  std::uint64_t gc_version = 0;
  std::shared_ptr<call_state> call;
  /// What only ops with tensors on CUDA devices use, inline (no allocation per op).
  struct device_part {
    /// The host executor's staging: its kernels work on host memory, so while the op runs,
    /// `values` and `outs` hold host tensors (values copied from the devices first, outputs
    /// copied to them last) and these hold the caller's tensors, which keep the leases.
    tensor_list values, outs;
    bool io = false;
    bool out_done = false;
    /// Host copies of the rows of `sparse` values whose rows are on devices (undefined for
    /// the others).
    std::vector<tensor> sparse_rows;
    /// The device executor: stages enqueue on the key's stream one after another without
    /// waiting; the op waits once, before it finishes, for that stream (holding these
    /// tensors until then).
    device_stream pending;
    std::vector<tensor> keep;
  };
  device_part dev;

  // Shard-side progress.
  op_stage stage = op_stage::init;
  tensor merged;
  status error;
  std::atomic<bool> chunk_failed{false};
  std::string chunk_error;  // written by the chunk that set chunk_failed
  errc chunk_code = errc::updater_failed;
  /// A parallel step's hand-back (shard_actor.cpp): 0 nobody waits, 1 the gate's holder
  /// waits for the step, 2 the step finished while it waited.
  std::atomic<int> step_wait{0};
  // The timeline's (kvactor/detail/timeline.hpp), written only while it records: when the op
  // reached its shard (0: not traced), and the stage it is in since when.
  std::int64_t trace_arrived = 0;
  std::int64_t trace_stage_began = 0;
  op_stage trace_stage = op_stage::finish;

  /// Takes the leases; release_leases() gives them back (once).
  void acquire_leases() noexcept;
  void release_leases() noexcept;

 private:
  bool leased_ = false;
};
using op_ptr = std::shared_ptr<op>;

}  // namespace kvactor::detail
