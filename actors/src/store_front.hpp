// One store front end, pluggable routers. The front (store_front.cpp) does what every store
// does before and after routing: grouping keys and values, the key registry and validation,
// the updater/compression snapshot, the sparse-init redirect, the multi-precision split and
// the count of unfinished calls (a router completes each call it routes through a call_state
// on that count). A router, chosen once when the store is built, takes a call's validated
// groups whole and delivers them: to shard actors (local_router.cpp: "local", "device") or to
// the cluster's servers (dist/worker.cpp: "dist_sync", "dist_async"). MXNet's KVStoreDist :
// KVStoreLocal + Comm, with the inheritance turned into a member: one virtual call per user
// call, none per key.
// Thread-safety: front_state is guarded as its members say; a router's methods are called
// from any thread, as the front calls them.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "key_registry.hpp"
#include "multi_precision.hpp"
#include "request.hpp"
#include "store_impl.hpp"

namespace kvactor::detail {

/// What the front keeps and a router may read: the registry (whose mutex also guards
/// `stopped` and whatever a router keeps per key), the count of unfinished calls, and the
/// updater/compression setting the next push takes.
struct front_state {
  explicit front_state(std::size_t registry_shards) : reg(registry_shards) {}

  key_registry reg;
  bool stopped = false;  // guarded by reg.mutex()
  std::shared_ptr<op_counter> counter = std::make_shared<op_counter>();

  /// What a push is run with, taken once per call.
  struct snapshot {
    std::shared_ptr<const updater> upd;
    compression::params gc;
    std::uint64_t gc_version = 0;
  };
  snapshot current() const {
    std::lock_guard<std::mutex> g(mu);
    return {installed, gc, gc_version};
  }
  std::shared_ptr<const updater> current_updater() const {
    std::lock_guard<std::mutex> g(mu);
    return installed;
  }
  /// Installs an optimizer's updater and the config it was built from (for save_states).
  void install(std::shared_ptr<const updater> u, std::optional<optimizer_config> cfg) {
    std::lock_guard<std::mutex> g(mu);
    installed = std::move(u);
    optimizer = std::move(cfg);
  }

  mutable std::mutex mu;
  std::shared_ptr<const updater> installed;   // guarded by mu
  std::optional<optimizer_config> optimizer;  // ditto: what set_optimizer built `installed` from
  compression::params gc;                     // ditto
  std::uint64_t gc_version = 0;               // ditto: residuals restart when it changes
};

/// Ready futures, the front's and the routers' way of answering at once.
inline future<void> ready(status s = {}) {
  return future<void>::ready_with(std::move(s));
}

/// Where a store's validated calls go. Each route method gets the registry lock the front
/// validated under; it may release it once what it needs of the registry is read (the
/// cluster router sends outside it; the shard router sends under it so that a key's init
/// reaches its shard before any op that found the key).
class router {
 public:
  /// Fixed per store, read by the front.
  struct properties {
    bool device_tensors = false;   // values and outputs may be on CUDA devices
    bool compress_single = false;  // compression applies to one-value pushes too
  };

  virtual ~router() = default;
  const properties& props() const noexcept { return props_; }

  /// Starts what needs the front's shared_ptr (the embedding client holds it weakly).
  virtual void start(std::weak_ptr<store_impl> front) = 0;

  /// Router-specific checks of a call's resolved groups (a push, pull or pushpull).
  virtual status check(op_kind kind, const group_list& groups) const {
    (void)kind;
    (void)groups;
    return {};
  }
  /// Router-specific checks of a new key (`probe` is what check_new_group made of it).
  virtual status check_new(const key_group& g, const key_info& probe) const {
    (void)g;
    (void)probe;
    return {};
  }
  /// Where the call's new keys live (one per group); all on the host by default.
  virtual std::vector<device> homes(const group_list& groups) {
    return std::vector<device>(groups.size(), device::cpu());
  }

  /// init / broadcast of freshly registered keys (lk held exclusively).
  virtual future<void> route_new(op_kind kind, group_list& groups, int priority,
                                 std::unique_lock<std::shared_mutex>& lk) = 0;
  /// push / pull / pushpull of resolved groups, with the call's snapshot (lk held shared).
  virtual future<void> route(op_kind kind, group_list& groups, int priority,
                             const front_state::snapshot& snap,
                             std::shared_lock<std::shared_mutex>& lk) = 0;
  virtual future<void> route_sparse(std::vector<sparse_group>& groups, int priority,
                                    std::shared_ptr<const updater> upd,
                                    std::shared_lock<std::shared_mutex>& lk) = 0;
  virtual future<void> route_rows(row_pull_request& req, int priority, bool compact,
                                  std::shared_lock<std::shared_mutex>& lk) = 0;

  /// An updater (code) the router can run, or why not (throws kvactor::error).
  virtual void check_updater() const {}
  /// Takes the optimizer to wherever updates run (the front split it once): installs the
  /// updater in front_state, or sends it to the servers.
  virtual future<void> set_optimizer(const optimizer_config& cfg, split_optimizer& split) = 0;
  /// The compression setting is in front_state already; a router may pass it on.
  virtual future<void> set_compression(const compression::params& p) = 0;
  virtual future<void> save_states(const std::string& file, bool dump_optimizer) = 0;
  virtual future<void> load_states(const std::string& file) = 0;
  virtual future<void> send_command(int head, const std::string& body) = 0;
  virtual int rank() const { return 0; }
  virtual int num_workers() const { return 1; }
  virtual future<void> barrier() { return ready(); }
  /// After the front stopped taking calls: drains and stops (the front's `stopped` is set).
  virtual void shutdown() = 0;
  virtual const caf::actor* client_actor() const noexcept = 0;

 protected:
  explicit router(properties p) : props_(p) {}

 private:
  properties props_;
};

/// A store of `type`: the front over `r`, started. `s` must be the state `r` was built on.
std::shared_ptr<store_impl> make_store_front(std::string type, std::unique_ptr<front_state> s,
                                             std::unique_ptr<router> r);

}  // namespace kvactor::detail
