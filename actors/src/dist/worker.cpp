// A worker's store: the store front (store_front.hpp) over this router. Each key's parts go
// straight from the calling thread to the servers' connections (cluster_router.hpp), and
// replies complete the futures on the transport's I/O thread. The cluster itself (joining,
// barriers, commands, node loss) is the session's (cluster_session.hpp); this file is the
// router glue between the front and those two, plus the actor system of the embedding client.
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "../caf_glue.hpp"
#include "../device_router.hpp"
#include "../key_registry.hpp"
#include "../request.hpp"
#include "../store_front.hpp"
#include "cluster_router.hpp"
#include "cluster_session.hpp"
#include "dist_op.hpp"
#include "kvactor/detail/compression.hpp"
#include "kvactor/detail/recycling_allocator.hpp"
#include "kvactor/serialization/optimizer_config.hpp"
#include "message_limits.hpp"
#include "node_common.hpp"
#include "nodes.hpp"
#include "part_plan.hpp"
namespace kvactor::detail {

namespace {

// The cluster router (store_front.hpp): a key's channel keeps its ops in issue order, and
// ops are issued outside the registry lock (a send may complete at once, and a completion
// may call back into the store).
class worker_router final : public router {
 public:
  worker_router(const std::string& type, const options& opts, cluster_config cfg, front_state& st)
      : router(properties{/*device_tensors=*/false, /*compress_single=*/true}),
        opts_(opts),
        st_(st),
        sync_(type.find("async") == std::string::npos),
        max_payload_(max_payload_bytes(node_caps(cfg))),
        session_(std::move(cfg), st.counter),
        router_(session_, max_payload_, opts_.parallel_threshold_bytes,
                fusion_of(opts_, session_.config())) {}

  // Joins the cluster; throws kvactor::error.
  void start(std::weak_ptr<store_impl> front) override {
    // The transport's handlers and the pool's completions reach the session and the router
    // through weak pointers that share the store's lifetime.
    front_ = front;
    auto self = front.lock();
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
    router_.joined();

    if (!opts_.worker_threads) opts_.worker_threads = 1;
    own_cfg_ = std::make_unique<caf::actor_system_config>();
    own_cfg_->set("scheduler.max-threads", std::size_t{1});
    own_cfg_->set("work-stealing.moderate-poll-attempts", std::size_t{0});
    add_to_config(*own_cfg_);
    own_sys_ = std::make_unique<caf::actor_system>(*own_cfg_);
    client_ = spawn_client(*own_sys_, std::move(front));
  }

  // Every part of a new key must fit the messages that carry it.
  status check_new(const key_group& g, const key_info& probe) const override {
    if (auto s = check_key_for_wire(g.k); !s) return s;
    return check_rows_fit(probe, max_payload_);
  }

  future<void> route(op_kind kind, group_list& groups, int priority,
                     const front_state::snapshot& snap,
                     std::shared_lock<std::shared_mutex>& lk) override {
    auto chans = channels_of(groups);
    lk.unlock();
    auto [user, call] = begin_call(groups.size());
    for (std::size_t i = 0; i < groups.size(); ++i) {
      auto o = router_.make_op(kind, groups[i], priority, call);
      o->gc = snap.gc;
      o->gc_version = snap.gc_version;
      o->channel = chans[i].get();
      router_.issue(o, chans[i]);
    }
    router_.end_call();
    return user;
  }

  future<void> route_sparse(std::vector<sparse_group>& groups, int priority,
                            std::shared_ptr<const updater>,
                            std::shared_lock<std::shared_mutex>& lk) override {
    auto chans = channels_of(groups);
    lk.unlock();
    auto [user, call] = begin_call(groups.size());
    for (std::size_t i = 0; i < groups.size(); ++i)
      router_.issue(router_.make_rows_push(groups[i], priority, call), chans[i]);
    router_.end_call();
    return user;
  }

