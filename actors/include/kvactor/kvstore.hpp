// kvactor's public entry point: kvactor::create(type, options) returns a kvstore, MXNet's
// KVStore in C++. Every operation returns a future (ready already when the work ran on the
// calling thread: see "Where the work runs").
//
//   auto kv = kvactor::create("local");
//   kv.init(3, kvactor::tensor::ones({2, 3})).get();
//   kv.push(3, {g0, g1, g2, g3});          // one value per device: summed
//   kv.pull(3, out).wait();                // out now holds the stored value
//
// Keys are int64 or strings, never both in one store. Values are one tensor, a list (one per
// device, summed on push, each filled on pull), or — with a list of keys — one tensor or one
// list per key. A key repeated in one call is one operation on that key (its values summed).
//
// Where the work runs: a local store may run an operation without an updater on the calling
// thread when its key's shard is idle (its future is then ready when the call returns); a
// step of more than 16 x options::parallel_threshold_bytes still goes to the reducer's
// threads. Updaters run only on the store's shard threads.
//
// Ordering: for one key, operations issued by one thread take effect in issue order, whatever
// their priorities (a pull issued after a push sees it). Across keys, when work is queued, a
// higher priority is served first.
//
// Buffers: from the call until its future is ready, the store holds a read lease on the
// tensors given as values and a write lease on those given as outputs. The tensors' checked
// accessors wait for conflicting leases, so reading an output after pull() returns, or
// overwriting a pushed gradient, is safe without waiting on the future first; raw pointers
// taken before the call (or data_unchecked()) bypass this. Outputs may not overlap one another
// or the values of another key in the same call (invalid_argument); an output may be the
// value of its own key (pushpull in place). A non-owning view must stay valid until the
// future is ready.
//
// Device tensors (local, device and dist_*_device stores): the store reads and writes them on
// its own streams of their devices. GPU work that produced a value must have finished when the
// call is made (synchronize the stream that wrote it): the store cannot see the caller's
// streams. An output on a device holds the result once the future is ready.
//
// Errors: bad input completes the future with a kvactor::error (get() throws) that names the
// key and the offending value, and leaves the store as it was — a call on several keys is
// checked whole before any of it runs. An error nobody looks at is not lost: wait_all()
// throws the first one whose future was dropped or never asked (see wait_all()).
//
// Thread-safety: all members may be called from any thread concurrently. Destroying the
// store waits for its outstanding operations.
#pragma once

#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kvactor/future.hpp"
#include "kvactor/key.hpp"
#include "kvactor/optimizer_config.hpp"
#include "kvactor/options.hpp"
#include "kvactor/row_sparse.hpp"
#include "kvactor/row_sparse_output.hpp"
#include "kvactor/tensor.hpp"
#include "kvactor/updater.hpp"

namespace kvactor {

/// One key or a list of keys. A single key is held inline (no allocation).
class key_list {
 public:
  // Implicit by design: callers pass one key or a list, as MXNet's do.
  // NOLINTBEGIN(google-explicit-constructor)
  key_list(const key& k) : single_(k) {}
  key_list(int k) : single_(k) {}
  key_list(std::int64_t k) : single_(k) {}
  key_list(const char* k) : single_(k) {}
  key_list(std::string k) : single_(std::move(k)) {}
  key_list(std::vector<key> ks) : list_(std::move(ks)), is_list_(true) {}
  key_list(std::initializer_list<key> ks) : list_(ks), is_list_(true) {}
  // NOLINTEND(google-explicit-constructor)

  bool is_list() const noexcept { return is_list_; }
  std::size_t size() const noexcept { return is_list_ ? list_.size() : 1; }
  const key& operator[](std::size_t i) const noexcept { return is_list_ ? list_[i] : single_; }

 private:
  key single_;
  std::vector<key> list_;
  bool is_list_ = false;
};

/// Nothing, one tensor, a list of tensors, or a list of lists. A single tensor is held inline.
class value_list {
 public:
  enum class form { none, single, list, nested };

