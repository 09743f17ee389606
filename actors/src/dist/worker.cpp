// A worker's store: validation as in the local store, then each key's parts go straight from
// the calling thread to the servers' connections (values of several devices are summed
// first, big sums on the reducer pool), and replies complete the futures on the transport's
// I/O thread. A key's operations reach the wire in issue order (a per-key channel holds an
// op back while an earlier op of the same key still waits for its sum). The control plane
// (registration, barriers, commands, failures) talks to the scheduler and servers directly.
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "../caf_glue.hpp"
#include "../key_registry.hpp"
#include "../optimizers.hpp"
#include "../request.hpp"
#include "../store_impl.hpp"
#include "dist_op.hpp"
#include "kvactor/compression.hpp"
#include "kvactor/kernels.hpp"
#include "kvactor/thread_pool.hpp"
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
        cfg_(std::move(cfg)),
        reg_(1),
        sync_(type_.find("async") == std::string::npos),
        caps_(node_caps(cfg_)),
        max_payload_(max_payload_bytes(caps_)) {}

  ~dist_store() override { shutdown(); }

  // Joins the cluster; throws kvactor::error.
  void start() {
    rt_ = std::make_unique<net::runtime>(1);
    pool_ = std::make_unique<thread_pool>(opts_.reducer_threads);
    const auto started = std::chrono::steady_clock::now();
    const auto deadline = started + cfg_.connect_timeout;
    std::weak_ptr<dist_store> weak = weak_from_this();

    net::handlers sh;
    sh.on_message = [weak](const net::connection_ptr& c, net::message&& m) {
      if (auto self = weak.lock()) self->on_scheduler_message(c, std::move(m));
    };
    sh.on_close = [weak](const net::connection_ptr&, const status& why) {
      if (auto self = weak.lock())
        self->on_connection_lost(lost_status("the scheduler", close_cause(why)));
    };
    const std::string sched_at = cfg_.root_host + ":" + std::to_string(cfg_.root_port);
    auto sched = connect_sync(cfg_.root_host, cfg_.root_port, make_identity(cfg_, "worker", -1), sh,
                              started, "the scheduler at " + sched_at);
    if (!sched)
      throw error{sched.error().code(), "cannot reach the scheduler at " + sched_at +
                                            " (DMLC_PS_ROOT_URI:DMLC_PS_ROOT_PORT) within " +
                                            duration_text(cfg_.connect_timeout) + ": " +
                                            sched.error().message()};
    scheduler_ = *sched;
    wire::register_meta reg;
    reg.role = "worker";
    reg.rank_hint = cfg_.rank_hint;
    send_control(scheduler_, wire::msg::register_node, 0, wire::encode(reg));
    auto table_f = table_.get_future();
    // The scheduler gives up at about the same time and says which nodes are missing: a
    // moment's grace lets its verdict, rather than our bare timeout, reach the user.
    if (!wait_reporting(
            table_f, started, cfg_.connect_timeout, "worker",
            "the other nodes to join (connected to the scheduler at " + sched_at + ")") &&
        table_f.wait_for(std::chrono::seconds(2)) != std::future_status::ready)
      throw error{errc::timeout, "the cluster did not assemble within " +
                                     duration_text(cfg_.connect_timeout) + ": the scheduler at " +
                                     sched_at +
                                     " sent no node table (its log says which nodes "
                                     "are missing)"};
    auto table = table_f.get();
    if (!table) throw error{table.error()};
    rank_ = table->rank;
    num_workers_ = table->num_workers;
    num_servers_ = table->num_servers;

    net::handlers vh;
    vh.on_message = [weak](const net::connection_ptr& c, net::message&& m) {
      if (auto self = weak.lock()) self->on_server_message(c, std::move(m));
    };
    auto server_lost = [weak](std::uint32_t s) {
      return [weak, s](const net::connection_ptr& c, const status& why) {
        if (auto self = weak.lock())
          self->on_connection_lost(lost_status(
              "server " + std::to_string(s) + " (" + c->remote_address() + ")", close_cause(why)));
      };
    };
    vh.payload_destination = [weak](const net::connection_ptr&,
                                    const net::message_head& h) -> void* {
      auto self = weak.lock();
      return self ? self->destination(h) : nullptr;
    };
    servers_.resize(num_servers_);
    std::vector<std::future<result<net::connection_ptr>>> pending;
    for (std::uint32_t s = 0; s < num_servers_; ++s) {
      auto p = std::make_shared<std::promise<result<net::connection_ptr>>>();
      pending.push_back(p->get_future());
      vh.on_close = server_lost(s);
      rt_->connect(table->servers[s].host, table->servers[s].port,
                   make_identity(cfg_, "worker", rank_), node_caps(cfg_), vh, deadline,
                   [p](result<net::connection_ptr> r) { p->set_value(std::move(r)); });
    }
    for (std::uint32_t s = 0; s < num_servers_; ++s) {
      wait_reporting(pending[s], started, cfg_.connect_timeout, "worker",
                     "server " + std::to_string(s) + " at " + table->servers[s].host + ":" +
                         std::to_string(table->servers[s].port));
      auto r = pending[s].get();  // the transport answers by the deadline
      if (!r)
        throw error{r.error().code(),
                    "cannot reach server " + std::to_string(s) + " at " + table->servers[s].host +
                        ":" + std::to_string(table->servers[s].port) + ": " + r.error().message()};
      servers_[s] = *r;
    }
    // The servers take requests only once this connection proved the rank the scheduler gave.
    if (auto bound = command_all(wire::command::bind_rank, table->rank_key).get_status(); !bound)
      throw error{bound.code(), "the servers did not accept this worker's rank " +
                                    std::to_string(rank_) + ": " + bound.message()};
    if (rank_ == 0) {
      auto f = command_all(wire::command::sync_mode, sync_ ? "1" : "0");
      f.get();
    }
    barrier().get();

    if (!opts_.worker_threads) opts_.worker_threads = 1;
    own_cfg_ = std::make_unique<caf::actor_system_config>();
    own_cfg_->set("scheduler.max-threads", std::size_t{1});
    own_cfg_->set("work-stealing.moderate-poll-attempts", std::size_t{0});
    add_to_config(*own_cfg_);
    own_sys_ = std::make_unique<caf::actor_system>(*own_cfg_);
    client_ = spawn_client(*own_sys_, weak_from_this());
    joined_ = true;
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
    auto user = begin_call();
    auto call = std::make_shared<dist_call>(groups.size(), [user](status s) { user->complete(s); });
    for (std::size_t i = 0; i < groups.size(); ++i) {
      auto o = make_op(kind, groups[i], priority, call);
      o->gc = gc;
      o->gc_version = gc_version;
      o->channel = chans[i].get();
      issue(o, chans[i]);
    }
    return user->fut;
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
    auto user = begin_call();
    auto call = std::make_shared<dist_call>(groups.size(), [user](status s) { user->complete(s); });
    for (std::size_t i = 0; i < groups.size(); ++i) {
      auto& g = groups[i];
      // The devices' rows merged here, so one push per worker carries each row once.
      std::vector<std::int64_t> ids;
      std::vector<tensor> parts;
      for (const auto& v : g.values) {
        const auto* p = static_cast<const std::int64_t*>(v.host_indices().data_unchecked());
        ids.insert(ids.end(), p, p + v.num_rows());
        parts.push_back(v.data());
      }
      std::vector<std::int64_t> dims = g.info->shape.dims();
      dims[0] = static_cast<std::int64_t>(ids.size());
      tensor all = tensor::empty(shape{dims}, g.info->dtype);
      std::size_t at = 0;
      for (const auto& d : parts) {
        std::memcpy(static_cast<char*>(all.data_unchecked()) + at, d.data_unchecked(), d.nbytes());
        at += d.nbytes();
      }
      auto merged = row_sparse_tensor::from_rows(ids, all, g.info->shape);
      auto o = std::make_shared<dist_op>();
      o->kind = op_kind::push;
      o->info = g.info;
      o->priority = priority;
      o->call = call;
      o->parts = plan_parts(*o->info, num_servers_, cfg_.big_array_bound, max_payload_);
      const auto* mp = static_cast<const std::int64_t*>(merged.host_indices().data_unchecked());
      o->sparse_ids.assign(mp, mp + merged.num_rows());
      o->sparse_rows = merged.data();
      issue(o, (*chans)[i]);
    }
    return user->fut;
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
    auto user = begin_call();
    auto call = std::make_shared<dist_call>(groups.size(), [user](status s) { user->complete(s); });
    for (std::size_t i = 0; i < groups.size(); ++i) {
      if (!compact)
        for (auto& o : groups[i].outs)
          std::memset(o.data_unchecked(), 0, o.nbytes());  // rows not asked for
      auto o = make_op(op_kind::row_pull, groups[i], priority, call);
      o->want = std::move(ids[i]);
      o->compact_rows = compact;
      issue(o, (*chans)[i]);
    }
    return user->fut;
  }

  void set_updater(std::shared_ptr<const updater>) override {
    throw error{errc::unsupported,
                "a dist store runs its optimizer on the servers: use set_optimizer (an updater "
                "is code and never crosses the wire)"};
  }

  future<void> set_optimizer(const optimizer_config& cfg) override {
    // The servers get the optimizer without multi_precision, then the multi-precision command,
    // as MXNet sends them.
    optimizer_config inner = cfg;
    const auto mp = inner.params.find("multi_precision");
    const bool multi = mp != inner.params.end() && mp->second != 0;
    if (mp != inner.params.end()) inner.params.erase(mp);
    auto opt = make_optimizer(inner);
    if (!opt) return failed(opt.error());
    auto bytes = encode(inner);
    auto f = command_all(wire::command::controller, std::string(bytes.begin(), bytes.end()));
    if (!multi) return f;
    return when_all({f, command_all(wire::command::set_multi_precision, "1")});
  }

  future<void> set_compression(const std::string& type, double threshold) override {
    auto p = compression::parse(type, threshold);
    if (!p) return failed(p.error());
    std::ostringstream body;
    body << "type=" << compression::to_string(p->type) << ",threshold=" << p->threshold;
    auto f = command_all(wire::command::set_gradient_compression, body.str());
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
    return command_all(wire::command::save_states, std::string(dump_optimizer ? "1" : "0") + file);
  }

  future<void> load_states(const std::string& file) override {
    if (file.empty())
      return failed(status{errc::invalid_argument, "load_optimizer_states: empty file name"});
    return command_all(wire::command::load_states, file);
  }

  future<void> send_command(int head, const std::string& body) override {
    if (head < 0 || head > static_cast<int>(wire::command::set_profiler_params))
      return failed(
          status{errc::invalid_argument,
                 "unknown server command " + std::to_string(head) + " (MXNet's are 0-5)"});
    return command_all(static_cast<wire::command>(head), body);
  }

  std::string type() const override { return type_; }
  int rank() const override { return static_cast<int>(rank_); }
  int num_workers() const override { return static_cast<int>(num_workers_); }

  future<void> barrier() override {
    auto user = begin_call();
    control(
        [this](std::uint64_t id) {
          send_control(scheduler_, wire::msg::barrier, id, wire::encode(wire::barrier_meta{id}), 0,
                       refused(id));
        },
        [user](const status& s) { user->complete(s); });
    return user->fut;
  }

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
    // Only a store that joined takes part in the orderly goodbye: one whose start() threw is
    // being destroyed, so no handler could fail a barrier the scheduler will never answer.
    if (scheduler_ && joined_ && !broken()) {
      // This worker pushes no more: the servers fail every dist_sync round still waiting for
      // it (naming it), so a worker that waits for such a round reaches this point too.
      command_all(wire::command::worker_done, "").wait_for(std::chrono::seconds(10));
      // Everyone finishes their work; then rank 0 stops the servers and each worker tells the
      // scheduler it is done. Failures here mean a peer is gone: nothing to wait for.
      auto b = barrier();
      b.wait();
      // From here on servers close as they stop: that is no longer a failure.
      closing_ = true;
      if (b.get_status().is_ok() && rank_ == 0) {
        auto stop = command_all(wire::command::stop_server, "");
        stop.wait_for(std::chrono::seconds(10));
      }
      auto sent = std::make_shared<std::promise<void>>();
      auto sent_f = sent->get_future();
      send_control(scheduler_, wire::msg::node_done, 0,
                   wire::encode(wire::node_done_meta{"worker", rank_}), 0,
                   [sent](const status&) { sent->set_value(); });
      sent_f.wait_for(std::chrono::seconds(5));
    } else if (scheduler_) {
      // Leaving broken: say why, so that the scheduler tells the others the cause ("it
      // stopped: lost server 0 ...") rather than only that this worker left.
      status why;
      {
        std::lock_guard<std::mutex> g(pending_mu_);
        why = broken_status_;
      }
      if (!why.is_ok()) scheduler_->close(status{errc::peer_lost, "it stopped: " + why.message()});
    }
    closing_ = true;
    // Destroyed here, on the caller's thread: the last reference to this store may later drop
    // inside a transport handler, where the runtime must not be destroyed.
    rt_.reset();
    pool_.reset();
    own_sys_.reset();
    own_cfg_.reset();
  }

  const caf::actor* client_actor() const noexcept override { return &client_; }
  key_info_ptr key_of(const key& k) const override { return reg_.find_locked(k); }

 private:
  struct user_call {
    promise<void> p;
    future<void> fut;
    std::shared_ptr<op_counter> counter;
    std::atomic<bool> done{false};
    void complete(const status& s) {
      if (done.exchange(true)) return;
      p.set_status(s);
      counter->done();
    }
  };

  std::shared_ptr<user_call> begin_call() {
    auto u = std::make_shared<user_call>();
    u->fut = u->p.get_future();
    u->counter = counter_;
    counter_->add();
    return u;
  }

  dist_op_ptr make_op(op_kind kind, key_group& g, int priority, std::shared_ptr<dist_call> call) {
    auto o = std::make_shared<dist_op>();
    o->kind = kind;
    o->info = g.info;
    o->priority = priority;
    o->values = std::move(g.values);
    o->outs = std::move(g.outs);
    o->call = std::move(call);
    o->parts = plan_parts(*o->info, num_servers_, cfg_.big_array_bound, max_payload_);
    o->lease();
    return o;
  }

  // Sums several devices' values (big sums on the pool), then sends in key order.
  void issue(const dist_op_ptr& o, const std::shared_ptr<key_channel>& ch) {
    const bool sums = !o->values.empty() && o->values.size() > 1;
    if (!o->values.empty() && !sums) o->source = o->values.front();
    bool async_sum = false;
    if (sums) {
      try {
        o->source = tensor::empty(o->info->shape, o->info->dtype);
      } catch (const std::exception& e) {
        o->parts_left = 1;
        o->part_done(
            status{errc::internal, std::string{"no memory to sum the devices: "} + e.what()});
        return;
      }
      async_sum = (o->values.size() + 1) * o->info->nbytes() >= opts_.parallel_threshold_bytes;
      if (!async_sum) sum_into(*o, 0, o->info->numel());
    }
    {
      std::lock_guard<std::mutex> g(ch->mu);
      o->ready = !async_sum;
      if (ch->waiting.empty() && o->ready) {
        send(o);
        return;
      }
      ch->waiting.push_back(o);
    }
    if (async_sum) {
      const std::size_t n = o->info->numel();
      const std::size_t parts = std::max<std::size_t>(1, pool_->size() * 2);
      std::weak_ptr<dist_store> weak = weak_from_this();
      pool_->submit(
          parts,
          [o, n, parts](std::size_t i) {
            std::size_t b, e;
            split_range(n, parts, i, b, e);
            sum_into(*o, b, e);
          },
          [weak, o, ch] {
            std::lock_guard<std::mutex> g(ch->mu);
            o->ready = true;
            auto self = weak.lock();
            while (!ch->waiting.empty() && ch->waiting.front()->ready) {
              auto next = std::move(ch->waiting.front());
              ch->waiting.pop_front();
              if (self)
                self->send(next);
              else
                next->parts_left = 0;  // the store is gone; the op's destructor fails it
            }
          },
          o->priority);
    }
  }

  static void sum_into(dist_op& o, std::size_t b, std::size_t e) {
    const void* srcs[64];
    std::vector<const void*> many;
    const void** p = srcs;
    if (o.values.size() > 64) {
      many.resize(o.values.size());
      p = many.data();
    }
    for (std::size_t j = 0; j < o.values.size(); ++j)
      p[j] = o.values[j].data_unchecked();
    kernels::sum(o.info->dtype, o.source.data_unchecked(), p, o.values.size(), b, e);
  }

  // Registers part k of o as pending under a fresh id; on a broken cluster fails the part
  // instead (nullopt).
  std::optional<std::uint64_t> track(const dist_op_ptr& o, std::uint32_t k) {
    status broken;
    {
      std::lock_guard<std::mutex> g(pending_mu_);
      if (broken_status_.is_ok()) {
        const std::uint64_t id = next_id_++;
        pending_.emplace(id, pending_part{o, k});
        return id;
      }
      broken = broken_status_;
    }
    o->part_done(broken);
    return std::nullopt;
  }

  // A part's message without its payload: type, id, stream, priority and metadata.
  static net::outgoing part_message(const dist_op& o, const part_plan& pp, std::uint64_t id,
                                    std::uint64_t rows) {
    net::outgoing m;
    m.type = static_cast<std::uint8_t>(o.wire_type());
    m.id = id;
    m.stream = pp.stream;
    m.priority = o.priority;
    wire::data_meta meta;
    meta.key = wire::wire_key::from(o.info->user_key);
    meta.part = pp.index;
    meta.num_parts = pp.of;
    meta.numel = pp.count;
    meta.dtype = static_cast<std::uint8_t>(o.info->dtype);
    meta.row = row_size(*o.info);
    meta.rows = rows;
    m.meta = wire::encode(meta);
    return m;
  }

  // Row-sparse requests: each part gets the rows of it the op names (ids relative to the
  // part, then for pushes the rows). Every part gets a push, empty or not, since a dist_sync
  // round waits for one push per worker; pulls skip parts they want nothing from.
  void send_rows(const dist_op_ptr& o) {
    const std::uint64_t row = row_size(*o->info);
    const std::size_t esz = size_of(o->info->dtype);
    const bool push = o->kind == op_kind::push;
    std::vector<std::int64_t> ids = o->sparse_ids;
    if (!push) {
      for (const auto& w : o->want)
        ids.insert(ids.end(), w.begin(), w.end());
      std::sort(ids.begin(), ids.end());
      ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    }
    o->part_ids.assign(o->parts.size(), {});
    o->payloads.assign(o->parts.size(), nullptr);
    std::vector<std::uint32_t> sending;
    for (std::uint32_t k = 0; k < o->parts.size(); ++k) {
      const auto& pp = o->parts[k];
      auto lo = std::lower_bound(ids.begin(), ids.end(), static_cast<std::int64_t>(pp.row_begin));
      auto hi = std::lower_bound(lo, ids.end(), static_cast<std::int64_t>(pp.row_end));
      o->part_ids[k].assign(lo, hi);
      if (push || !o->part_ids[k].empty()) sending.push_back(k);
    }
    if (sending.empty()) {  // a pull of no rows at all
      o->parts_left = 1;
      o->part_done(status{});
      return;
    }
    o->parts_left = static_cast<std::uint32_t>(sending.size());
    for (std::uint32_t k : sending) {
      const auto& pp = o->parts[k];
      const auto& pid = o->part_ids[k];
      const std::size_t ids_bytes = pid.size() * 8, data_bytes = push ? pid.size() * row * esz : 0;
      auto buf = buffer_pool::global().acquire(ids_bytes + data_bytes);
      auto* out = static_cast<char*>(buf->data());
      for (std::size_t i = 0; i < pid.size(); ++i) {
        const std::int64_t rel = pid[i] - static_cast<std::int64_t>(pp.row_begin);
        std::memcpy(out + i * 8, &rel, 8);
      }
      if (push) {
        // The merged rows are sorted like the ids: this part's rows are one contiguous run.
        const auto first =
            static_cast<std::size_t>(std::lower_bound(o->sparse_ids.begin(), o->sparse_ids.end(),
                                                      pid.empty() ? 0 : pid.front()) -
                                     o->sparse_ids.begin());
        if (data_bytes)
          std::memcpy(out + ids_bytes,
                      static_cast<const char*>(o->sparse_rows.data_unchecked()) + first * row * esz,
                      data_bytes);
      }
      o->payloads[k] = buf;
      auto id = track(o, k);
      if (!id) continue;
      net::outgoing m = part_message(*o, pp, *id, pid.size());
      m.payload = ids_bytes + data_bytes ? buf->data() : nullptr;
      m.payload_size = ids_bytes + data_bytes;
      m.keepalive = buf;
      m.release_inline = true;
      send_part(pp.server, *id, std::move(m));
    }
  }

  // Puts every part of o on the wire. Caller holds o's key channel lock (or o is new).
  void send(const dist_op_ptr& o) {
    if (o->rows_op()) return send_rows(o);
    o->parts_left = static_cast<std::uint32_t>(o->parts.size());
    const std::size_t esz = size_of(o->info->dtype);
    for (std::uint32_t p = 0; p < o->parts.size(); ++p) {
      const auto& pp = o->parts[p];
      auto id = track(o, p);
      if (!id) continue;
      net::outgoing m = part_message(*o, pp, *id, 0);
      if (o->kind != op_kind::pull && o->kind != op_kind::broadcast) {
        m.payload = static_cast<const char*>(o->source.data_unchecked()) + pp.offset * esz;
        m.payload_size = pp.count * esz;
        // The payload's memory is all the transport needs kept; releasing it only returns a
        // buffer to the pool, so it may happen on this thread.
        m.keepalive = o->source.storage_ptr();
        m.release_inline = true;
        if (o->gc.type != compression::kind::none && o->channel) {
          // Quantized with this key's residual (the channel lock is held: one sender at a time).
          auto& ch = *o->channel;
          if (!ch.residual.defined() || ch.gc_version != o->gc_version) {
            ch.residual = tensor::zeros(o->info->shape, dtype::float32);
            ch.gc_version = o->gc_version;
          }
          const std::size_t w = compression::words(o->gc.type, pp.count);
          auto buf = buffer_pool::global().acquire(w * 4);
          compression::quantize(o->gc,
                                static_cast<const float*>(o->source.data_unchecked()) + pp.offset,
                                static_cast<float*>(ch.residual.data_unchecked()) + pp.offset,
                                static_cast<std::uint32_t*>(buf->data()), pp.count, 0, w);
          m.keepalive = buf;
          m.payload = buf->data();
          m.payload_size = w * 4;
          m.flags |= wire::flag_compressed;
        }
      }
      send_part(pp.server, *id, std::move(m));
    }
  }

  struct pending_part {
    dist_op_ptr op;
    std::uint32_t part = 0;
  };

  // Sends a tracked part; one the transport would refuse (checked here: it reports refusals
  // only to on_sent, which the data path does not pay for) fails instead.
  void send_part(std::uint32_t server, std::uint64_t id, net::outgoing&& m) {
    auto s = check_message(caps_, m.meta.size(), m.payload_size, "a request");
    if (s.is_ok()) return servers_[server]->send(std::move(m));
    pending_part pp;
    {
      std::lock_guard<std::mutex> g(pending_mu_);
      auto it = pending_.find(id);
      if (it == pending_.end()) return;
      pp = std::move(it->second);
      pending_.erase(it);
    }
    pp.op->part_done(s);
  }

  // Control messages' on_sent: a message the transport refused fails its call. (A closed
  // connection's pending messages fail through on_connection_lost, with the lost node named.)
  std::function<void(const status&)> refused(std::uint64_t id) {
    std::weak_ptr<dist_store> weak = weak_from_this();
    return [weak, id](const status& s) {
      if (s.code() != errc::invalid_argument) return;
      auto self = weak.lock();
      if (!self) return;
      std::function<void(const status&)> done;
      {
        std::lock_guard<std::mutex> g(self->pending_mu_);
        auto it = self->control_.find(id);
        if (it == self->control_.end()) return;
        done = std::move(it->second);
        self->control_.erase(it);
      }
      done(s);
    };
  }

  // Where a pull's reply lands: straight in the first output.
  void* destination(const net::message_head& h) {
    std::lock_guard<std::mutex> g(pending_mu_);
    auto it = pending_.find(h.id);
    if (it == pending_.end()) return nullptr;
    const auto& o = *it->second.op;
    if (!o.pull_like() || o.outs.empty()) return nullptr;
    const auto& pp = o.parts[it->second.part];
    const std::size_t esz = size_of(o.info->dtype);
    if (h.payload_size != pp.count * esz) return nullptr;
    return static_cast<char*>(o.outs.front().data_unchecked()) + pp.offset * esz;
  }

  void on_server_message(const net::connection_ptr& c, net::message&& m) {
    if (static_cast<wire::msg>(m.type) != wire::msg::reply) {
      c->close(status{errc::protocol_error, "a server sent a request to a worker"});
      return;
    }
    pending_part pp;
    std::function<void(const status&)> ctl;
    {
      std::lock_guard<std::mutex> g(pending_mu_);
      auto it = pending_.find(m.id);
      if (it != pending_.end()) {
        pp = std::move(it->second);
        pending_.erase(it);
      } else {
        auto ct = control_.find(m.id);
        if (ct == control_.end()) return;  // failed and forgotten already
        ctl = std::move(ct->second);
        control_.erase(ct);
      }
    }
    status s = reply_status(m);
    // A server fails requests with peer_lost once it knows of a lost node, perhaps before the
    // scheduler's notice reaches us: from then on this worker is broken too, or a later call
    // could still succeed against a cluster that is going away.
    if (s.code() == errc::peer_lost) on_connection_lost(s);
    if (ctl) return ctl(s);
    auto& o = *pp.op;
    if (s.is_ok() && o.kind == op_kind::row_pull) {
      // The part's rows, in the order of the ids it was sent; each output takes those it wants.
      const auto& pid = o.part_ids[pp.part];
      const std::size_t bytes = row_size(*o.info) * size_of(o.info->dtype);
      if (m.payload_size != pid.size() * bytes) {
        s = status{errc::protocol_error,
                   "server answered the wrong number of rows for key " + o.info->name()};
      } else {
        for (std::size_t j = 0; j < o.outs.size(); ++j) {
          const auto& w = o.want.size() == 1 ? o.want[0] : o.want[j];
          char* dst = static_cast<char*>(o.outs[j].data_unchecked());
          std::size_t a = 0;
          for (std::size_t i = 0; i < pid.size(); ++i) {
            while (a < w.size() && w[a] < pid[i])
              ++a;
            if (a < w.size() && w[a] == pid[i])
              std::memcpy(dst + (o.compact_rows ? a : static_cast<std::size_t>(pid[i])) * bytes,
                          static_cast<const char*>(m.payload_data) + i * bytes, bytes);
          }
        }
      }
      return o.part_done(s);
    }
    if (s.is_ok() && o.pull_like() && !o.outs.empty()) {
      const auto& part = o.parts[pp.part];
      const std::size_t esz = size_of(o.info->dtype);
      const std::size_t bytes = part.count * esz;
      char* dst = static_cast<char*>(o.outs.front().data_unchecked()) + part.offset * esz;
      if (m.payload_size != bytes) {
        s = status{errc::protocol_error, "server answered " + std::to_string(m.payload_size) +
                                             " bytes for key " + o.info->name() + ", expected " +
                                             std::to_string(bytes)};
      } else {
        if (m.payload_data != dst) std::memcpy(dst, m.payload_data, bytes);
        for (std::size_t j = 1; j < o.outs.size(); ++j)
          std::memcpy(static_cast<char*>(o.outs[j].data_unchecked()) + part.offset * esz, dst,
                      bytes);
      }
    }
    o.part_done(s);
  }

  void on_scheduler_message(const net::connection_ptr& c, net::message&& m) {
    switch (static_cast<wire::msg>(m.type)) {
      case wire::msg::node_table: {
        auto t = wire::decode<wire::node_table_meta>(m.meta);
        if (!table_set_.exchange(true)) table_.set_value(std::move(t));
        return;
      }
      case wire::msg::node_lost: {
        const status s = node_lost_status(wire::decode<wire::node_lost_meta>(m.meta));
        if (!table_set_.exchange(true)) table_.set_value(s);
        return on_connection_lost(s);
      }
      case wire::msg::reply: {
        std::function<void(const status&)> ctl;
        {
          std::lock_guard<std::mutex> g(pending_mu_);
          auto ct = control_.find(m.id);
          if (ct == control_.end()) return;
          ctl = std::move(ct->second);
          control_.erase(ct);
        }
        const status s = reply_status(m);
        if (s.code() == errc::peer_lost) on_connection_lost(s);  // as for a server's reply
        return ctl(s);
      }
      default:
        c->close(status{errc::protocol_error, "unexpected message from the scheduler"});
    }
  }

  // A node died, froze, or said so: everything pending fails, and so does everything later.
  void on_connection_lost(const status& why) {
    if (closing_) return;
    std::unordered_map<std::uint64_t, pending_part> parts;
    std::unordered_map<std::uint64_t, std::function<void(const status&)>> ctl;
    {
      std::lock_guard<std::mutex> g(pending_mu_);
      if (!broken_status_.is_ok()) return;
      broken_status_ = why;
      parts.swap(pending_);
      ctl.swap(control_);
    }
    log_line("worker", (why.code() == errc::peer_lost ? why.message() : why.to_string()) +
                           (joined_ ? "; failing every pending and later operation" : ""));
    if (!table_set_.exchange(true)) table_.set_value(why);
    for (auto& [id, pp] : parts)
      pp.op->part_done(why);
    for (auto& [id, fn] : ctl)
      fn(why);
  }

  bool broken() const {
    std::lock_guard<std::mutex> g(pending_mu_);
    return !broken_status_.is_ok();
  }

  // Registers `done` under a fresh id, then lets `send` use the id; a broken cluster fails
  // at once.
  void control(const std::function<void(std::uint64_t)>& send_fn,
               std::function<void(const status&)> done) {
    std::uint64_t id;
    {
      std::lock_guard<std::mutex> g(pending_mu_);
      if (!broken_status_.is_ok()) {
        const status s = broken_status_;
        done(s);
        return;
      }
      id = next_id_++;
      control_.emplace(id, std::move(done));
    }
    send_fn(id);
  }

  future<void> command_all(wire::command cmd, const std::string& body) {
    auto meta = wire::encode(wire::command_meta{static_cast<std::uint8_t>(cmd), body});
    if (auto s = check_message(caps_, meta.size(), 0,
                               std::string{"the "} + wire::to_string(cmd) + " command");
        !s)
      return failed(s);
    auto user = begin_call();
    auto call =
        std::make_shared<dist_call>(servers_.size(), [user](status s) { user->complete(s); });
    for (auto& conn : servers_) {
      control(
          [&](std::uint64_t id) {
            send_control(conn, wire::msg::command, id, meta, 0, refused(id));
          },
          [call](const status& s) { call->part_done(s); });
    }
    return user->fut;
  }

  future<void> submit_new(op_kind kind, group_list& groups, int priority) {
    std::vector<std::shared_ptr<key_channel>> chans;
    {
      std::unique_lock<std::shared_mutex> lk(reg_.mutex());
      if (stopped_) return failed(status{errc::shut_down, "the store has shut down"});
      for (const auto& g : groups) {
        if (auto s = reg_.check_call_kind(g.k, groups.front().k); !s) return failed(s);
        if (reg_.find(g.k))
          return failed(status{errc::already_initialized, std::string{to_string(kind)} + ": key " +
                                                              g.k.to_string() +
                                                              " is already initialized"});
        const tensor& v = g.values.front();
        if (auto s = check_init_value(g.k, v); !s) return failed(s);
        key_info probe;
        probe.user_key = g.k;
        probe.shape = v.shape();
        probe.dtype = v.dtype();
        for (const auto& o : g.outs)
          if (auto s = check_tensor(kind, probe, o, "output"); !s) return failed(s);
        // Every part of the key must fit the messages that carry it.
        if (auto s = check_key_for_wire(g.k); !s) return failed(s);
        if (auto s = check_rows_fit(probe, max_payload_); !s) return failed(s);
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
    auto user = begin_call();
    std::weak_ptr<dist_store> weak = weak_from_this();
    std::vector<dist_op_ptr> pulls;
    if (kind == op_kind::broadcast) {
      for (std::size_t i = 0; i < groups.size(); ++i) {
        key_group pg{groups[i].k, {}, std::move(groups[i].outs), groups[i].info};
        pulls.push_back(make_op(op_kind::pull, pg, priority, nullptr));
      }
    }
    auto after_barrier = [weak, user, pulls, chans](const status& s) mutable {
      auto self = weak.lock();
      if (!s.is_ok() || pulls.empty() || !self) return user->complete(s);
      auto call =
          std::make_shared<dist_call>(pulls.size(), [user](status r) { user->complete(r); });
      for (std::size_t i = 0; i < pulls.size(); ++i) {
        pulls[i]->call = call;
        self->issue(pulls[i], chans[i]);
      }
    };
    auto after_init = [weak, user, after_barrier](status s) mutable {
      auto self = weak.lock();
      if (!s.is_ok() || !self)
        return user->complete(s.is_ok() ? status{errc::shut_down, "store gone"} : s);
      self->control(
          [self](std::uint64_t id) {
            send_control(self->scheduler_, wire::msg::barrier, id,
                         wire::encode(wire::barrier_meta{id}), 0, self->refused(id));
          },
          after_barrier);
    };
    const bool sends = rank_ == 0;
    auto call = std::make_shared<dist_call>(sends ? groups.size() : 0, after_init);
    if (sends) {
      for (std::size_t i = 0; i < groups.size(); ++i) {
        key_group ig{groups[i].k, std::move(groups[i].values), {}, groups[i].info};
        issue(make_op(op_kind::init, ig, priority, call), chans[i]);
      }
    }
    return user->fut;
  }

  result<net::connection_ptr> connect_sync(const std::string& host, std::uint16_t port,
                                           net::identity id, net::handlers h,
                                           std::chrono::steady_clock::time_point started,
                                           const std::string& what) {
    const auto deadline = started + cfg_.connect_timeout;
    auto p = std::make_shared<std::promise<result<net::connection_ptr>>>();
    auto f = p->get_future();
    rt_->connect(host, port, std::move(id), node_caps(cfg_), std::move(h), deadline,
                 [p](result<net::connection_ptr> r) { p->set_value(std::move(r)); });
    wait_reporting(f, started, cfg_.connect_timeout, "worker", what);
    return f.get();  // the transport answers by the deadline
  }

  std::string type_;
  options opts_;
  cluster_config cfg_;
  key_registry reg_;
  bool sync_;
  net::caps caps_;
  std::uint64_t max_payload_;
  bool stopped_ = false;  // guarded by reg_.mutex()
  std::unordered_map<std::int64_t, std::shared_ptr<key_channel>> channels_;  // ditto
  std::shared_ptr<op_counter> counter_ = std::make_shared<op_counter>();

  std::unique_ptr<net::runtime> rt_;
  std::unique_ptr<thread_pool> pool_;
  net::connection_ptr scheduler_;
  std::vector<net::connection_ptr> servers_;
  std::promise<result<wire::node_table_meta>> table_;
  std::atomic<bool> table_set_{false};
  std::int64_t rank_ = -1;
  std::uint32_t num_workers_ = 0;
  std::uint32_t num_servers_ = 0;

  mutable std::mutex pending_mu_;
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, pending_part> pending_;
  std::unordered_map<std::uint64_t, std::function<void(const status&)>> control_;
  status broken_status_;
  std::atomic<bool> closing_{false};
  std::atomic<bool> joined_{false};  // start() completed

  std::unique_ptr<caf::actor_system_config> own_cfg_;
  std::unique_ptr<caf::actor_system> own_sys_;
  caf::actor client_;

  // Gradient compression: the setting, and per key the residual the worker keeps. Residuals
  // are used under their key's channel lock (sends of a key are serialised there).
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
