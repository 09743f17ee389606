// Updaters: what a push does to the stored value. Without one, a push replaces the stored
// value with the merged (summed) push; with one, the store calls
// update(key, merged, stored, state) instead — MXNet's updater(key, input, stored).
//
// An updater runs on a shard's thread, one key at a time per shard, so per-key state needs no
// locking; different keys may be updated concurrently on different shards, so an updater
// object must not keep unsynchronised shared state of its own. It must not wait on the store.
// Tensors passed in are plain views: read `merged`, write `stored`; keep no handle to either.
#pragma once

#include <functional>
#include <memory>

#include "kvactor/cuda.hpp"
#include "kvactor/key.hpp"
#include "kvactor/tensor.hpp"

namespace kvactor {

/// Per-key state an updater keeps (momentum, update counts, ...), owned by the store.
class updater_state {
 public:
  virtual ~updater_state() = default;
};

class updater {
 public:
  virtual ~updater() = default;

  /// State for a key, created on its first update; null for stateless updaters.
  virtual std::unique_ptr<updater_state> make_state(const key& k, const tensor& stored) const;

  /// stored <- f(merged, stored, state). May throw; the push then fails with updater_failed.
  virtual void update(const key& k, const tensor& merged, tensor& stored,
                      updater_state* state) const = 0;

  /// Element-wise updaters say so, and may then be run on disjoint ranges in parallel for
  /// big arrays: begin_update once, update_range per range (concurrently), end_update once.
  virtual bool element_wise() const { return false; }
  virtual void begin_update(const key& k, updater_state* state) const;
  virtual void update_range(const key& k, const tensor& merged, tensor& stored,
                            updater_state* state, std::size_t begin, std::size_t end) const;

  /// Lazy updates for row-sparse gradients: only the given rows of stored change. `rows` are
  /// sorted, unique indices into stored's first dimension; grad_rows holds one row per index
  /// (shape: rows × the rest of stored's shape). Updaters that say false here get the
  /// gradient densified (zeros elsewhere) and update every row.
  virtual bool lazy_rows() const { return false; }

  /// Whether update_async can run this updater on a CUDA device (kvactor's SGD and Adam, not
  /// under multi-precision). The device store keeps a key on its device only with such an
  /// updater (or none); any other moves the key to host memory before its first update.
  virtual bool device_capable() const { return false; }
  /// Enqueues stored <- f(merged, stored, state) on stream s; stored, merged and the state's
  /// tensors live on s's device. Called only when device_capable(); throws like update().
  virtual void update_async(const key& k, const tensor& merged, tensor& stored,
                            updater_state* state, const device_stream& s) const;
  virtual void update_rows(const key& k, const std::int64_t* rows, std::size_t num_rows,
                           const tensor& grad_rows, tensor& stored, updater_state* state) const;
};

using updater_fn = std::function<void(const key& k, const tensor& merged, tensor& stored)>;

/// Wraps a function as a stateless updater.
std::shared_ptr<const updater> make_updater(updater_fn fn);

}  // namespace kvactor
