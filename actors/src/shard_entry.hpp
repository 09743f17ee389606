// What a shard's executors share: a key's record (value, merge buffer, updater state, the
// executor it runs on), the shard's hooks into its actor, and the helpers that hand work to
// the reducer threads or wait for device streams.
// Thread-safety: as shard_core (one actor's); step_done_from and run_parallel's chunks run on
// other threads and touch only the op they are given.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "key_scheduler.hpp"
#include "kvactor/cuda.hpp"
#include "op.hpp"

namespace kvactor::detail {

struct shard_hooks {
  /// Ask the actor to call process() after the messages now in its mailbox.
  std::function<void()> schedule_process;
  /// Whether messages are waiting in the actor's mailbox.
  std::function<bool()> mailbox_empty;
  /// Run chunk(i), i in [0, n), for o on the reducer threads. With `help`, the calling
  /// thread (the gate's holder) works on the chunks too, then waits a little for those other
  /// threads still run — worth it for mid-sized steps, where waking pool threads would cost
  /// more than the work: true when the step finished so (the caller goes on with o). False:
  /// the shard gets step_done(key_id) when all are done (on the thread that finished last,
  /// when it may take the gate and o may go on there, else by a message to the actor).
  std::function<bool(std::size_t n, std::function<void(std::size_t)> chunk, int priority,
                     std::int64_t key_id, bool help, op* o)>
      run_parallel;
  /// Optional: merge a push's several values into target through a reduction topology;
  /// the shard then gets step_done(key_id) (errors land in o's chunk_error).
  std::function<void(std::vector<tensor> values, tensor target, std::int64_t key_id, op* o)> reduce;
  /// Whether `reduce` takes values on CUDA devices and sums them there (reducer graphs other
  /// than the ring); else such values are copied to host memory first.
  bool reduce_on_device = false;
  /// Whether `reduce` is the flat graph: one node that sums every value with one fused kernel
  /// on the key's stream, which a key on a device does as well itself, without the messages.
  bool reduce_is_flat = false;
  /// Records s in o (when it is an error) and goes on with o: on the calling thread when it
  /// may take the shard's gate, else the actor calls step_done(key_id). May be called from
  /// any thread (device completion callbacks, reducers).
  std::function<void(std::int64_t key_id, op* o, const status& s)> step_done_from;
};

/// Which executor runs a key's ops: chosen when the key is placed (a key placed on a device
/// lives there), and host for good once a device key moves to host memory.
enum class executor_kind : std::uint8_t { host, device };

using op_scheduler = key_scheduler<op_ptr>;

struct shard_entry : op_scheduler::key {
  key_info_ptr info;
  executor_kind exec = executor_kind::host;
  tensor stored;
  tensor merge;
  std::shared_ptr<const updater> state_owner;
  std::unique_ptr<updater_state> state;
  op_ptr current;  // the op in progress (possibly waiting on the pool or a stream)
  // Gradient compression: one residual per device, for the setting of version gc_version.
  std::vector<tensor> residuals;
  std::uint64_t gc_version = 0;
};

/// The stream a device-resident key's work runs on (one per key and priority class).
device_stream key_stream(device home, const op& o);
/// errc::internal naming o's call and key, what failed and why.
status device_failure(const op& o, const std::string& what, const std::exception& ex);

/// The shard's means of running work off its thread, shared by its executors.
class shard_context {
 public:
  shard_context(shard_hooks h, std::size_t threshold_bytes, std::size_t width);

  const shard_hooks& hooks() const noexcept { return hooks_; }
  /// Whether a step moving `bytes` goes to the reducer threads.
  bool big(std::size_t bytes) const noexcept { return bytes >= threshold_; }
  std::size_t chunks_for(std::size_t bytes) const noexcept;
  /// Runs chunk(i), i in [0, n): a step of up to 16x the threshold on this thread, else on
  /// the reducer threads; a chunk's exception becomes o's chunk_error. True: the step is done
  /// (a chunk's error in o.error), go on; false: the shard gets step_done when all are done.
  bool parallel(op& o, std::size_t bytes, std::size_t n, std::function<void(std::size_t)> chunk);
  /// Makes the actor call step_done for o once the streams have done their work so far,
  /// holding `keep` (the tensors that work reads and writes) until then.
  void when_streams_done(op& o, const std::vector<device_stream>& used, std::vector<tensor> keep);

 private:
  shard_hooks hooks_;
  std::size_t threshold_;
  std::size_t solo_;  // steps below it run on the gate's holder alone (shard_core.cpp)
  std::size_t width_;
};

}  // namespace kvactor::detail