  value_list() = default;
  // Implicit by design: callers pass one tensor, a list or a list of lists.
  // NOLINTBEGIN(google-explicit-constructor)
  value_list(const tensor& t) : single_(t), form_(form::single) {}
  value_list(std::vector<tensor> ts) : flat_(std::move(ts)), form_(form::list) {}
  value_list(std::initializer_list<tensor> ts) : flat_(ts), form_(form::list) {}
  value_list(std::vector<std::vector<tensor>> ts) : nested_(std::move(ts)), form_(form::nested) {}
  value_list(std::initializer_list<std::vector<tensor>> ts) : nested_(ts), form_(form::nested) {}
  // NOLINTEND(google-explicit-constructor)

  form shape() const noexcept { return form_; }
  bool empty() const noexcept { return form_ == form::none; }
  /// The single tensor (form::single).
  const tensor& single() const noexcept { return single_; }
  /// The tensors of a list (form::list).
  const std::vector<tensor>& flat() const noexcept { return flat_; }
  /// The lists of a list of lists (form::nested).
  const std::vector<std::vector<tensor>>& nested() const noexcept { return nested_; }

 private:
  tensor single_;
  std::vector<tensor> flat_;
  std::vector<std::vector<tensor>> nested_;
  form form_ = form::none;
};

/// One row-sparse tensor, a list (one per device), or a list of lists (one list per key).
class sparse_list {
 public:
  enum class form { none, single, list, nested };

  sparse_list() = default;
  // Implicit by design: callers pass one tensor, a list or a list of lists.
  // NOLINTBEGIN(google-explicit-constructor)
  sparse_list(const row_sparse_tensor& t) : flat_{t}, form_(form::single) {}
  sparse_list(std::vector<row_sparse_tensor> ts) : flat_(std::move(ts)), form_(form::list) {}
  sparse_list(std::initializer_list<row_sparse_tensor> ts) : flat_(ts), form_(form::list) {}
  sparse_list(std::vector<std::vector<row_sparse_tensor>> ts)
      : nested_(std::move(ts)), form_(form::nested) {}
  // NOLINTEND(google-explicit-constructor)

  form shape() const noexcept { return form_; }
  const std::vector<row_sparse_tensor>& flat() const noexcept { return flat_; }
  const std::vector<std::vector<row_sparse_tensor>>& nested() const noexcept { return nested_; }

 private:
  std::vector<row_sparse_tensor> flat_;
  std::vector<std::vector<row_sparse_tensor>> nested_;
  form form_ = form::none;
};

namespace detail {
class store_impl;
}

class kvstore {
 public:
  /// An empty handle; valid() is false.
  kvstore() = default;
  kvstore(kvstore&&) noexcept = default;
  /// Ends the store this handle held first, as the destructor does (waits for its
  /// outstanding operations; a dist worker leaves its cluster in order), then takes other's.
  kvstore& operator=(kvstore&& other) noexcept;
  kvstore(const kvstore&) = delete;
  kvstore& operator=(const kvstore&) = delete;
  /// Waits for outstanding operations, then stops the store's actors.
  ~kvstore();

  bool valid() const noexcept { return impl_ != nullptr; }

