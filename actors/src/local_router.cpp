// The local router (store_front.hpp): shard actors own keys by hash, a thread pool reduces
// big arrays; behind the front's validation each key's op goes straight to its shard (the
// routing table never changes, so routing on the caller's thread saves a hop; the client
// actor serves actors that embed the store). Save and load are fences through every shard.
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <boost/container/small_vector.hpp>

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
#include "store_front.hpp"

namespace kvactor::detail {

namespace {

std::size_t or_cores(std::size_t n) {
  return n ? n : std::max<std::size_t>(1, std::thread::hardware_concurrency());
}

// An optimizer from its config, multi-precision wrapped as the config asks.
result<std::shared_ptr<const updater>> build_updater(const optimizer_config& cfg) {
  auto split = split_multi_precision(cfg);
  if (!split) return split.error();
  return split->effective();
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

class local_router final : public router {
 public:
  local_router(const std::string& type, const options& opts, caf::actor_system* external,
               front_state& st)
      : router(properties{/*device_tensors=*/true, /*compress_single=*/false}),
        type_(type),
        opts_(opts),
        st_(st),
        device_store_(type == "device" || type == "local_allreduce_device") {
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

  ~local_router() override { shutdown(); }

  void start(std::weak_ptr<store_impl> front) override {
    client_ = spawn_client(*sys_, std::move(front));
  }

  // A custom reduction topology must fit the number of values each key merges.
  status check(op_kind kind, const group_list& groups) const override {
    if (!reduction_ || reduction_->shape().type() != topology::kind::custom) return {};
    for (const auto& g : groups)
      if (g.values.size() > 1)
        if (auto s = reduction_->shape().graph().validate(g.values.size()); !s)
          return status{errc::invalid_argument,
                        std::string{to_string(kind)} + ": key " + g.k.to_string() + " has " +
                            std::to_string(g.values.size()) + " values for the store's " +
                            reduction_->shape().describe() + " topology: " + s.message()};
    return {};
  }

  // The device store keeps each key on a CUDA device (when there are any): the one with the
  // fewest bytes placed so far, taking the call's keys largest first, as MXNet places its
  // merge buffers. Caller holds the registry lock exclusively.
  std::vector<device> homes(const group_list& groups) override {
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

  // An init is sent under the registry lock (the front's), so that it reaches its shard
  // before any op of a call that found the key (sent or started after it, shard_gate.hpp).
  future<void> route_new(op_kind kind, group_list& groups, int priority,
                         std::unique_lock<std::shared_mutex>&) override {
    ops_list ops;
    auto f = make_ops(kind, groups, priority, {}, ops);
    for (auto& o : ops)
      send(std::move(o));
    return f;
  }

  // Other ops may start on this thread (deliver), so they go once the registry lock is
  // released: the call's completion may run here, and a continuation may call the store.
  future<void> route(op_kind kind, group_list& groups, int priority,
                     const front_state::snapshot& snap,
                     std::shared_lock<std::shared_mutex>& lk) override {
    ops_list ops;
    auto f = make_ops(kind, groups, priority, snap, ops);
    lk.unlock();
    for (auto& o : ops) {
      const auto& shard = shards_[o->info->shard];
      deliver(shard, std::move(o), /*here=*/true);
    }
    return f;
  }

  future<void> route_sparse(std::vector<sparse_group>& groups, int priority,
                            std::shared_ptr<const updater> upd,
                            std::shared_lock<std::shared_mutex>&) override {
    auto call = std::make_shared<call_state>(groups.size(), st_.counter);
    auto result = call->get_future();
    for (auto& g : groups) {
      auto o = std::make_shared<op>();
      o->kind = op_kind::push;
      o->info = g.info;
      o->priority = priority;
      o->sparse = std::move(g.values);
      o->upd = upd;
      o->call = call;
      send(std::move(o));
    }
    return result;
  }

  future<void> route_rows(row_pull_request& req, int priority, bool compact,
                          std::shared_lock<std::shared_mutex>&) override {
    auto& groups = req.groups;
    auto call = std::make_shared<call_state>(groups.size(), st_.counter);
    auto result = call->get_future();
    for (std::size_t i = 0; i < groups.size(); ++i) {
      auto o = std::make_shared<op>();
      o->kind = op_kind::row_pull;
      o->info = std::move(groups[i].info);
      o->priority = priority;
      o->outs = std::move(groups[i].outs);
      o->rows = std::move(req.ids[i]);
      o->compact_rows = compact;
      o->call = call;
      send(std::move(o));
    }
    return result;
  }

  future<void> set_optimizer(const optimizer_config& cfg, split_optimizer& split) override {
    st_.install(split.effective(), cfg);
    return ready();
  }

  future<void> set_compression(const compression::params&) override { return ready(); }

  future<void> save_states(const std::string& file, bool dump_optimizer) override {
    std::shared_ptr<const updater> upd;
    std::optional<optimizer_config> cfg;
    {
      std::lock_guard<std::mutex> g(st_.mu);
      upd = st_.installed;
      cfg = st_.optimizer;
    }
    if (!upd || !cfg)
      return ready(status{errc::unsupported,
                          "save_optimizer_states: no optimizer is set (a "
                          "custom updater keeps its own state)"});
    auto call = std::make_shared<call_state>(1, st_.counter);
    auto result = call->get_future();
    std::optional<optimizer_config> dump;
    if (dump_optimizer) dump = cfg;
    const shard_fence f = save_states_fence{
        upd, std::make_shared<states_collector>(shards_.size(), file, std::move(dump), call)};
    std::shared_lock<std::shared_mutex> lk(st_.reg.mutex());
    if (st_.stopped) return ready(status{errc::shut_down, "the store has shut down"});
    for (auto& s : shards_)
      deliver_fence(s, f);
    return result;
  }

  future<void> load_states(const std::string& file) override {
    auto content = wire::read_states_file(file);
    if (!content) return ready(content.error());
    // The file's optimizer (if it has one) is only installed once everything checked out.
    std::shared_ptr<const updater> upd = st_.current_updater();
    if (content->optimizer) {
      auto u = build_updater(*content->optimizer);
      if (!u) return ready(u.error());
      upd = std::move(*u);
    }
    if (!upd)
      return ready(status{errc::invalid_argument,
                          "load_optimizer_states: set an optimizer first, or load a file saved "
                          "with dump_optimizer"});
    std::vector<std::vector<shard_core::state_record>> per_shard(shards_.size());
    std::shared_lock<std::shared_mutex> lk(st_.reg.mutex());
    if (st_.stopped) return ready(status{errc::shut_down, "the store has shut down"});
    for (const auto& rec : content->keys) {
      const key k = rec.key.to_key();
      if (auto s = st_.reg.check_kind(k); !s) return ready(s);
      auto info = st_.reg.find(k);
      if (!info)
        return ready(status{errc::invalid_argument, "load_optimizer_states: key " + k.to_string() +
                                                        " in " + file +
                                                        " is not initialized in this store"});
      auto r = from_record(rec, info, upd, file);
      if (!r) return ready(r.error());
      per_shard[info->shard].push_back(std::move(*r));
    }
    if (content->optimizer) st_.install(upd, content->optimizer);
    auto call = std::make_shared<call_state>(shards_.size(), st_.counter);
    auto result = call->get_future();
    for (std::size_t i = 0; i < shards_.size(); ++i) {
      auto records =
          std::make_shared<std::vector<shard_core::state_record>>(std::move(per_shard[i]));
      deliver_fence(shards_[i], shard_fence{load_states_fence{std::move(records), upd, call}});
    }
    return result;
  }

  future<void> send_command(int head, const std::string&) override {
    return ready(status{errc::unsupported, "a " + type_ + " store has no servers to send command " +
                                               std::to_string(head) + " to"});
  }

  void shutdown() override {
    if (done_) return;
    done_ = true;
    st_.counter->wait_zero();
    // Actors first, and wait until they are gone: a shard that was never scheduled may only
    // now run its initialisation. The pool goes next (its threads may still be finishing
    // jobs, which reach the shards' cores), then the shards' cores, and the actor system last.
    std::vector<caf::actor> actors;
    for (auto& s : shards_) {
      caf::anon_send_exit(s.actor, caf::exit_reason::user_shutdown);
      actors.push_back(s.actor);
    }
    if (client_) caf::anon_send_exit(client_, caf::exit_reason::user_shutdown);
    {
      caf::scoped_actor self{*sys_};
      self->wait_for(actors);
      if (client_) self->wait_for(client_);
    }
    actors.clear();
    client_ = nullptr;
    if (reduction_) reduction_->shutdown();
    pool_.reset();
    shards_.clear();
    own_sys_.reset();
    own_cfg_.reset();
  }

  const caf::actor* client_actor() const noexcept override { return &client_; }

 private:
  using ops_list = boost::container::small_vector<op_ptr, 4>;

  // To the key's shard as a message, its tensors leased. Caller holds the registry lock.
  void send(op_ptr o) {
    o->acquire_leases();
    const auto shard = o->info->shard;
    deliver(shards_[shard], std::move(o), /*here=*/false);
  }

  // The call's ops, their tensors leased. Caller holds the registry lock (shared or
  // exclusive).
  future<void> make_ops(op_kind kind, group_list& groups, int priority,
                        const front_state::snapshot& snap, ops_list& ops) {
    auto call = std::make_shared<call_state>(groups.size(), st_.counter);
    auto result = call->get_future();
    for (std::size_t i = 0; i < groups.size(); ++i) {
      auto o = std::make_shared<op>();
      o->kind = kind;
      o->info = std::move(groups[i].info);
      o->priority = priority;
      o->values = std::move(groups[i].values);
      o->outs = std::move(groups[i].outs);
      o->upd = snap.upd;
      o->gc = snap.gc;
      o->gc_version = snap.gc_version;
      o->call = call;
      o->acquire_leases();
      ops.push_back(std::move(o));
    }
    return result;
  }

  std::string type_;
  options opts_;
  front_state& st_;
  const bool device_store_;
  bool done_ = false;  // shutdown ran (the front calls it once; the destructor again)
  std::unique_ptr<caf::actor_system_config> own_cfg_;
  std::unique_ptr<caf::actor_system> own_sys_;
  caf::actor_system* sys_ = nullptr;
  std::unique_ptr<thread_pool> pool_;
  std::unique_ptr<reduction_engine> reduction_;
  std::vector<std::size_t> placed_bytes_;  // per CUDA device, under the registry lock
  std::vector<shard_handle> shards_;
  caf::actor client_;
};

}  // namespace

std::shared_ptr<store_impl> make_local_store(std::string type, const options& opts,
                                             caf::actor_system* external) {
  auto st = std::make_unique<front_state>(or_cores(opts.num_shards));
  auto r = std::make_unique<local_router>(type, opts, external, *st);
  return make_store_front(std::move(type), std::move(st), std::move(r));
}

}  // namespace kvactor::detail
