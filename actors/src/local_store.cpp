// The local store: shard actors own keys by hash, a thread pool reduces big arrays, the
// facade validates against the key registry and sends each key's op straight to its shard
// (the routing table never changes, so routing on the caller's thread saves a hop; the client
// actor serves actors that embed the store).
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <optional>
#include <thread>

#include "caf_glue.hpp"
#include "key_registry.hpp"
#include "kvactor/cuda.hpp"
#include "kvactor/detail/thread_pool.hpp"
#include "kvactor/optimizer_state.hpp"
#include "kvactor/serialization/optimizer_states.hpp"
#include "multi_precision.hpp"
#include "optimizers.hpp"
#include "reduction.hpp"
#include "request.hpp"
#include "shard_core.hpp"
#include "state_records.hpp"
#include "store_impl.hpp"

namespace kvactor::detail {

namespace {

std::size_t or_cores(std::size_t n) {
  return n ? n : std::max<std::size_t>(1, std::thread::hardware_concurrency());
}

future<void> failed(status s) {
  return future<void>::ready_with(std::move(s));
}

// An optimizer from its config, multi-precision wrapped as the config asks.
result<std::shared_ptr<const updater>> build_updater(const optimizer_config& cfg) {
  auto split = split_multi_precision(cfg);
  if (!split) return split.error();
  return split->effective();
}

wire::key_state_record to_record(const shard_core::state_record& r) {
  wire::key_state_record k;
  k.key = wire::wire_key::from(r.info->user_key);
  k.count = r.count;
  for (const auto& t : r.slots)
    k.slots.push_back(to_slot(t));
  if (r.master.defined()) k.master = to_slot(r.master);
  return k;
}

// A record of the file as the state the optimizer would build for `info`, or why not.
result<shard_core::state_record> from_record(const wire::key_state_record& rec,
                                             const key_info_ptr& info,
                                             const std::shared_ptr<const updater>& upd,
                                             const std::string& file) {
  const std::string where = "load_optimizer_states: " + file + ": key " + info->name();
  // What the optimizer keeps for such a key: the number of slots, their element types, a
  // master copy or not (probed on a one-element weight of the key's type).
  std::unique_ptr<updater_state> probe;
  try {
    probe = upd->make_state(info->user_key, tensor::zeros({1}, info->dtype));
  } catch (const std::exception& e) {
    return status{errc::invalid_argument, where + ": " + e.what()};
  }
  const auto* ps = dynamic_cast<const optimizer_state*>(probe.get());
  if (!ps) return status{errc::unsupported, where + ": the optimizer keeps no saveable state"};
  if (rec.slots.size() != ps->slots.size() || rec.master.has_value() != ps->master.defined())
    return status{errc::invalid_argument, where + " has " + std::to_string(rec.slots.size()) +
                                              " state tensors, the optimizer keeps " +
                                              std::to_string(ps->slots.size())};
  auto to_tensor = [&](const wire::slot_record& s, dtype want) -> result<tensor> {
    const shape sh{s.dims};
    if (sh != info->shape)
      return status{errc::shape_mismatch, where + ": state of shape " + sh.to_string() +
                                              ", the key has shape " + info->shape.to_string()};
    if (s.dtype != static_cast<std::uint8_t>(want))
      return status{errc::dtype_mismatch,
                    where + ": state element type differs from " + std::string{to_string(want)}};
    return tensor::from_bytes(s.bytes.data(), sh, want);
  };
  shard_core::state_record r;
  r.info = info;
  r.count = rec.count;
  for (std::size_t i = 0; i < rec.slots.size(); ++i) {
    auto t = to_tensor(rec.slots[i], ps->slots[i].dtype());
    if (!t) return t.error();
    r.slots.push_back(std::move(*t));
  }
  if (rec.master) {
    auto t = to_tensor(*rec.master, dtype::float32);
    if (!t) return t.error();
    r.master = std::move(*t);
  }
  return r;
}

class local_store final : public store_impl, public std::enable_shared_from_this<local_store> {
 public:
  local_store(std::string type, const options& opts, caf::actor_system* external)
      : type_(std::move(type)), opts_(opts), reg_(or_cores(opts.num_shards)) {
    opts_.num_shards = or_cores(opts.num_shards);
    opts_.worker_threads = or_cores(opts.worker_threads);
    opts_.reducer_threads = or_cores(opts.reducer_threads);
    if (external) {
      sys_ = external;
    } else {
      own_cfg_ = std::make_unique<caf::actor_system_config>();
      own_cfg_->set("scheduler.max-threads", opts_.worker_threads);
      // An idle CAF worker otherwise sleeps 50 us between polls for ~55 ms before it parks;
      // messages from user and pool threads then wait for the sleep to end (~100 us per hop
      // measured here). Parking at once lets the sender's notify wake it in a few us.
      own_cfg_->set("work-stealing.moderate-poll-attempts", std::size_t{0});
      add_to_config(*own_cfg_);
      own_sys_ = std::make_unique<caf::actor_system>(*own_cfg_);
      sys_ = own_sys_.get();
    }
    pool_ = std::make_unique<thread_pool>(opts_.reducer_threads);
    if (opts_.reduction) reduction_ = std::make_unique<reduction_engine>(*sys_, *opts_.reduction);
    shards_.reserve(opts_.num_shards);
    for (std::size_t i = 0; i < opts_.num_shards; ++i)
      shards_.push_back(spawn_shard(*sys_, pool_.get(), opts_.reducer_threads,
                                    opts_.parallel_threshold_bytes, reduction_.get()));
  }

