// A worker's store: validation as in the local store, then each key's parts go straight from
// the calling thread to the servers' connections (cluster_router.hpp), and replies complete
// the futures on the transport's I/O thread. The cluster itself (joining, barriers,
// commands, node loss) is the session's (cluster_session.hpp); this file is the store_impl
// glue between the facade and those two, plus the actor system of the embedding client.
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "../caf_glue.hpp"
#include "../key_registry.hpp"
#include "../multi_precision.hpp"
#include "../request.hpp"
#include "../store_impl.hpp"
#include "cluster_router.hpp"
#include "cluster_session.hpp"
#include "dist_op.hpp"
#include "kvactor/serialization/optimizer_config.hpp"
#include "kvactor/detail/compression.hpp"
#include "message_limits.hpp"
#include "node_common.hpp"
#include "nodes.hpp"
#include "part_plan.hpp"
namespace kvactor::detail {

namespace {

future<void> failed(status s) {
  return future<void>::ready_with(std::move(s));
}

class dist_store final : public store_impl, public std::enable_shared_from_this<dist_store> {
 public:
  dist_store(std::string type, const options& opts, cluster_config cfg)
      : type_(std::move(type)),
        opts_(opts),
        reg_(1),
        sync_(type_.find("async") == std::string::npos),
        max_payload_(max_payload_bytes(node_caps(cfg))),
        session_(std::move(cfg), counter_),
        router_(session_, max_payload_, opts_.parallel_threshold_bytes) {}

  ~dist_store() override { shutdown(); }

  // Joins the cluster; throws kvactor::error.
  void start() {
    // The transport's handlers and the pool's completions reach the session and the router
    // through weak pointers that share this store's lifetime.
    auto self = shared_from_this();
    router_.start(std::shared_ptr<cluster_router>(self, &router_), opts_.reducer_threads);
    std::weak_ptr<cluster_router> weak = std::shared_ptr<cluster_router>(self, &router_);
    net::handlers vh;
    vh.on_message = [weak](const net::connection_ptr& c, net::message&& m) {
      if (auto r = weak.lock()) r->on_server_message(c, std::move(m));
    };
    vh.payload_destination = [weak](const net::connection_ptr&,
                                    const net::message_head& h) -> void* {
      auto r = weak.lock();
      return r ? r->destination(h) : nullptr;
    };
    session_.join(std::shared_ptr<cluster_session>(self, &session_), std::move(vh), sync_);

    if (!opts_.worker_threads) opts_.worker_threads = 1;
    own_cfg_ = std::make_unique<caf::actor_system_config>();
    own_cfg_->set("scheduler.max-threads", std::size_t{1});
    own_cfg_->set("work-stealing.moderate-poll-attempts", std::size_t{0});
    add_to_config(*own_cfg_);
    own_sys_ = std::make_unique<caf::actor_system>(*own_cfg_);
    client_ = spawn_client(*own_sys_, weak_from_this());
  }

  // -------------------------------------------------------------- store_impl

  // The channels of resolved groups' keys, or shut_down.
  template <class Groups>
  result<std::vector<std::shared_ptr<key_channel>>> channels_of(const Groups& groups) {
    std::shared_lock<std::shared_mutex> lk(reg_.mutex());
    if (stopped_) return status{errc::shut_down, "the store has shut down"};
    std::vector<std::shared_ptr<key_channel>> chans;
    for (const auto& g : groups)
      chans.push_back(channels_.at(g.info->id));
    return chans;
  }

  future<void> submit(op_kind kind, const key_list& keys, const value_list& values,
                      const value_list& outs, int priority) override {
    const value_list& out_args = (kind == op_kind::pushpull && outs.empty()) ? values : outs;
    auto grouped = group_arguments(kind, keys, values, out_args);
    if (!grouped) return failed(grouped.error());
    auto& groups = *grouped;
    if (auto s = check_overlaps(kind, groups); !s) return failed(s);
    if (kind == op_kind::init || kind == op_kind::broadcast)
      return submit_new(kind, groups, priority);

    std::vector<std::shared_ptr<key_channel>> chans;
    {
      std::shared_lock<std::shared_mutex> lk(reg_.mutex());
      if (stopped_) return failed(status{errc::shut_down, "the store has shut down"});
      for (auto& g : groups) {
        if (auto s = resolve_group(kind, g, groups.front().k, reg_); !s) return failed(s);
        chans.push_back(channels_.at(g.info->id));
      }
    }
    compression::params gc;
    std::uint64_t gc_version = 0;
    if (kind == op_kind::push || kind == op_kind::pushpull) {
      std::lock_guard<std::mutex> g(gc_mu_);
      gc = gc_;
      gc_version = gc_version_;
    }
    for (const auto& g : groups)
      if (auto s = check_compressible(kind, gc, g); !s) return failed(s);
    auto [user, call] = begin_call(groups.size());
    for (std::size_t i = 0; i < groups.size(); ++i) {
      auto o = router_.make_op(kind, groups[i], priority, call);
      o->gc = gc;
      o->gc_version = gc_version;
      o->channel = chans[i].get();
      router_.issue(o, chans[i]);
    }
    return user;
  }

