// What a shard actor does, without CAF: owns a disjoint set of keys (stored value, merge
// buffer, updater state, queue of pending ops) and runs their ops. This is the glue: ops
// arrive (receive), are scheduled per key (key_scheduler: FIFO per key, priority across keys,
// fences), and run stage by stage (init, reduce, update, pull) on the key's executor
// (shard_executors.hpp: host memory, or the key's device), picked when the key was placed.
//
// Steps that move many bytes (reduce, copy, element-wise update) go to the reducer's thread
// pool, and device work to the key's stream; the key is busy until they report back through
// step_done(), while other keys of the shard carry on.
//
// The core runs on whichever thread holds its gate (shard_gate.hpp): the actor's, or one that
// found the shard idle (the thread that issued an op, a reducer thread whose step finished).
// Finished calls are collected (take_finished) and completed by the holder after it has
// released the gate (complete).
// Thread-safety: one thread at a time, the holder of the shard's gate.
#pragma once

#include <boost/container/small_vector.hpp>

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "shard_executors.hpp"
#include "shard_fence.hpp"

namespace kvactor::detail {

class shard_core {
 public:
  using hooks = shard_hooks;

  shard_core(hooks h, std::size_t parallel_threshold_bytes, std::size_t parallel_width);
  ~shard_core();

  void receive(op_ptr o);
  void process();
  void step_done(std::int64_t key_id);

  /// receive() on a thread other than the actor's, with nothing in flight to the actor; false
  /// (o untouched) for an op that must run on the actor (may_run_here).
  bool receive_here(op_ptr& o);
  /// step_done() for o on a thread other than the actor's; false (nothing done) when o must
  /// go on on the actor.
  bool step_done_here(std::int64_t key_id, const op& o);

  /// A call part the core finished; its future completes once the gate is released.
  struct finished_call {
    std::shared_ptr<call_state> call;
    status error;
    key_info_ptr traced;  // the key, while the timeline records
  };
  using finished_calls = boost::container::small_vector<finished_call, 4>;
  /// Moves the finished calls out (the gate's holder, before it releases the gate).
  void take_finished(finished_calls& out);
  /// Completes them (after the gate is released: continuations may call the store).
  static void complete(finished_calls& calls);

  /// A store-wide action (save or load of optimizer states, shard_fence.hpp) that runs on
  /// this shard once every op received before it has finished; ops received after it wait
  /// until it has run.
  void receive_fence(shard_fence f);

  /// One key's optimizer state, for save/load.
  using state_record = shard_state_record;
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
  shard_entry& entry_for(const op& o);
  /// The scheduler's way to start an op on its key.
  auto starter() {
    return [this](op_scheduler::key& k, op_ptr o) {
      start(static_cast<shard_entry&>(k), std::move(o));
    };
  }
  void start(shard_entry& e, op_ptr o);
  /// Off the actor only ops without an updater (updater.hpp promises that updaters run on
  /// the shard's thread), and never while a fence waits (its action runs on the actor). Keys
  /// on devices too: their stages only enqueue device work, and the device callback thread
  /// that then goes on with an op never waits for a callback.
  bool may_run_here(const op& o) const noexcept;
  /// Runs o's stages until it finishes (true) or waits for step_done (false).
  bool advance(shard_entry& e, op& o);
  template <class Executor>
  bool run_stages(Executor& x, shard_entry& e, op& o);
  void finish(shard_entry& e, op& o);
  /// Applies a fence's action: every action a shard runs at a fence, in one place.
  void run_fence(const shard_fence& f);

  op_scheduler sched_;
  shard_context cx_;
  host_executor host_{cx_};
  device_executor device_{cx_};
  std::unordered_map<std::int64_t, shard_entry> entries_;
  finished_calls finished_;
};

}  // namespace kvactor::detail