  // The client actor holds the store weakly, so it is spawned once a shared_ptr exists.
  void start_client() { client_ = spawn_client(*sys_, weak_from_this()); }

  ~local_store() override { shutdown(); }

  future<void> submit(op_kind kind, const key_list& keys, const value_list& values,
                      const value_list& outs, int priority) override {
    const value_list& out_args = (kind == op_kind::pushpull && outs.empty()) ? values : outs;
    auto grouped = group_arguments(kind, keys, values, out_args, /*device_tensors=*/true);
    if (!grouped) return failed(grouped.error());
    auto& groups = *grouped;
    if (auto s = check_overlaps(kind, groups); !s) return failed(s);
    if (kind == op_kind::init || kind == op_kind::broadcast)
      return submit_new(kind, groups, priority);

    std::shared_ptr<const updater> upd;
    compression::params gc;
    std::uint64_t gc_version = 0;
    if (kind == op_kind::push || kind == op_kind::pushpull) {
      std::lock_guard<std::mutex> g(upd_mu_);
      upd = updater_;
      gc = gc_;
      gc_version = gc_version_;
    }
    std::shared_lock<std::shared_mutex> lk(reg_.mutex());
    if (stopped_) return failed(status{errc::shut_down, "the store has shut down"});
    for (auto& g : groups) {
      if (auto s = resolve_group(kind, g, groups.front().k, reg_); !s) return failed(s);
      if (reduction_ && g.values.size() > 1 && reduction_->shape().type() == topology::kind::custom)
        if (auto s = reduction_->shape().graph().validate(g.values.size()); !s)
          return failed(status{errc::invalid_argument,
                               std::string{to_string(kind)} + ": key " + g.k.to_string() + " has " +
                                   std::to_string(g.values.size()) + " values for the store's " +
                                   reduction_->shape().describe() + " topology: " + s.message()});
      // Only multi-device merges are compressed in a local store.
      if (g.values.size() > 1)
        if (auto s = check_compressible(kind, gc, g); !s) return failed(s);
    }
    return send_all(kind, groups, priority, std::move(upd), gc, gc_version);
  }

