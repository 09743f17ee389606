// What a shard actor does, without CAF: owns a disjoint set of keys (stored value, merge
// buffer, updater state, queue of pending ops) and runs their ops.
//
// Scheduling. Each key has a FIFO queue, so ops on one key run strictly in arrival order.
// Keys with work wait in a ready heap ordered by priority (the highest priority among a
// key's queued ops, so a high-priority pull lifts the push ahead of it), then by arrival.
// Before each pick the shard first drains its mailbox (process() stops and asks to be called
// again when messages are waiting), so everything that has arrived competes on priority.
// When nothing is queued and the mailbox is empty, an op runs at once.
//
// Steps that move many bytes (reduce, copy, element-wise update) go to the reducer's thread
// pool; the key is busy until the pool reports back through step_done(), while other keys of
// the shard carry on.
//
// Thread-safety: a shard_core belongs to one actor; call it only from that actor's handlers.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <queue>
#include <unordered_map>
#include <vector>

#include "kvactor/cuda.hpp"
#include "kvactor/thread_pool.hpp"
#include "op.hpp"

namespace kvactor::detail {

/// The stream a device-resident key's work runs on (one per key and priority class).
device_stream key_stream(device home, const op& o);
/// errc::internal naming o's call and key, what failed and why.
status device_failure(const op& o, const std::string& what, const std::exception& ex);

class shard_core {
 public:
  struct hooks {
    /// Ask the actor to call process() after the messages now in its mailbox.
    std::function<void()> schedule_process;
    /// Whether messages are waiting in the actor's mailbox.
    std::function<bool()> mailbox_empty;
    /// Run chunk(i), i in [0, n), on the reducer threads; when all are done, make the actor
    /// call step_done(key_id). With `help`, the calling (shard) thread works on the chunks
    /// too before it returns — worth it for mid-sized steps, where waking pool threads would
    /// cost more than the work.
    std::function<void(std::size_t n, std::function<void(std::size_t)> chunk, int priority,
                       std::int64_t key_id, bool help)>
        run_parallel;
    /// Optional: merge a push's several values into target through a reduction topology;
    /// the shard then gets step_done(key_id) (errors land in o's chunk_error).
    std::function<void(std::vector<tensor> values, tensor target, std::int64_t key_id, op* o)>
        reduce;
    /// Whether `reduce` takes values on CUDA devices and sums them there (reducer graphs other
    /// than the ring); else such values are copied to host memory first.
    bool reduce_on_device = false;
    /// Records s in o (when it is an error) and makes the actor call step_done(key_id); may be
    /// called from any thread (device completion callbacks).
    std::function<void(std::int64_t key_id, op* o, const status& s)> step_done_from;
  };

  shard_core(hooks h, std::size_t parallel_threshold_bytes, std::size_t parallel_width);
  ~shard_core();

  void receive(op_ptr o);
  void process();
  void step_done(std::int64_t key_id);

  /// A store-wide action (save or load of optimizer states) that runs on this shard once every
  /// op received before it has finished; ops received after it wait until it has run.
  void receive_fence(std::function<void(shard_core&)> action);

  /// One key's optimizer state, for save/load.
  struct state_record {
    key_info_ptr info;
    std::uint64_t count = 0;
    std::vector<tensor> slots;  // deep copies
    tensor master;              // multi-precision master weight, deep copy (or undefined)
  };
  /// Copies of the states of keys whose optimizer_state belongs to `owner`.
  std::vector<state_record> snapshot_states(const std::shared_ptr<const updater>& owner) const;
  /// Installs states (copied) for keys of this shard, owned by `owner`.
  void restore_states(const std::vector<state_record>& records,
                      const std::shared_ptr<const updater>& owner);

  /// Keys this shard holds (for tests and statistics).
  std::size_t num_keys() const noexcept { return entries_.size(); }
  /// Bytes of stored values and merge buffers.
  std::size_t held_bytes() const noexcept;

