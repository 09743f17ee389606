#include "kvactor/kvstore.hpp"

#include <cstdlib>
#include <set>

#include "dist/nodes.hpp"
#include "kvactor/cuda.hpp"
#include "kvactor/detail/timeline.hpp"
#include "sparse_pull.hpp"
#include "store_impl.hpp"
#include "store_registry.hpp"

namespace kvactor {

namespace {
const detail::store_impl& checked(const std::shared_ptr<detail::store_impl>& p) {
  if (!p) throw error{errc::invalid_argument, "use of an empty kvstore handle"};
  return *p;
}
detail::store_impl& checked_mut(const std::shared_ptr<detail::store_impl>& p) {
  if (!p) throw error{errc::invalid_argument, "use of an empty kvstore handle"};
  return *p;
}
// Every future handed to the user is watched, so that wait_all() can report an error that
// nobody observed.
future<void> watched(detail::store_impl& s, future<void> f) {
  s.errors().watch(f);
  return f;
}
// submit(outs) with outputs of another element type than their key's standing in for by
// staging tensors, converted once the store is done (output_cast.hpp).
template <class Submit>
future<void> converting(detail::store_impl& s, detail::op_kind kind, const key_list& keys,
                        const value_list& values, const value_list& outs, Submit submit) {
  if (outs.empty() || !s.converts_outputs()) return submit(outs);
  auto staged =
      detail::stage_outputs(kind, keys, values, outs, [&s](const key& k) -> std::optional<dtype> {
        if (auto info = s.key_of(k)) return info->dtype;
        return std::nullopt;
      });
  if (!staged) return future<void>::ready_with(staged.error());
  if (staged->casts.empty()) return submit(outs);
  return detail::finish_casts(submit(staged->outs), std::move(staged->casts), s.casts());
}
}  // namespace

kvstore::kvstore(std::shared_ptr<detail::store_impl> impl) noexcept : impl_(std::move(impl)) {}

kvstore::~kvstore() {
  if (!impl_) return;
  impl_->shutdown();
  impl_->casts()->wait_zero();
  // The timeline's file holds everything up to this store's end (and is written again at exit).
  if (detail::timeline::enabled()) detail::timeline::write_and_report();
}

kvstore& kvstore::operator=(kvstore&& other) noexcept {
  if (this != &other) {
    if (impl_) impl_->shutdown();
    impl_ = std::move(other.impl_);
  }
  return *this;
}

future<void> kvstore::init(const key_list& keys, const value_list& values) {
  auto& s = checked_mut(impl_);
  return watched(s, s.submit(detail::op_kind::init, keys, values, {}, 0));
}

future<void> kvstore::push(const key_list& keys, const value_list& values, int priority) {
  auto& s = checked_mut(impl_);
  return watched(s, s.submit(detail::op_kind::push, keys, values, {}, priority));
}

future<void> kvstore::init(const key_list& keys, const sparse_list& values) {
  auto& s = checked_mut(impl_);
  return watched(s, s.submit_sparse(detail::op_kind::init, keys, values, 0));
}

future<void> kvstore::push(const key_list& keys, const sparse_list& values, int priority) {
  auto& s = checked_mut(impl_);
  return watched(s, s.submit_sparse(detail::op_kind::push, keys, values, priority));
}

future<void> kvstore::row_sparse_pull(const key_list& keys, const value_list& outs,
                                      const value_list& row_ids, int priority) {
  auto& s = checked_mut(impl_);
  return watched(s, converting(s, detail::op_kind::pull, keys, {}, outs, [&](const value_list& o) {
                   return s.row_sparse_pull(keys, o, row_ids, priority, detail::row_layout::dense);
                 }));
}

future<void> kvstore::row_sparse_pull(const key_list& keys, const sparse_output_list& outs,
                                      const value_list& row_ids, int priority) {
  auto& s = checked_mut(impl_);
  return watched(s, detail::pull_rows_into(s, keys, outs, row_ids, priority));
}

future<void> kvstore::pull(const key_list& keys, const sparse_output_list& outs, int /*priority*/,
                           bool ignore_sparse) {
  auto& s = checked_mut(impl_);
  return watched(s, detail::pull_sparse_outputs(keys, outs, ignore_sparse));
}

future<void> kvstore::pull(const key_list& keys, const value_list& outs, int priority,
                           bool /*ignore_sparse: dense outputs are pulled whatever it says*/) {
  auto& s = checked_mut(impl_);
  return watched(s, converting(s, detail::op_kind::pull, keys, {}, outs, [&](const value_list& o) {
                   return s.submit(detail::op_kind::pull, keys, {}, o, priority);
                 }));
}

future<void> kvstore::pushpull(const key_list& keys, const value_list& values,
                               const value_list& outs, int priority) {
  auto& s = checked_mut(impl_);
  return watched(
      s, converting(s, detail::op_kind::pushpull, keys, values, outs, [&](const value_list& o) {
        return s.submit(detail::op_kind::pushpull, keys, values, o, priority);
      }));
}

future<void> kvstore::broadcast(const key_list& keys, const value_list& values,
                                const value_list& outs, int priority) {
  auto& s = checked_mut(impl_);
  return watched(
      s, converting(s, detail::op_kind::broadcast, keys, values, outs, [&](const value_list& o) {
        return s.submit(detail::op_kind::broadcast, keys, values, o, priority);
      }));
}

void kvstore::set_updater(updater_fn fn) {
  checked_mut(impl_).set_updater(make_updater(std::move(fn)));
}

void kvstore::set_updater(std::shared_ptr<const updater> u) {
  checked_mut(impl_).set_updater(std::move(u));
}

void kvstore::set_updater(std::nullptr_t) {
  checked_mut(impl_).set_updater(nullptr);
}

future<void> kvstore::set_optimizer(const optimizer_config& cfg) {
  auto& s = checked_mut(impl_);
  return watched(s, s.set_optimizer(cfg));
}

future<void> kvstore::save_optimizer_states(const std::string& file, bool dump_optimizer) {
  auto& s = checked_mut(impl_);
  return watched(s, s.save_states(file, dump_optimizer));
}

future<void> kvstore::load_optimizer_states(const std::string& file) {
  auto& s = checked_mut(impl_);
  return watched(s, s.load_states(file));
}

future<void> kvstore::send_command_to_servers(int head, const std::string& body) {
  auto& s = checked_mut(impl_);
  return watched(s, s.send_command(head, body));
}

future<void> kvstore::set_gradient_compression(const std::string& type, double threshold) {
  auto& s = checked_mut(impl_);
  return watched(s, s.set_compression(type, threshold));
}

std::string kvstore::type() const {
  return checked(impl_).type();
}
int kvstore::rank() const {
  return checked(impl_).rank();
}
int kvstore::num_workers() const {
  return checked(impl_).num_workers();
}
future<void> kvstore::barrier() {
  auto& s = checked_mut(impl_);
  return watched(s, s.barrier());
}
bool kvstore::is_capable(std::string_view capability) const {
  return checked(impl_).is_capable(capability);
}
void kvstore::wait_all() {
  auto& s = checked_mut(impl_);
  s.wait_all();
  s.casts()->wait_zero();
  if (auto e = s.errors().take_first(); !e.is_ok()) throw error{e};
}
std::size_t kvstore::outstanding() const {
  const auto& s = checked(impl_);
  return s.outstanding() + s.casts()->value();
}

namespace detail {
namespace {
const std::set<std::string_view> local = {"local", "local_update_cpu", "local_allreduce_cpu"};
const std::set<std::string_view> dist = {"dist_sync", "dist_async"};
const std::set<std::string_view> device = {"device", "local_allreduce_device"};
const std::set<std::string_view> dist_device = {"dist_sync_device", "dist_async_device",
                                                "dist_device_sync", "dist_device_async"};
}  // namespace

bool is_builtin_store_type(std::string_view type) {
  return local.count(type) || dist.count(type) || device.count(type) || dist_device.count(type);
}

std::shared_ptr<store_impl> make_store(std::string_view type, const options& opts,
                                       caf::actor_system* sys) {
  // A mistyped KVACTOR_EMULATE_CUDA ("two", "99") stops the program here rather than leaving
  // it to run without the devices it asked for: cuda_emulated() throws invalid_argument then.
  if (const char* e = std::getenv("KVACTOR_EMULATE_CUDA"); e && *e) (void)cuda_emulated();
  // A user graph that cannot serve any push is refused before a store exists.
  if (opts.reduction && opts.reduction->type() == topology::kind::custom) {
    const auto& g = opts.reduction->graph();
    if (auto st = g.validate(g.num_slots()); !st) throw error{st};
  }
  if ((local.count(type) || device.count(type)) && timeline::enabled())
    timeline::set_process_name_default("local");
  if (local.count(type)) return make_local_store(std::string{type}, opts, sys);
  if (device.count(type)) {
    options o = opts;
    if (!o.reduction) o.reduction = std::make_shared<const topology>(topology::flat());
    return make_local_store(std::string{type}, o, sys);
  }
  if (dist.count(type) || dist_device.count(type)) {
    auto cfg = read_cluster_config(process_env());
    if (!cfg) throw error{cfg.error()};
    if (cfg->role == "scheduler") std::exit(run_scheduler(*cfg));
    if (cfg->role == "server") std::exit(run_server(*cfg, opts));
    return make_dist_store(std::string{type}, opts, *cfg, dist_device.count(type) != 0);
  }
  if (auto factory = find_registered_store(type))
    return make_registered_store(std::string{type}, factory, opts);
  std::string known =
      "local, local_update_cpu, local_allreduce_cpu, device, local_allreduce_device, "
      "dist_sync, dist_async, dist_sync_device, dist_async_device";
  for (const auto& name : registered_store_types())
    known += ", " + name;
  throw error{errc::invalid_argument,
              "unknown store type \"" + std::string{type} + "\" (known: " + known + ")"};
}
}  // namespace detail

kvstore create(std::string_view type, const options& opts) {
  return kvstore{detail::make_store(type, opts, nullptr)};
}

}  // namespace kvactor