  future<void> submit_sparse(op_kind kind, const key_list& keys, const sparse_list& values,
                             int priority) override {
    auto grouped = group_sparse(kind, keys, values, /*device_tensors=*/true);
    if (!grouped) return failed(grouped.error());
    if (kind == op_kind::init) {
      // Stored dense: init from the dense values the row-sparse ones stand for (on the rows'
      // device, which init takes as any device value).
      std::vector<key> ks;
      std::vector<tensor> dense;
      for (auto& g : *grouped) {
        if (g.values.size() != 1)
          return failed(
              status{errc::already_initialized, "init: key " + g.k.to_string() + " is given " +
                                                    std::to_string(g.values.size()) + " values"});
        ks.push_back(g.k);
        try {
          dense.push_back(g.values.front().to_dense());
        } catch (const error& e) {
          return failed(e.to_status());
        }
      }
      return submit(op_kind::init, key_list(ks), value_list(dense), {}, priority);
    }
    auto& groups = *grouped;
    if (auto s = check_sparse_push(groups, reg_); !s) return failed(s);
    auto upd = current_updater();
    std::shared_lock<std::shared_mutex> lk(reg_.mutex());
    if (stopped_) return failed(status{errc::shut_down, "the store has shut down"});
    auto call = std::make_shared<call_state>(groups.size(), counter_);
    auto result = call->get_future();
    for (auto& g : groups) {
      auto o = std::make_shared<op>();
      o->kind = op_kind::push;
      o->info = g.info;
      o->priority = priority;
      o->sparse = std::move(g.values);
      o->upd = upd;
      o->call = call;
      o->acquire_leases();
      const auto shard = o->info->shard;
      caf::anon_send(shards_[shard], std::move(o));
    }
    return result;
  }

  future<void> row_sparse_pull(const key_list& keys, const value_list& outs,
                               const value_list& row_ids, int priority,
                               row_layout layout) override {
    const bool compact = layout == row_layout::compact;
    auto req = prepare_row_pull(keys, outs, row_ids, reg_, /*device_tensors=*/true, compact);
    if (!req) return failed(req.error());
    auto& groups = req->groups;
    auto& ids = req->ids;
    std::shared_lock<std::shared_mutex> lk(reg_.mutex());
    if (stopped_) return failed(status{errc::shut_down, "the store has shut down"});
    auto call = std::make_shared<call_state>(groups.size(), counter_);
    auto result = call->get_future();
    for (std::size_t i = 0; i < groups.size(); ++i) {
      auto o = std::make_shared<op>();
      o->kind = op_kind::row_pull;
      o->info = std::move(groups[i].info);
      o->priority = priority;
      o->outs = std::move(groups[i].outs);
      o->rows = std::move(ids[i]);
      o->compact_rows = compact;
      o->call = call;
      o->acquire_leases();
      const auto shard = o->info->shard;
      caf::anon_send(shards_[shard], std::move(o));
    }
    return result;
  }

  void set_updater(std::shared_ptr<const updater> u) override {
    std::lock_guard<std::mutex> g(upd_mu_);
    updater_ = std::move(u);
    optimizer_.reset();
  }

  future<void> set_optimizer(const optimizer_config& cfg) override {
    auto u = build_updater(cfg);
    if (!u) return failed(u.error());
    std::lock_guard<std::mutex> g(upd_mu_);
    updater_ = std::move(*u);
    optimizer_ = cfg;
    return failed(status{});
  }

  future<void> set_compression(const std::string& type, double threshold) override {
    auto p = compression::parse(type, threshold);
    if (!p) return failed(p.error());
    std::lock_guard<std::mutex> g(upd_mu_);
    gc_ = *p;
    ++gc_version_;  // residuals start again from zero
    return failed(status{});
  }

  future<void> save_states(const std::string& file, bool dump_optimizer) override {
    std::shared_ptr<const updater> upd;
    std::optional<optimizer_config> cfg;
    {
      std::lock_guard<std::mutex> g(upd_mu_);
      upd = updater_;
      cfg = optimizer_;
    }
    if (!upd || !cfg)
      return failed(status{errc::unsupported,
                           "save_optimizer_states: no optimizer is set (a "
                           "custom updater keeps its own state)"});
    struct collector {
      std::mutex mu;
      std::vector<shard_core::state_record> records;
      std::size_t left;
    };
    auto col = std::make_shared<collector>();
    col->left = shards_.size();
    auto call = std::make_shared<call_state>(1, counter_);
    auto result = call->get_future();
    std::optional<optimizer_config> dump;
    if (dump_optimizer) dump = cfg;
    fence_fn f = [col, call, upd, file, dump](shard_core& core) {
      auto mine = core.snapshot_states(upd);
      std::lock_guard<std::mutex> g(col->mu);
      for (auto& r : mine)
        col->records.push_back(std::move(r));
      if (--col->left != 0) return;
      wire::states_file out;
      out.optimizer = dump;
      for (const auto& r : col->records)
        out.keys.push_back(to_record(r));
      call->part_done(wire::write_states_file(file, out));
    };
    std::shared_lock<std::shared_mutex> lk(reg_.mutex());
    if (stopped_) return failed(status{errc::shut_down, "the store has shut down"});
    for (auto& s : shards_)
      caf::anon_send(s, fence_atom::value, f);
    return result;
  }