  future<void> route_rows(row_pull_request& req, int priority, bool compact,
                          std::shared_lock<std::shared_mutex>& lk) override {
    auto& groups = req.groups;
    auto chans = channels_of(groups);
    lk.unlock();
    auto [user, call] = begin_call(groups.size());
    for (std::size_t i = 0; i < groups.size(); ++i) {
      if (!compact)
        for (auto& o : groups[i].outs)
          std::memset(o.data_unchecked(), 0, o.nbytes());  // rows not asked for
      auto o = router_.make_op(op_kind::row_pull, groups[i], priority, call);
      o->want = std::move(req.ids[i]);
      o->compact_rows = compact;
      router_.issue(o, chans[i]);
    }
    router_.end_call();
    return user;
  }

  future<void> route_new(op_kind kind, group_list& groups, int priority,
                         std::unique_lock<std::shared_mutex>& lk) override {
    std::vector<std::shared_ptr<key_channel>> chans;
    for (auto& g : groups) {
      auto ch = std::make_shared<key_channel>();
      channels_.emplace(g.info->id, ch);
      chans.push_back(ch);
    }
    lk.unlock();
    // Only rank 0's values are stored; then every worker passes a barrier, so that nobody
    // pushes or pulls before the values are there. Broadcast then pulls.
    auto user = std::make_shared<call_state>(1, st_.counter);
    auto result = user->get_future();
    std::weak_ptr<store_impl> weak = front_;
    std::vector<dist_op_ptr> pulls;
    if (kind == op_kind::broadcast) {
      for (std::size_t i = 0; i < groups.size(); ++i) {
        key_group pg{groups[i].k, {}, std::move(groups[i].outs), groups[i].info};
        pulls.push_back(router_.make_op(op_kind::pull, pg, priority, nullptr));
      }
    }
    auto after_barrier = [this, weak, user, pulls, chans](const status& s) mutable {
      auto alive = weak.lock();
      if (!s.is_ok() || pulls.empty() || !alive) return user->part_done(s);
      auto call = std::make_shared<dist_call>(pulls.size(), user);
      for (std::size_t i = 0; i < pulls.size(); ++i) {
        pulls[i]->call = call;
        router_.issue(pulls[i], chans[i]);
      }
      router_.end_call();
    };
    auto after_init = [this, weak, user, after_barrier](const status& s) mutable {
      auto alive = weak.lock();
      if (!s.is_ok() || !alive)
        return user->part_done(s.is_ok() ? status{errc::shut_down, "store gone"} : s);
      router_.flush();
      session_.barrier(after_barrier);
    };
    const bool sends = session_.rank() == 0;
    auto call = std::make_shared<dist_call>(sends ? groups.size() : 0, after_init);
    if (sends) {
      for (std::size_t i = 0; i < groups.size(); ++i) {
        key_group ig{groups[i].k, std::move(groups[i].values), {}, groups[i].info};
        router_.issue(router_.make_op(op_kind::init, ig, priority, call), chans[i]);
      }
      router_.end_call();
    }
    return result;
  }

  void check_updater() const override {
    throw error{errc::unsupported,
                "a dist store runs its optimizer on the servers: use set_optimizer (an updater "
                "is code and never crosses the wire)"};
  }

  future<void> set_optimizer(const optimizer_config&, split_optimizer& split) override {
    // The servers get the optimizer without multi_precision, then the multi-precision command,
    // as MXNet sends them.
    auto bytes = encode(split.inner);
    router_.flush();
    auto f =
        session_.command_all(wire::command::controller, std::string(bytes.begin(), bytes.end()));
    if (!split.multi_precision) return f;
    return when_all({f, session_.command_all(wire::command::set_multi_precision, "1")});
  }

  // The setting goes to the servers; the front keeps it for the pushes (the router keeps
  // each key's residual).
  future<void> set_compression(const compression::params& p) override {
    std::ostringstream body;
    body << "type=" << compression::to_string(p.type) << ",threshold=" << p.threshold;
    router_.flush();
    return session_.command_all(wire::command::set_gradient_compression, body.str());
  }

  future<void> save_states(const std::string& file, bool dump_optimizer) override {
    if (file.empty())
      return ready(status{errc::invalid_argument, "save_optimizer_states: empty file name"});
    router_.flush();
    return session_.command_all(wire::command::save_states,
                                std::string(dump_optimizer ? "1" : "0") + file);
  }