 private:
  struct entry {
    key_info_ptr info;
    tensor stored;
    tensor merge;
    std::shared_ptr<const updater> state_owner;
    std::unique_ptr<updater_state> state;
    std::deque<op_ptr> queue;
    op_ptr current;  // the op in progress (possibly waiting on the pool)
    int ready_priority = 0;
    bool in_ready = false;
    // The highest priority queued on this key, and how many queued ops have it: a key
    // inherits the priority of its most urgent op without rescanning its queue per op.
    int max_priority = 0;
    std::size_t at_max = 0;
    // Gradient compression: one residual per device, for the setting of version gc_version.
    std::vector<tensor> residuals;
    std::uint64_t gc_version = 0;
  };
  struct ready_item {
    int priority;
    std::uint64_t seq;
    entry* e;
  };
  struct ready_order {
    bool operator()(const ready_item& a, const ready_item& b) const {
      if (a.priority != b.priority) return a.priority < b.priority;
      return a.seq > b.seq;
    }
  };

  entry& entry_for(const op& o);
  void enqueue(entry& e, op_ptr o);
  op_ptr dequeue(entry& e);
  void mark_ready(entry& e, int priority);
  void refresh_ready(entry& e);
  entry* pop_ready();
  void ensure_process();
  void start(entry& e, op_ptr o);
  /// Runs o's stages until it finishes (true) or waits on the pool (false).
  bool advance(entry& e, op& o);
  void finish(entry& e, op& o);

  // Stages. Each returns false when it handed work to the pool.
  bool stage_init(entry& e, op& o);
  bool stage_reduce(entry& e, op& o);
  // Row-sparse work (shard_rows.cpp): pushes of row-sparse values, pulls of chosen rows.
  bool stage_sparse(entry& e, op& o);
  bool stage_row_pull(entry& e, op& o);
  void compressed_merge(entry& e, op& o, tensor& target);
  bool stage_update(entry& e, op& o);
  bool stage_pull(entry& e, op& o);
  // Values and outputs on CUDA devices (see op::device_values): copies between them and host
  // tensors on the devices' streams, the key busy until the streams report back.
  // Keys that live on a device (the device store's): every stage as device work on the key's
  // stream; an op the device path cannot run first moves the key to host memory for good.
  static bool resident(const entry& e) noexcept;
  static bool needs_host(const op& o) noexcept;
  bool migrate_to_host(entry& e, op& o);
  /// Device mode: records that o's stage enqueued work on s (kept alive with `keep`); the
  /// stage returns true and the next one enqueues behind it on the same stream.
  static void defer(op& o, const device_stream& s, std::vector<tensor> keep);
  bool dstage_init(entry& e, op& o);
  bool dstage_reduce(entry& e, op& o);
  bool dstage_sparse(entry& e, op& o);
  bool dstage_row_pull(entry& e, op& o);
  bool dstage_update(entry& e, op& o);
  void device_compressed_merge(entry& e, op& o, tensor& target, const device_stream& s,
                               std::vector<tensor>& keep);
  bool dstage_pull(entry& e, op& o);
  bool stage_device_in(op& o);
  bool stage_device_out(op& o);
  void when_streams_done(op& o, std::vector<device_stream> used, std::vector<tensor> keep);

  bool big(std::size_t bytes) const noexcept;
  std::size_t chunks_for(std::size_t bytes) const noexcept;
  void parallel(op& o, std::size_t bytes, std::size_t n, std::function<void(std::size_t)> chunk);
  static void record_chunk_error(op& o, const std::string& what);

  void op_finished();
  void release_fence();

  // Fences: while one waits for the ops before it, later ops and fences are held in order.
  struct held_item {
    op_ptr o;
    std::function<void(shard_core&)> fence;
  };
  std::size_t live_ops_ = 0;  // received (and not held) and not finished
  bool fence_active_ = false;
  std::size_t fence_waits_for_ = 0;
  std::function<void(shard_core&)> fence_action_;
  std::deque<held_item> held_;

  hooks hooks_;
  std::size_t threshold_;
  std::size_t width_;
  std::unordered_map<std::int64_t, entry> entries_;
  std::priority_queue<ready_item, std::vector<ready_item>, ready_order> ready_;
  std::size_t ready_keys_ = 0;
  std::uint64_t seq_ = 0;
  bool process_pending_ = false;
  bool in_process_ = false;
};

}  // namespace kvactor::detail