  future<void> load_states(const std::string& file) override {
    auto content = wire::read_states_file(file);
    if (!content) return failed(content.error());
    // The file's optimizer (if it has one) is only installed once everything checked out.
    std::shared_ptr<const updater> upd = current_updater();
    if (content->optimizer) {
      auto u = build_updater(*content->optimizer);
      if (!u) return failed(u.error());
      upd = std::move(*u);
    }
    if (!upd)
      return failed(status{errc::invalid_argument,
                           "load_optimizer_states: set an optimizer first, or load a file saved "
                           "with dump_optimizer"});
    std::vector<std::vector<shard_core::state_record>> per_shard(shards_.size());
    std::shared_lock<std::shared_mutex> lk(reg_.mutex());
    if (stopped_) return failed(status{errc::shut_down, "the store has shut down"});
    for (const auto& rec : content->keys) {
      const key k = rec.key.to_key();
      if (auto s = reg_.check_kind(k); !s) return failed(s);
      auto info = reg_.find(k);
      if (!info)
        return failed(status{errc::invalid_argument, "load_optimizer_states: key " + k.to_string() +
                                                         " in " + file +
                                                         " is not initialized in this store"});
      auto r = from_record(rec, info, upd, file);
      if (!r) return failed(r.error());
      per_shard[info->shard].push_back(std::move(*r));
    }
    if (content->optimizer) {
      std::lock_guard<std::mutex> g(upd_mu_);
      updater_ = upd;
      optimizer_ = content->optimizer;
    }
    auto call = std::make_shared<call_state>(shards_.size(), counter_);
    auto result = call->get_future();
    for (std::size_t i = 0; i < shards_.size(); ++i) {
      auto records =
          std::make_shared<std::vector<shard_core::state_record>>(std::move(per_shard[i]));
      fence_fn f = [records, upd, call](shard_core& core) {
        core.restore_states(*records, upd);
        call->part_done(status{});
      };
      caf::anon_send(shards_[i], fence_atom::value, f);
    }
    return result;
  }

  future<void> send_command(int head, const std::string&) override {
    return failed(status{
        errc::unsupported,
        "a " + type_ + " store has no servers to send command " + std::to_string(head) + " to"});
  }

  std::string type() const override { return type_; }
  int rank() const override { return 0; }
  int num_workers() const override { return 1; }
  future<void> barrier() override { return failed(status{}); }

  bool is_capable(std::string_view capability) const override {
    std::string c{capability};
    std::transform(c.begin(), c.end(), c.begin(),
                   [](unsigned char ch) { return std::tolower(ch); });
    if (c == "optimizer") return true;
    throw error{errc::invalid_argument,
                "unknown capability \"" + std::string{capability} + "\" (known: optimizer)"};
  }

  void wait_all() override { counter_->wait_zero(); }
  std::size_t outstanding() const override { return counter_->value(); }

  void shutdown() override {
    {
      std::unique_lock<std::shared_mutex> lk(reg_.mutex());
      if (stopped_) return;
      stopped_ = true;
    }
    counter_->wait_zero();
    // Actors first, and wait until they are gone: a shard that was never scheduled may only
    // now run its initialisation. The pool goes next (its threads may still be releasing the
    // weak shard handles of finished jobs), and the actor system last.
    for (auto& s : shards_)
      caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
    if (client_) caf::anon_send_exit(client_, caf::exit_reason::user_shutdown);
    {
      caf::scoped_actor self{*sys_};
      self->wait_for(shards_);
      if (client_) self->wait_for(client_);
    }
    shards_.clear();
    client_ = nullptr;
    if (reduction_) reduction_->shutdown();
    pool_.reset();
    own_sys_.reset();
    own_cfg_.reset();
  }

  const caf::actor* client_actor() const noexcept override { return &client_; }
  key_info_ptr key_of(const key& k) const override { return reg_.find_locked(k); }

 private:
  std::shared_ptr<const updater> current_updater() const {
    std::lock_guard<std::mutex> g(upd_mu_);
    return updater_;
  }

