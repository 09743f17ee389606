// The two ways a shard runs a key's ops, one per key (shard_entry::exec), with the same stage
// functions so that shard_core's stage loop drives either without asking which at each stage.
// Every stage function returns false when it handed work off (the reducer threads, a reducer
// graph, device streams): the op then waits for step_done; true means go on. The loop has
// checked that the key has a value (init: that it has none yet).
//
// host_executor (shard_host.cpp, shard_staging.cpp, rows in shard_rows.cpp): the key's value
// in host memory, big steps chunked over the reducer threads; values and outputs that the
// caller gave on devices are staged through pinned host copies.
// device_executor (shard_device.cpp, rows in shard_rows.cpp): the key's value on its device,
// every stage enqueued on the key's stream without waiting, one wait before the op finishes;
// an op it cannot run moves the key to host memory for good (entry.exec becomes host).
// Thread-safety: as shard_core (one actor's).
#pragma once

#include <vector>

#include "shard_entry.hpp"

namespace kvactor::detail {

class host_executor {
 public:
  explicit host_executor(shard_context& cx) : cx_(cx) {}

  /// Before the stages: values and outputs on devices swapped for host copies.
  bool begin(shard_entry& e, op& o);
  bool init(shard_entry& e, op& o);
  bool reduce(shard_entry& e, op& o);
  bool update(shard_entry& e, op& o);
  bool pull(shard_entry& e, op& o);
  /// After the stages: host results copied to the caller's device outputs.
  bool end(shard_entry& e, op& o);

 private:
  void compressed_merge(shard_entry& e, op& o, tensor& target);
  // shard_rows.cpp: pushes of row-sparse values, pulls of chosen rows.
  bool sparse(shard_entry& e, op& o);
  bool row_pull(shard_entry& e, op& o);
  // shard_staging.cpp.
  bool stage_in(op& o);
  bool stage_out(op& o);

  shard_context& cx_;
};

class device_executor {
 public:
  explicit device_executor(shard_context& cx) : cx_(cx) {}

  /// Before the stages: an op the device cannot run moves the key to host memory.
  bool begin(shard_entry& e, op& o);
  bool init(shard_entry& e, op& o);
  bool reduce(shard_entry& e, op& o);
  bool update(shard_entry& e, op& o);
  bool pull(shard_entry& e, op& o);
  /// After the stages: waits once for the key's stream.
  bool end(shard_entry& e, op& o);

 private:
  static bool needs_host(const op& o) noexcept;
  bool migrate_to_host(shard_entry& e, op& o);
  /// Records that o's stage enqueued work on s (kept alive with `keep`): the next stage
  /// enqueues behind it on the same stream.
  static void defer(op& o, const device_stream& s, std::vector<tensor> keep);
  void compressed_merge(shard_entry& e, op& o, tensor& target, const device_stream& s,
                        std::vector<tensor>& keep);
  // shard_rows.cpp.
  bool sparse(shard_entry& e, op& o);
  bool row_pull(shard_entry& e, op& o);

  shard_context& cx_;
};

}  // namespace kvactor::detail