  future<void> submit_sparse(op_kind kind, const key_list& keys, const sparse_list& values,
                             int priority) override {
    auto grouped = group_sparse(kind, keys, values);
    if (!grouped) return failed(grouped.error());
    if (kind == op_kind::init) {
      std::vector<key> ks;
      std::vector<tensor> first;
      for (auto& g : *grouped) {
        if (g.values.size() != 1)
          return failed(status{errc::already_initialized,
                               "init: key " + g.k.to_string() + " is given several values"});
        ks.push_back(g.k);
        first.push_back(g.values.front().to_dense());
      }
      return submit(op_kind::init, key_list(ks), value_list(first), {}, priority);
    }
    auto& groups = *grouped;
    if (auto s = check_sparse_push(groups, reg_); !s) return failed(s);
    auto chans = channels_of(groups);
    if (!chans) return failed(chans.error());
    auto [user, call] = begin_call(groups.size());
    for (std::size_t i = 0; i < groups.size(); ++i)
      router_.issue(router_.make_rows_push(groups[i], priority, call), (*chans)[i]);
    return user;
  }

  future<void> row_sparse_pull(const key_list& keys, const value_list& outs,
                               const value_list& row_ids, int priority,
                               row_layout layout) override {
    const bool compact = layout == row_layout::compact;
    auto req = prepare_row_pull(keys, outs, row_ids, reg_, /*device_tensors=*/false, compact);
    if (!req) return failed(req.error());
    auto& groups = req->groups;
    auto& ids = req->ids;
    auto chans = channels_of(groups);
    if (!chans) return failed(chans.error());
    auto [user, call] = begin_call(groups.size());
    for (std::size_t i = 0; i < groups.size(); ++i) {
      if (!compact)
        for (auto& o : groups[i].outs)
          std::memset(o.data_unchecked(), 0, o.nbytes());  // rows not asked for
      auto o = router_.make_op(op_kind::row_pull, groups[i], priority, call);
      o->want = std::move(ids[i]);
      o->compact_rows = compact;
      router_.issue(o, (*chans)[i]);
    }
    return user;
  }

  void set_updater(std::shared_ptr<const updater>) override {
    throw error{errc::unsupported,
                "a dist store runs its optimizer on the servers: use set_optimizer (an updater "
                "is code and never crosses the wire)"};
  }

  future<void> set_optimizer(const optimizer_config& cfg) override {
    // The servers get the optimizer without multi_precision, then the multi-precision command,
    // as MXNet sends them.
    auto split = split_multi_precision(cfg);
    if (!split) return failed(split.error());
    auto bytes = encode(split->inner);
    auto f =
        session_.command_all(wire::command::controller, std::string(bytes.begin(), bytes.end()));
    if (!split->multi_precision) return f;
    return when_all({f, session_.command_all(wire::command::set_multi_precision, "1")});
  }

  future<void> set_compression(const std::string& type, double threshold) override {
    auto p = compression::parse(type, threshold);
    if (!p) return failed(p.error());
    std::ostringstream body;
    body << "type=" << compression::to_string(p->type) << ",threshold=" << p->threshold;
    auto f = session_.command_all(wire::command::set_gradient_compression, body.str());
    {
      std::lock_guard<std::mutex> g(gc_mu_);
      gc_ = *p;
      ++gc_version_;
    }
    return f;
  }

  future<void> save_states(const std::string& file, bool dump_optimizer) override {
    if (file.empty())
      return failed(status{errc::invalid_argument, "save_optimizer_states: empty file name"});
    return session_.command_all(wire::command::save_states,
                                std::string(dump_optimizer ? "1" : "0") + file);
  }

  future<void> load_states(const std::string& file) override {
    if (file.empty())
      return failed(status{errc::invalid_argument, "load_optimizer_states: empty file name"});
    return session_.command_all(wire::command::load_states, file);
  }

  future<void> send_command(int head, const std::string& body) override {
    if (!wire::mxnet_command(head))
      return failed(
          status{errc::invalid_argument,
                 "unknown server command " + std::to_string(head) + " (MXNet's are 0-5)"});
    return session_.command_all(static_cast<wire::command>(head), body);
  }