  future<void> submit_new(op_kind kind, group_list& groups, int priority) {
    // Registration and sending happen under the exclusive lock, so any later call that finds
    // these keys is sent after their init and reaches the shard behind it.
    std::unique_lock<std::shared_mutex> lk(reg_.mutex());
    if (stopped_) return failed(status{errc::shut_down, "the store has shut down"});
    for (const auto& g : groups)
      if (auto probe = check_new_group(kind, g, groups.front().k, reg_); !probe)
        return failed(probe.error());
    const auto homes = place_on_devices(groups);
    for (std::size_t i = 0; i < groups.size(); ++i) {
      auto& g = groups[i];
      reg_.set_kind(g.k);
      g.info = reg_.add(g.k, g.values.front().shape(), g.values.front().dtype(), homes[i]);
    }
    return send_all(kind, groups, priority, nullptr);
  }

  // The device store keeps each key on a CUDA device (when there are any): the one with the
  // fewest bytes placed so far, taking the call's keys largest first, as MXNet places its
  // merge buffers. Caller holds the registry lock exclusively.
  std::vector<device> place_on_devices(const group_list& groups) {
    std::vector<device> homes(groups.size(), device::cpu());
    const int n = cuda_device_count();
    if (!device_store_ || n == 0) return homes;
    if (placed_bytes_.size() != static_cast<std::size_t>(n)) placed_bytes_.assign(n, 0);
    std::vector<std::size_t> order(groups.size());
    for (std::size_t i = 0; i < order.size(); ++i)
      order[i] = i;
    auto bytes = [&](std::size_t i) { return groups[i].values.front().nbytes(); };
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return bytes(a) > bytes(b); });
    for (std::size_t i : order) {
      const auto least = std::min_element(placed_bytes_.begin(), placed_bytes_.end());
      *least += bytes(i);
      homes[i] = device::cuda(static_cast<int>(least - placed_bytes_.begin()));
    }
    return homes;
  }

  // Caller holds the registry lock (shared or exclusive).
  future<void> send_all(op_kind kind, group_list& groups, int priority,
                        std::shared_ptr<const updater> upd, compression::params gc = {},
                        std::uint64_t gc_version = 0) {
    auto call = std::make_shared<call_state>(groups.size(), counter_);
    auto result = call->get_future();
    for (std::size_t i = 0; i < groups.size(); ++i) {
      auto o = std::make_shared<op>();
      o->kind = kind;
      o->info = std::move(groups[i].info);
      o->priority = priority;
      o->values = std::move(groups[i].values);
      o->outs = std::move(groups[i].outs);
      o->upd = upd;
      o->gc = gc;
      o->gc_version = gc_version;
      o->call = call;
      o->acquire_leases();
      const auto shard = o->info->shard;
      caf::anon_send(shards_[shard], std::move(o));
    }
    return result;
  }

  std::string type_;
  options opts_;
  std::unique_ptr<caf::actor_system_config> own_cfg_;
  std::unique_ptr<caf::actor_system> own_sys_;
  caf::actor_system* sys_ = nullptr;
  std::unique_ptr<thread_pool> pool_;
  std::unique_ptr<reduction_engine> reduction_;
  const bool device_store_ = type_ == "device" || type_ == "local_allreduce_device";
  std::vector<std::size_t> placed_bytes_;  // per CUDA device, under the registry lock
  std::vector<caf::actor> shards_;
  caf::actor client_;
  key_registry reg_;
  bool stopped_ = false;  // guarded by reg_.mutex()
  std::shared_ptr<op_counter> counter_ = std::make_shared<op_counter>();
  mutable std::mutex upd_mu_;
  std::shared_ptr<const updater> updater_;
  std::optional<optimizer_config> optimizer_;  // what set_optimizer built updater_ from
  compression::params gc_;                     // guarded by upd_mu_
  std::uint64_t gc_version_ = 0;               // ditto
};

}  // namespace

std::shared_ptr<store_impl> make_local_store(std::string type, const options& opts,
                                             caf::actor_system* external) {
  auto s = std::make_shared<local_store>(std::move(type), opts, external);
  s->start_client();
  return s;
}

}  // namespace kvactor::detail
