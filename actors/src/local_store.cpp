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
#include <thread>

#include "caf_glue.hpp"
#include "key_registry.hpp"
#include "kvactor/thread_pool.hpp"
#include "optimizers.hpp"
#include "request.hpp"
#include "store_impl.hpp"

namespace kvactor::detail {

namespace {

std::size_t or_cores(std::size_t n) {
  return n ? n : std::max<std::size_t>(1, std::thread::hardware_concurrency());
}

future<void> failed(status s) { return future<void>::ready_with(std::move(s)); }

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
    shards_.reserve(opts_.num_shards);
    for (std::size_t i = 0; i < opts_.num_shards; ++i)
      shards_.push_back(spawn_shard(*sys_, pool_.get(), opts_.reducer_threads,
                                    opts_.parallel_threshold_bytes));
  }

  // The client actor holds the store weakly, so it is spawned once a shared_ptr exists.
  void start_client() { client_ = spawn_client(*sys_, weak_from_this()); }

  ~local_store() override { shutdown(); }

  future<void> submit(op_kind kind, const key_list& keys, const value_list& values,
                      const value_list& outs, int priority) override {
    const value_list& out_args = (kind == op_kind::pushpull && outs.empty()) ? values : outs;
    auto grouped = group_arguments(kind, keys, values, out_args);
    if (!grouped) return failed(grouped.error());
    auto& groups = *grouped;
    if (auto s = check_overlaps(kind, groups); !s) return failed(s);
    if (kind == op_kind::init || kind == op_kind::broadcast) return submit_new(kind, groups, priority);

    std::shared_ptr<const updater> upd;
    if (kind == op_kind::push || kind == op_kind::pushpull) upd = current_updater();
    std::shared_lock<std::shared_mutex> lk(reg_.mutex());
    if (stopped_) return failed(status{errc::shut_down, "the store has shut down"});
    for (auto& g : groups) {
      if (auto s = check_kind(g.k, groups.front().k); !s) return failed(s);
      auto info = reg_.find(g.k);
      if (!info)
        return failed(status{errc::not_initialized, std::string{to_string(kind)} + ": key " +
                                                        g.k.to_string() + " is not initialized"});
      for (const auto& v : g.values)
        if (auto s = check_tensor(kind, *info, v, "value"); !s) return failed(s);
      for (const auto& o : g.outs)
        if (auto s = check_tensor(kind, *info, o, "output"); !s) return failed(s);
      g.info = std::move(info);
    }
    return send_all(kind, groups, priority, std::move(upd));
  }

  void set_updater(std::shared_ptr<const updater> u) override {
    std::lock_guard<std::mutex> g(upd_mu_);
    updater_ = std::move(u);
  }

  future<void> set_optimizer(const optimizer_config& cfg) override {
    auto opt = make_optimizer(cfg);
    if (!opt) return failed(opt.error());
    set_updater(std::move(*opt));
    return failed(status{});
  }

  future<void> send_command(int head, const std::string&) override {
    return failed(status{errc::unsupported, "a " + type_ + " store has no servers to send command " +
                                                std::to_string(head) + " to"});
  }

  std::string type() const override { return type_; }
  int rank() const override { return 0; }
  int num_workers() const override { return 1; }
  future<void> barrier() override { return failed(status{}); }

  bool is_capable(std::string_view capability) const override {
    std::string c{capability};
    std::transform(c.begin(), c.end(), c.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (c == "optimizer") return true;
    throw error{errc::invalid_argument, "unknown capability \"" + std::string{capability} +
                                            "\" (known: optimizer)"};
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
    for (auto& s : shards_) caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
    if (client_) caf::anon_send_exit(client_, caf::exit_reason::user_shutdown);
    {
      caf::scoped_actor self{*sys_};
      self->wait_for(shards_);
      if (client_) self->wait_for(client_);
    }
    shards_.clear();
    client_ = nullptr;
    pool_.reset();
    own_sys_.reset();
    own_cfg_.reset();
  }

  const caf::actor* client_actor() const noexcept override { return &client_; }

 private:
  std::shared_ptr<const updater> current_updater() const {
    std::lock_guard<std::mutex> g(upd_mu_);
    return updater_;
  }

  status check_kind(const key& k, const key& first) const {
    if (k.is_int() != first.is_int())
      return status{errc::mixed_key_types, "keys " + first.to_string() + " and " + k.to_string() +
                                               " mix int and string keys in one call"};
    return reg_.check_kind(k);
  }

  future<void> submit_new(op_kind kind, group_list& groups, int priority) {
    // Registration and sending happen under the exclusive lock, so any later call that finds
    // these keys is sent after their init and reaches the shard behind it.
    std::unique_lock<std::shared_mutex> lk(reg_.mutex());
    if (stopped_) return failed(status{errc::shut_down, "the store has shut down"});
    for (const auto& g : groups) {
      if (auto s = check_kind(g.k, groups.front().k); !s) return failed(s);
      if (reg_.find(g.k))
        return failed(status{errc::already_initialized, std::string{to_string(kind)} +
                                                            ": key " + g.k.to_string() +
                                                            " is already initialized"});
      const tensor& v = g.values.front();
      if (auto s = check_init_value(g.k, v); !s) return failed(s);
      key_info probe;
      probe.user_key = g.k;
      probe.shape = v.shape();
      probe.dtype = v.dtype();
      for (const auto& o : g.outs)
        if (auto s = check_tensor(kind, probe, o, "output"); !s) return failed(s);
    }
    for (auto& g : groups) {
      reg_.set_kind(g.k);
      g.info = reg_.add(g.k, g.values.front().shape(), g.values.front().dtype());
    }
    return send_all(kind, groups, priority, nullptr);
  }

  // Caller holds the registry lock (shared or exclusive).
  future<void> send_all(op_kind kind, group_list& groups, int priority,
                        std::shared_ptr<const updater> upd) {
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
  std::vector<caf::actor> shards_;
  caf::actor client_;
  key_registry reg_;
  bool stopped_ = false;  // guarded by reg_.mutex()
  std::shared_ptr<op_counter> counter_ = std::make_shared<op_counter>();
  mutable std::mutex upd_mu_;
  std::shared_ptr<const updater> updater_;
};

}  // namespace

std::shared_ptr<store_impl> make_local_store(std::string type, const options& opts,
                                             caf::actor_system* external) {
  auto s = std::make_shared<local_store>(std::move(type), opts, external);
  s->start_client();
  return s;
}

}  // namespace kvactor::detail