  /// Stores the first value of each key. A key may be initialised once (already_initialized).
  future<void> init(const key_list& keys, const value_list& values);
  /// Sums the values given for each key, then replaces the stored value with the sum, or
  /// applies the updater to it.
  future<void> push(const key_list& keys, const value_list& values, int priority = 0);
  /// Copies each key's stored value into every output given for it, converted to the
  /// output's element type when that differs from the key's (MXNet's pull converts; integers
  /// truncate toward zero). The same holds for the outputs of row_sparse_pull, pushpull and
  /// broadcast. A key initialised from row-sparse values is stored (and pulled) dense.
  /// ignore_sparse is MXNet's rule for row-sparse outputs (the overload below); these
  /// outputs are dense, so it changes nothing here.
  future<void> pull(const key_list& keys, const value_list& outs, int priority = 0,
                    bool ignore_sparse = true);
  /// MXNet's pull given row-sparse outputs: with ignore_sparse (the default) they are skipped
  /// and nothing is written (MXNet also skips them, with a warning); without it the call is
  /// refused (invalid_argument: use row_sparse_pull). MXNet's mixed lists of dense and
  /// row-sparse outputs are two calls here, one per kind.
  future<void> pull(const key_list& keys, const sparse_output_list& outs, int priority = 0,
                    bool ignore_sparse = true);
  /// Initialises keys from row-sparse values (stored as the dense values they stand for).
  future<void> init(const key_list& keys, const sparse_list& values);
  /// Pushes row-sparse gradients: a key's values (devices, repeated keys) are merged row by
  /// row (rows present in several are summed); the updater then updates only those rows when
  /// it can (lazy updates: SGD, Adam, AdaGrad, FTRL), or the merged gradient densified;
  /// without an updater the stored value becomes the merged gradient (zero elsewhere).
  future<void> push(const key_list& keys, const sparse_list& values, int priority = 0);
  /// MXNet's row_sparse_pull: each output (a dense tensor of the key's shape) gets exactly the
  /// rows given by its row ids and zero elsewhere. row_ids follow the outputs' form, or one
  /// id tensor serves every output of its key; ids (int32/int64, or integral floats as MXNet
  /// passes them; of any shape, read flat) need not be sorted nor unique. An id out of range
  /// (negative included) is an out_of_range error, a float id that is not a whole number
  /// invalid_argument, both found before anything is written.
  future<void> row_sparse_pull(const key_list& keys, const value_list& outs,
                               const value_list& row_ids, int priority = 0);
  /// row_sparse_pull into row-sparse outputs (kvactor/row_sparse_output.hpp), MXNet's
  /// RowSparseNDArray `out`: each output receives exactly its requested rows (its ids sorted,
  /// repeats dropped) as a row_sparse_tensor on the output's device, of the output's element
  /// type when it names one (converted as dense pulls convert), else the key's. Only those
  /// rows are copied; the key is never densified. Row ids pair with outputs and are read as
  /// above. Outputs change only when the whole call succeeds; on an error (bad ids, unknown
  /// key: found before anything runs) they keep what they held. A store type without it
  /// (user-registered) refuses: unsupported.
  future<void> row_sparse_pull(const key_list& keys, const sparse_output_list& outs,
                               const value_list& row_ids, int priority = 0);
  /// push then pull as one operation per key; without outs, the result is written back
  /// into the values.
  future<void> pushpull(const key_list& keys, const value_list& values, const value_list& outs = {},
                        int priority = 0);
  /// init from this worker's (rank 0's) values, then pull into outs.
  future<void> broadcast(const key_list& keys, const value_list& values, const value_list& outs,
                         int priority = 0);

  /// Sets the updater for pushes issued after this call (in the calling thread's order).
  /// Dist stores throw unsupported: their updates run on the servers, and an updater is code,
  /// which never crosses the wire (use set_optimizer).
  void set_updater(updater_fn fn);
  void set_updater(std::shared_ptr<const updater> u);
  /// Removes the updater: later pushes replace the stored value again.
  void set_updater(std::nullptr_t);
  /// Makes the optimizer described by cfg the updater. Completes with invalid_argument for
  /// an unknown type or hyper-parameter.
  future<void> set_optimizer(const optimizer_config& cfg);

  /// Writes the optimizer's per-key state (and, with dump_optimizer, its config) to `file`,
  /// after every operation issued before this call and before any issued after it. On dist
  /// stores each server writes its own part to DIR/NAME.server<rank> on its machine, where DIR
  /// is the server's KVACTOR_STATES_DIR and NAME the last component of `file` (characters
  /// other than A-Z a-z 0-9 . _ + - and a leading '.' become '_'); a server without that
  /// directory refuses (unsupported). load_optimizer_states reads the same way.
  /// Needs an optimizer set with set_optimizer (a custom updater's state is its own).
  future<void> save_optimizer_states(const std::string& file, bool dump_optimizer = false);
  /// Restores what save_optimizer_states wrote. A file with the optimizer's config sets that
  /// optimizer first. Keys must be initialised with the shapes they had; an unknown key, a
  /// shape that differs, or a corrupt, truncated or foreign file is an error and changes
  /// nothing.
  future<void> load_optimizer_states(const std::string& file);

