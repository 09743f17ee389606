// The scheduler: one actor holding the cluster's membership. Transport callbacks become
// messages to it, so its state needs no locks.
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <algorithm>
#include <future>

#include "../caf_glue.hpp"
#include "kvactor/detail/timeline.hpp"
#include "message_limits.hpp"
#include "node_address.hpp"
#include "node_common.hpp"
#include "nodes.hpp"
#include "rank_binding.hpp"

namespace kvactor::detail {
namespace {

// The transport's callbacks, as messages to the scheduler actor (run_scheduler sends them).
// A message received, with its connection:
struct inbound {
  net::connection_ptr conn;
  net::message msg;
};
using inbound_ptr = std::shared_ptr<inbound>;
using msg_atom = caf::atom_constant<caf::atom("kv_msg")>;
// A connection that closed, and why:
struct closed_conn {
  net::connection_ptr conn;
  status why;
};
using closed_atom = caf::atom_constant<caf::atom("kv_closed")>;

}  // namespace
}  // namespace kvactor::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::detail::inbound_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::detail::closed_conn)

namespace kvactor::detail {
namespace {

using deadline_atom = caf::atom_constant<caf::atom("kv_deadl")>;
using flushed_atom = caf::atom_constant<caf::atom("kv_flushd")>;
using give_up_atom = caf::atom_constant<caf::atom("kv_giveup")>;
using progress_atom = caf::atom_constant<caf::atom("kv_progr")>;

struct sched_state {
  struct node {
    net::connection_ptr conn;
    wire::register_meta reg;
    std::int64_t rank = -1;
    bool done = false;
  };
  cluster_config cfg;
  std::vector<node> nodes;
  bool table_sent = false;
  bool finished = false;
  bool losing = false;
  std::size_t unflushed = 0;  // node_lost notices not yet on the wire
  std::vector<std::pair<net::connection_ptr, std::uint64_t>> barrier;  // waiting workers
  std::vector<std::int64_t> barrier_since;  // the timeline's: when each arrived (0: not traced)
  std::promise<int>* exit_code = nullptr;
  static inline const char* name = "kvactor.scheduler";
};

using self_ptr = caf::stateful_actor<sched_state>*;

void finish(self_ptr self, int code) {
  auto& st = self->state;
  if (st.finished) return;
  st.finished = true;
  st.exit_code->set_value(code);
  self->quit();
}

sched_state::node* find(self_ptr self, const net::connection_ptr& c) {
  for (auto& n : self->state.nodes)
    if (n.conn == c) return &n;
  return nullptr;
}

// "1 of 2 servers, 0 of 3 workers" registered so far.
std::string registered_text(const sched_state& st) {
  auto count = [&](const char* role) {
    return std::count_if(st.nodes.begin(), st.nodes.end(),
                         [&](const auto& n) { return n.reg.role == role; });
  };
  auto part = [&](const char* role, std::uint32_t wanted) {
    return std::to_string(count(role)) + " of " + std::to_string(wanted) + " " + role +
           (wanted == 1 ? "" : "s");
  };
  return part("server", st.cfg.num_servers) + ", " + part("worker", st.cfg.num_workers);
}

// Tells every other node what was lost (m), then stops with status 1 once the notices are on
// the wire (or after a second, whichever comes first).
void lose(self_ptr self, const wire::node_lost_meta& m) {
  auto& st = self->state;
  if (st.losing || st.finished) return;
  st.losing = true;
  const status lost = node_lost_status(m);
  log_line("scheduler",
           (m.role == "cluster" ? m.reason
                                : lost_status(node_name(m.role, m.rank), m.reason).message()) +
               "; telling the other nodes, then exiting");
  for (auto& [c, id] : st.barrier)
    send_reply(c, id, 0, 0, lost, nullptr);
  st.barrier.clear();
  st.barrier_since.clear();
  auto meta = wire::encode(m);
  caf::actor_addr weak = self->address();
  for (auto& n : st.nodes) {
    if (!n.conn || !n.conn->is_open()) continue;
    ++st.unflushed;
    send_control(n.conn, wire::msg::node_lost, 0, meta, 0, [weak](const status&) {
      if (auto a = caf::actor_cast<caf::actor>(weak)) caf::anon_send(a, flushed_atom::value);
    });
  }
  if (st.unflushed == 0) return finish(self, 1);
  self->delayed_send(self, std::chrono::seconds(1), give_up_atom::value);
}

void assign_ranks(self_ptr self) {
  auto& st = self->state;
  for (const char* role : {"server", "worker"}) {
    std::vector<sched_state::node*> group;
    for (auto& n : st.nodes)
      if (n.reg.role == role) group.push_back(&n);
    // Hints from mpirun/Slurm decide when every node of the group has a distinct one;
    // otherwise registration order does.
    bool hinted =
        std::all_of(group.begin(), group.end(), [](auto* n) { return n->reg.rank_hint >= 0; });
    if (hinted) {
      std::vector<std::int64_t> hints;
      hints.reserve(group.size());
      for (auto* n : group)
        hints.push_back(n->reg.rank_hint);
      std::sort(hints.begin(), hints.end());
      hinted = std::adjacent_find(hints.begin(), hints.end()) == hints.end() &&
               hints.back() < static_cast<std::int64_t>(group.size());
    }
    for (std::size_t i = 0; i < group.size(); ++i)
      group[i]->rank = hinted ? group[i]->reg.rank_hint : static_cast<std::int64_t>(i);
  }
  // Each worker's rank is bound to its connections by a token only it and the servers can
  // know (rank_binding.hpp).
  auto key = new_rank_key();
  if (!key) return lose(self, wire::node_lost_meta{"cluster", -1, key.error().message()});
  wire::node_table_meta table;
  table.num_workers = st.cfg.num_workers;
  table.num_servers = st.cfg.num_servers;
  table.servers.resize(st.cfg.num_servers);
  for (auto& n : st.nodes)
    if (n.reg.role == "server")
      table.servers[static_cast<std::size_t>(n.rank)] = wire::endpoint{n.reg.host, n.reg.port};
  for (auto& n : st.nodes) {
    table.rank = n.rank;
    if (n.reg.role == "server") {
      table.rank_key = *key;
    } else {
      auto token = rank_token(*key, st.cfg.cluster_id, n.rank);
      if (!token) return lose(self, wire::node_lost_meta{"cluster", -1, token.error().message()});
      table.rank_key = *token;
    }
    auto meta = wire::encode(table);
    if (auto s = check_message(node_caps(st.cfg), meta.size(), 0, "the node table"); !s)
      return lose(self, wire::node_lost_meta{"cluster", -1, s.message()});
    send_control(n.conn, wire::msg::node_table, 0, std::move(meta));
  }
  st.table_sent = true;
  if (timeline::enabled()) timeline::instant("scheduler", "cluster assembled");
  log_line("scheduler", "cluster assembled: " + std::to_string(st.cfg.num_servers) +
                            " server(s), " + std::to_string(st.cfg.num_workers) + " worker(s)");
}

void on_register(self_ptr self, const net::connection_ptr& c, const net::message& m) {
  auto& st = self->state;
  auto reg = wire::decode<wire::register_meta>(m.meta);
  if (!reg) {
    c->close(reg.error());
    return;
  }
  if (st.table_sent || find(self, c)) {
    c->close(status{errc::protocol_error, "registration after the cluster assembled"});
    return;
  }
  if (reg->role != "server" && reg->role != "worker") {
    c->close(status{errc::protocol_error, "cannot register role " + reg->role});
    return;
  }
  const auto wanted = reg->role == "server" ? st.cfg.num_servers : st.cfg.num_workers;
  const auto have = std::count_if(st.nodes.begin(), st.nodes.end(),
                                  [&](const auto& n) { return n.reg.role == reg->role; });
  if (static_cast<std::uint32_t>(have) >= wanted) {
    c->close(status{errc::protocol_error,
                    "more " + reg->role + "s than the " + std::to_string(wanted) + " expected"});
    return;
  }
  if (reg->role == "server" && reg->host.empty()) reg->host = host_of(c->remote_address());
  st.nodes.push_back(sched_state::node{c, *reg, -1, false});
  if (st.nodes.size() == st.cfg.num_servers + st.cfg.num_workers) assign_ranks(self);
}

// The timeline: each worker's wait in the barrier just released, from its arrival.
void trace_barrier(self_ptr self) {
  auto& st = self->state;
  const std::int64_t now = timeline::now_ns();
  for (std::size_t i = 0; i < st.barrier.size(); ++i) {
    if (!st.barrier_since[i]) continue;
    const auto* n = find(self, st.barrier[i].first);
    timeline::async_span("scheduler", "barrier", st.barrier_since[i], now,
                         timeline::args{}.with("worker", n ? n->rank : -1));
  }
}

void on_message(self_ptr self, const inbound& in) {
  auto& st = self->state;
  const auto type = static_cast<wire::msg>(in.msg.type);
  switch (type) {
    case wire::msg::register_node:
      on_register(self, in.conn, in.msg);
      return;
    case wire::msg::barrier: {
      auto* n = find(self, in.conn);
      if (!n || n->reg.role != "worker" || !st.table_sent) {
        in.conn->close(status{errc::protocol_error, "barrier from a node that may not ask"});
        return;
      }
      st.barrier.emplace_back(in.conn, in.msg.id);
      st.barrier_since.push_back(timeline::enabled() ? timeline::now_ns() : 0);
      if (st.barrier.size() == st.cfg.num_workers) {
        for (auto& [c, id] : st.barrier)
          send_reply(c, id, 0, 0, status{}, nullptr);
        if (timeline::enabled()) trace_barrier(self);
        st.barrier.clear();
        st.barrier_since.clear();
      }
      return;
    }
    case wire::msg::node_done: {
      auto* n = find(self, in.conn);
      if (!n) return;
      n->done = true;
      if (std::all_of(st.nodes.begin(), st.nodes.end(), [](const auto& x) { return x.done; }) &&
          st.nodes.size() == st.cfg.num_servers + st.cfg.num_workers) {
        log_line("scheduler", "every node finished; stopping");
        finish(self, 0);
      }
      return;
    }
    default:
      in.conn->close(
          status{errc::protocol_error, "unexpected message type " + wire::type_text(in.msg.type)});
  }
}

caf::behavior scheduler(self_ptr self, cluster_config cfg, std::promise<int>* exit_code) {
  self->state.cfg = std::move(cfg);
  self->state.exit_code = exit_code;
  self->delayed_send(self, self->state.cfg.connect_timeout, deadline_atom::value);
  self->delayed_send(self, progress_interval, progress_atom::value);
  const auto started = std::chrono::steady_clock::now();
  return {
      [self](msg_atom, const inbound_ptr& in) { on_message(self, *in); },
      [self](closed_atom, const closed_conn& cc) {
        auto* n = find(self, cc.conn);
        if (!n || n->done) return;  // unregistered, or finished in order
        lose(self, wire::node_lost_meta{n->reg.role, n->rank,
                                        cc.why.is_ok() ? "it left the cluster before finishing"
                                                       : close_cause(cc.why)});
      },
      [self](flushed_atom) {
        auto& st = self->state;
        if (st.unflushed > 0) --st.unflushed;
        if (st.unflushed == 0) finish(self, 1);
      },
      [self](give_up_atom) { finish(self, 1); },
      [self, started](progress_atom) {
        // Silence while nodes are missing looks like a hang: say who is still awaited.
        auto& st = self->state;
        if (st.table_sent || st.losing || st.finished) return;
        const auto waited = std::chrono::duration_cast<std::chrono::seconds>(
            std::chrono::steady_clock::now() - started);
        log_line("scheduler", "waiting for nodes to register: " + registered_text(st) + ", " +
                                  std::to_string(waited.count()) + " s (gives up after " +
                                  duration_text(st.cfg.connect_timeout) + ")");
        self->delayed_send(self, progress_interval, progress_atom::value);
      },
      [self](deadline_atom) {
        auto& st = self->state;
        if (st.table_sent) return;
        lose(self, wire::node_lost_meta{
                       "cluster", -1,
                       "the cluster did not assemble within " +
                           duration_text(st.cfg.connect_timeout) + ": " + registered_text(st) +
                           " registered with the scheduler (are they all started, with the same "
                           "DMLC_PS_ROOT_URI, DMLC_PS_ROOT_PORT and secret?)"});
      },
  };
}

}  // namespace

int run_scheduler(const cluster_config& cfg) {
  timeline::set_process_name("scheduler");
  // Declared before the actor system: actors may fulfil it until the system is gone.
  std::promise<int> exit_code;
  auto done = exit_code.get_future();
  caf::actor_system_config sys_cfg;
  sys_cfg.set("scheduler.max-threads", std::size_t{1});
  sys_cfg.set("work-stealing.moderate-poll-attempts", std::size_t{0});
  caf::actor_system sys{sys_cfg};
  auto actor = sys.spawn(scheduler, cfg, &exit_code);
  int code = 1;
  {
    net::runtime rt(1);
    net::handlers h;
    caf::actor_addr weak = actor.address();
    h.on_message = [weak](const net::connection_ptr& c, net::message&& m) {
      if (auto a = caf::actor_cast<caf::actor>(weak))
        caf::anon_send(a, msg_atom::value, std::make_shared<inbound>(inbound{c, std::move(m)}));
    };
    h.on_close = [weak](const net::connection_ptr& c, const status& why) {
      if (auto a = caf::actor_cast<caf::actor>(weak))
        caf::anon_send(a, closed_atom::value, closed_conn{c, why});
    };
    auto at = scheduler_address(cfg);  // loopback in local mode (see node_address.hpp)
    if (at && !at->note.empty()) log_line("scheduler", at->note);
    auto l = at ? rt.listen(at->bind, cfg.root_port, make_identity(cfg, "scheduler", 0),
                            node_caps(cfg), h)
                : result<std::shared_ptr<net::listener>>{at.error()};
    if (!l) {
      log_line("scheduler", "cannot listen on " + (at ? at->bind : cfg.root_host) + ":" +
                                std::to_string(cfg.root_port) + ": " + l.error().to_string());
      caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
      return 1;
    }
    code = done.get();
    // Let the last messages (node_lost, barrier replies) reach the wire.
    (*l)->stop();
    rt.shutdown();
  }
  actor = nullptr;
  if (timeline::enabled()) timeline::write_and_report();
  return code;
}

}  // namespace kvactor::detail