  std::string type() const override { return type_; }
  int rank() const override { return static_cast<int>(session_.rank()); }
  int num_workers() const override { return static_cast<int>(session_.num_workers()); }
  future<void> barrier() override { return session_.barrier(); }

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
    if (client_) {
      caf::anon_send_exit(client_, caf::exit_reason::user_shutdown);
      caf::scoped_actor self{*own_sys_};
      self->wait_for(client_);
      client_ = nullptr;
    }
    counter_->wait_zero();
    session_.leave();
    // Destroyed here, on the caller's thread: the last reference to this store may later drop
    // inside a transport handler, where the runtime must not be destroyed.
    session_.close();
    router_.stop();
    own_sys_.reset();
    own_cfg_.reset();
  }

  const caf::actor* client_actor() const noexcept override { return &client_; }
  key_info_ptr key_of(const key& k) const override { return reg_.find_locked(k); }

 private:
  // A user call of `parts` key ops: its future, and the count its ops complete.
  std::pair<future<void>, std::shared_ptr<dist_call>> begin_call(std::size_t parts) {
    auto user = std::make_shared<call_state>(1, counter_);
    auto f = user->get_future();
    return {std::move(f),
            std::make_shared<dist_call>(parts, [user](status s) { user->part_done(s); })};
  }

  future<void> submit_new(op_kind kind, group_list& groups, int priority) {
    std::vector<std::shared_ptr<key_channel>> chans;
    {
      std::unique_lock<std::shared_mutex> lk(reg_.mutex());
      if (stopped_) return failed(status{errc::shut_down, "the store has shut down"});
      for (const auto& g : groups) {
        auto probe = check_new_group(kind, g, groups.front().k, reg_);
        if (!probe) return failed(probe.error());
        // Every part of the key must fit the messages that carry it.
        if (auto s = check_key_for_wire(g.k); !s) return failed(s);
        if (auto s = check_rows_fit(*probe, max_payload_); !s) return failed(s);
      }
      for (auto& g : groups) {
        reg_.set_kind(g.k);
        g.info = reg_.add(g.k, g.values.front().shape(), g.values.front().dtype());
        auto ch = std::make_shared<key_channel>();
        channels_.emplace(g.info->id, ch);
        chans.push_back(ch);
      }
    }
    // Only rank 0's values are stored; then every worker passes a barrier, so that nobody
    // pushes or pulls before the values are there. Broadcast then pulls.
    auto user = std::make_shared<call_state>(1, counter_);
    auto result = user->get_future();
    std::weak_ptr<dist_store> weak = weak_from_this();
    std::vector<dist_op_ptr> pulls;
    if (kind == op_kind::broadcast) {
      for (std::size_t i = 0; i < groups.size(); ++i) {
        key_group pg{groups[i].k, {}, std::move(groups[i].outs), groups[i].info};
        pulls.push_back(router_.make_op(op_kind::pull, pg, priority, nullptr));
      }
    }
    auto after_barrier = [weak, user, pulls, chans](const status& s) mutable {
      auto self = weak.lock();
      if (!s.is_ok() || pulls.empty() || !self) return user->part_done(s);
      auto call =
          std::make_shared<dist_call>(pulls.size(), [user](status r) { user->part_done(r); });
      for (std::size_t i = 0; i < pulls.size(); ++i) {
        pulls[i]->call = call;
        self->router_.issue(pulls[i], chans[i]);
      }
    };
    auto after_init = [weak, user, after_barrier](status s) mutable {
      auto self = weak.lock();
      if (!s.is_ok() || !self)
        return user->part_done(s.is_ok() ? status{errc::shut_down, "store gone"} : s);
      self->session_.barrier(after_barrier);
    };
    const bool sends = session_.rank() == 0;
    auto call = std::make_shared<dist_call>(sends ? groups.size() : 0, after_init);
    if (sends) {
      for (std::size_t i = 0; i < groups.size(); ++i) {
        key_group ig{groups[i].k, std::move(groups[i].values), {}, groups[i].info};
        router_.issue(router_.make_op(op_kind::init, ig, priority, call), chans[i]);
      }
    }
    return result;
  }

  std::string type_;
  options opts_;
  key_registry reg_;
  bool sync_;
  std::uint64_t max_payload_;
  bool stopped_ = false;  // guarded by reg_.mutex()
  std::unordered_map<std::int64_t, std::shared_ptr<key_channel>> channels_;  // ditto
  std::shared_ptr<op_counter> counter_ = std::make_shared<op_counter>();
  cluster_session session_;
  cluster_router router_;

  std::unique_ptr<caf::actor_system_config> own_cfg_;
  std::unique_ptr<caf::actor_system> own_sys_;
  caf::actor client_;

  // Gradient compression's setting (the router keeps each key's residual).
  std::mutex gc_mu_;
  compression::params gc_;
  std::uint64_t gc_version_ = 0;
};

}  // namespace

std::shared_ptr<store_impl> make_dist_store(std::string type, const options& opts,
                                            const cluster_config& cfg) {
  auto s = std::make_shared<dist_store>(std::move(type), opts, cfg);
  s->start();
  return s;
}

}  // namespace kvactor::detail