  /// MXNet's _send_command_to_servers: head is one of MXNet's command numbers (0 controller:
  /// body is an encoded optimizer_config; 1 multi-precision; 2 stop server; 3 sync mode: "1"
  /// or "0"; 4 gradient compression; 5 profiler). Completes when every server has applied
  /// it. Local stores: unsupported.
  future<void> send_command_to_servers(int head, const std::string& body);

  /// MXNet's set_gradient_compression: type "2bit" (with threshold > 0: each value becomes
  /// +threshold, -threshold or 0) or "1bit" (+1 / -1 about the threshold), with the error
  /// kept by the sender in a residual per key (and per device) and added to the next push;
  /// "none" turns it off. Only pushes are compressed: worker to server on dist stores, each
  /// device's value to the merge on local stores with several devices (a single value is not
  /// compressed). float32 values only (others are refused while it is on). pushpull works
  /// with it. Completes when every server applied it.
  /// Two deliberate supersets of MXNet, which refuses both: a `local` store accepts it (and
  /// compresses its multi-device merges exactly as the `device` store does: MXNet's local
  /// store merges on the CPU and has no compressed merge, nothing about the rule differs);
  /// and row-sparse pushes are accepted while it is on, in every store, and are not
  /// compressed: their rows merge exactly (float16 rows too) and leave the residuals of
  /// the key's dense pushes as they were. They already send only their rows, and a model whose
  /// embeddings are row-sparse can so still compress its dense gradients (MXNet's dist stores
  /// stop such a model at its first row-sparse push).
  future<void> set_gradient_compression(const std::string& type, double threshold = 0.5);

  /// "local", "dist_sync", ...
  std::string type() const;
  int rank() const;
  int num_workers() const;
  /// Completes when every worker has reached the barrier (at once for a local store).
  future<void> barrier();
  /// "optimizer": true. An unknown capability throws kvactor::error (invalid_argument).
  bool is_capable(std::string_view capability) const;

  /// Blocks until every operation issued so far (by any thread) has completed, then throws
  /// the first error (kvactor::error, in completion order) of a call made through this
  /// handle since the previous wait_all() that nobody observed through its future, as
  /// MXNet's WaitAll rethrows: e.g. `kv.pull(42, out);` on an uninitialised key, future
  /// dropped. Observing means get(), get_status(), then() (the continuation receives the
  /// error) or when_all() on that future; wait(), wait_for() and ready() do not. So an
  /// error handled through its future is never thrown a second time, and every error is
  /// thrown at most once: each wait_all() starts a new period. Errors not yet reported when
  /// the store is destroyed are dropped.
  void wait_all();
  /// Operations issued and not yet complete.
  std::size_t outstanding() const;

  /// Internal: the implementation behind this handle.
  const std::shared_ptr<detail::store_impl>& impl() const noexcept { return impl_; }
  explicit kvstore(std::shared_ptr<detail::store_impl> impl) noexcept;

 private:
  std::shared_ptr<detail::store_impl> impl_;
};

/// "local" (alias "local_update_cpu", "local_allreduce_cpu"): an in-process store.
/// "dist_sync", "dist_async": a worker of a cluster described by the environment (see
/// kvactor/cluster.hpp); blocks until the cluster has assembled. As in MXNet, a process whose
/// DMLC_ROLE is scheduler or server runs that role inside create() and exits the process
/// when the cluster stops.
/// "device" (alias "local_allreduce_device"): as local, with each key kept on a CUDA device
/// when there are any (kvactor/cuda.hpp). "dist_sync_device", "dist_async_device" (aliases
/// "dist_device_sync", "dist_device_async"): a dist worker that sums its devices' values on
/// a device before it pushes.
/// A type registered with register_store() (kvactor/custom_store.hpp) makes the program's store.
/// Unknown types throw kvactor::error (invalid_argument), and so does every type when
/// KVACTOR_EMULATE_CUDA is set to something other than 0..16 (see cuda_emulated()).
kvstore create(std::string_view type = "local", const options& opts = {});

}  // namespace kvactor