  future<void> load_states(const std::string& file) override {
    if (file.empty())
      return ready(status{errc::invalid_argument, "load_optimizer_states: empty file name"});
    router_.flush();
    return session_.command_all(wire::command::load_states, file);
  }

  future<void> send_command(int head, const std::string& body) override {
    if (!wire::mxnet_command(head))
      return ready(status{errc::invalid_argument,
                          "unknown server command " + std::to_string(head) + " (MXNet's are 0-5)"});
    router_.flush();
    return session_.command_all(static_cast<wire::command>(head), body);
  }

  int rank() const override { return static_cast<int>(session_.rank()); }
  int num_workers() const override { return static_cast<int>(session_.num_workers()); }
  future<void> barrier() override {
    router_.flush();
    return session_.barrier();
  }

  void shutdown() override {
    if (client_) {
      caf::anon_send_exit(client_, caf::exit_reason::user_shutdown);
      caf::scoped_actor self{*own_sys_};
      self->wait_for(client_);
      client_ = nullptr;
    }
    router_.flush();
    st_.counter->wait_zero();
    session_.leave();
    // Destroyed here, on the caller's thread: the last reference to this store may later drop
    // inside a transport handler, where the runtime must not be destroyed.
    session_.close();
    router_.stop();
    own_sys_.reset();
    own_cfg_.reset();
  }

  const caf::actor* client_actor() const noexcept override { return &client_; }

 private:
  // The channels of resolved groups' keys (the caller holds the registry lock).
  // Inline for calls of a few keys: no allocation per call.
  using channel_list = boost::container::small_vector<std::shared_ptr<key_channel>, 4>;
  template <class Groups>
  channel_list channels_of(const Groups& groups) const {
    channel_list chans;
    chans.reserve(groups.size());
    for (const auto& g : groups)
      chans.push_back(channels_.at(g.info->id));
    return chans;
  }

  // The options' fusion settings, unless the environment sets them.
  static fusion_settings fusion_of(const options& o, const cluster_config& c) {
    fusion_settings f;
    f.key_bytes = c.fusion_key_bytes.value_or(o.fusion_key_bytes);
    f.budget = std::max<std::uint64_t>(1, c.fusion_bytes.value_or(o.fusion_bytes));
    f.window = c.fusion_window.value_or(o.fusion_window);
    // Room for the message head and a key name's worth of slack.
    f.max_meta_bytes = node_caps(c).max_meta_bytes - 8 * 1024;
    return f;
  }

  // A user call of `parts` key ops: its future, and the count its ops complete.
  std::pair<future<void>, std::shared_ptr<dist_call>> begin_call(std::size_t parts) {
    // Made here, finished by the I/O thread: recycled blocks (recycling_allocator.hpp).
    auto user = std::allocate_shared<call_state>(recycling_allocator<call_state>{}, 1, st_.counter);
    auto f = user->get_future();
    return {std::move(f), std::allocate_shared<dist_call>(recycling_allocator<dist_call>{}, parts,
                                                          std::move(user))};
  }

  options opts_;
  front_state& st_;
  bool sync_;
  std::uint64_t max_payload_;
  std::weak_ptr<store_impl> front_;
  std::unordered_map<std::int64_t, std::shared_ptr<key_channel>> channels_;  // under reg's lock
  cluster_session session_;
  cluster_router router_;

  std::unique_ptr<caf::actor_system_config> own_cfg_;
  std::unique_ptr<caf::actor_system> own_sys_;
  caf::actor client_;
};

}  // namespace

std::shared_ptr<store_impl> make_dist_store(std::string type, const options& opts,
                                            const cluster_config& cfg, bool device_values) {
  auto st = std::make_unique<front_state>(1);
  std::unique_ptr<router> r = std::make_unique<worker_router>(type, opts, cfg, *st);
  // A worker of a *_device store sums its devices' values on a device, then pushes once.
  if (device_values) r = with_device_values(*st, std::move(r));
  return make_store_front(std::move(type), std::move(st), std::move(r));
}

}  // namespace kvactor::detail
