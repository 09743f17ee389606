// A server process: shard actors own the parts of keys by hash; the transport's I/O threads
// decode requests and send them straight to the owning shard (one hop; none when that shard is
// idle and the request, or a batch's share, may run there: server_gate.hpp), and commands to every
// shard in the order they arrived (server_dispatch.hpp); a control actor follows the
// scheduler through the link every node shares (scheduler_link.hpp). This file: the actors,
// and run_server, which wires them to the transport.
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <atomic>
#include <future>
#include <thread>

#include "../caf_glue.hpp"
#include "kvactor/detail/timeline.hpp"
#include "node_address.hpp"
#include "node_common.hpp"
#include "nodes.hpp"
#include "rank_binding.hpp"
#include "scheduler_link.hpp"
#include "server_core.hpp"
#include "server_dispatch.hpp"
#include "server_gate.hpp"
#include "server_messages.hpp"

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::wire::node_table_meta)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<kvactor::detail::scheduler_link>)

namespace kvactor::detail {
namespace {

using configure_atom = caf::atom_constant<caf::atom("kv_config")>;
using fail_atom = caf::atom_constant<caf::atom("kv_fail")>;
using exit_atom = caf::atom_constant<caf::atom("kv_exit")>;

// ---------------------------------------------------------------- shard actors

// The core lives in the shard's gate (server_gate.hpp), which the dispatcher's I/O threads
// may take for a request they serve themselves; every handler here holds it. What the dispatcher
// sends counts in the gate until taken.
struct shard_state {
  std::shared_ptr<server_gate> gate;
  std::vector<server_request_ptr> backlog;  // requests that came before the node table
  std::vector<shard_command> command_backlog;
  static inline const char* name = "kvactor.server_shard";
};

using shard_ptr = caf::stateful_actor<shard_state>*;

// The gate, held, with one dispatcher message taken off its counts (server_gate.hpp): a
// request's, each request's of a batch, or a command's.
std::unique_lock<std::mutex> take(shard_ptr self, const std::vector<server_request_ptr>& rs) {
  std::unique_lock<std::mutex> held(self->state.gate->mu);
  for (std::size_t i = 0; i < rs.size(); ++i)
    self->state.gate->taken(server_gate::count_for(rs[i]->worker, rs[i]->route), i == 0);
  return held;
}
std::unique_lock<std::mutex> take(shard_ptr self, const server_request_ptr& r) {
  std::unique_lock<std::mutex> held(self->state.gate->mu);
  self->state.gate->taken(server_gate::count_for(r->worker, r->route));
  return held;
}
std::unique_lock<std::mutex> take_command(shard_ptr self) {
  std::unique_lock<std::mutex> held(self->state.gate->mu);
  self->state.gate->taken(server_gate::command_count);
  return held;
}

// The gate, held, for a message of the control actor (not counted).
std::unique_lock<std::mutex> hold(shard_ptr self) {
  return std::unique_lock<std::mutex>(self->state.gate->mu);
}

void handle(shard_ptr self, const server_request_ptr& r) {
  if (!self->state.gate->core)
    self->state.backlog.push_back(r);
  else
    self->state.gate->core->handle(r);
}

caf::behavior server_shard(shard_ptr self, std::shared_ptr<server_gate> gate) {
  self->state.gate = std::move(gate);
  return {
      [self](const server_request_ptr& r) {
        auto held = take(self, r);
        handle(self, r);
      },
      [self](const shard_command& c) {
        auto held = take_command(self);
        if (!self->state.gate->core) {
          self->state.command_backlog.push_back(c);
          return;
        }
        apply_command(*self->state.gate->core, c.what);
        self->state.gate->note_modes();
        c.ack->shard_done();
      },
      [self](const shard_batch& b) {
        // Handled in the batch's order; answers given meanwhile, other batches' late ones
        // too, leave together after the last shard's share.
        auto held = take(self, b.requests);
        {
          reply_batch::applying scope(*b.replies);
          for (const auto& r : b.requests)
            handle(self, r);
        }
        b.replies->shard_done();
      },
      [self](configure_atom, std::uint32_t workers) {
        auto held = hold(self);
        auto& st = self->state;
        auto& core = st.gate->core;
        if (core) return;
        core = std::make_unique<server_core>(workers);
        for (auto& c : st.command_backlog) {
          apply_command(*core, c.what);
          c.ack->shard_done();
        }
        st.command_backlog.clear();
        st.gate->note_modes();
        for (auto& r : st.backlog)
          core->handle(r);
        st.backlog.clear();
      },
      [self](fail_atom, const status& why) {
        auto held = hold(self);
        if (self->state.gate->core) self->state.gate->core->fail_all(why);
        for (auto& r : self->state.backlog)
          r->reply(why, nullptr);
        self->state.backlog.clear();
      },
  };
}

// ---------------------------------------------------------------- control actor

// What the scheduler link tells the control actor (run_server sends it): the link once it is
// connected, the node table, and why the cluster broke (a node lost, the scheduler gone, a
// bad table or an unexpected message).
using link_atom = caf::atom_constant<caf::atom("kv_link")>;
using table_atom = caf::atom_constant<caf::atom("kv_table")>;
using broken_atom = caf::atom_constant<caf::atom("kv_broken")>;

struct ctl_state {
  std::vector<caf::actor> shards;
  std::shared_ptr<scheduler_link> scheduler;
  std::promise<int>* exit_code = nullptr;
  status* broken = nullptr;  // why the cluster broke; read after exit_code is set
  bool stopping = false;
  bool finished = false;
  std::int64_t rank = -1;
  std::shared_ptr<std::atomic<std::int64_t>> shared_rank;
  std::shared_ptr<rank_binding> binding;
  static inline const char* name = "kvactor.server_ctl";
};
using ctl_ptr = caf::stateful_actor<ctl_state>*;

void finish(ctl_ptr self, int code) {
  if (self->state.finished) return;
  self->state.finished = true;
  self->state.exit_code->set_value(code);
  self->quit();
}

void break_cluster(ctl_ptr self, const status& why) {
  if (self->state.stopping || self->state.finished) return;
  // A lost peer's status already says what happened; its code would only repeat it.
  log_line("server", (why.code() == errc::peer_lost ? why.message() : why.to_string()) +
                         "; failing what is pending and exiting");
  *self->state.broken = stopped_status(why);
  for (auto& s : self->state.shards)
    caf::anon_send(s, fail_atom::value, why);
  finish(self, 1);
}

caf::behavior server_ctl(ctl_ptr self, std::vector<caf::actor> shards, std::promise<int>* exit_code,
                         status* broken, std::shared_ptr<std::atomic<std::int64_t>> rank,
                         std::shared_ptr<rank_binding> binding) {
  self->state.shards = std::move(shards);
  self->state.binding = std::move(binding);
  self->state.exit_code = exit_code;
  self->state.broken = broken;
  self->state.shared_rank = std::move(rank);
  return {
      [self](link_atom, const std::shared_ptr<scheduler_link>& link) {
        self->state.scheduler = link;
      },
      [self](table_atom, const wire::node_table_meta& t) {
        auto& st = self->state;
        st.rank = t.rank;
        timeline::set_process_name("server " + std::to_string(t.rank));
        st.binding->set_key(t.rank_key);
        st.shared_rank->store(t.rank);
        for (auto& s : st.shards)
          caf::anon_send(s, configure_atom::value, t.num_workers);
      },
      [self](broken_atom, const status& why) { break_cluster(self, why); },
      [self](stop_atom) {
        auto& st = self->state;
        if (st.stopping) return;
        st.stopping = true;
        log_line("server", "stop command received; finishing");
        if (!st.scheduler) return finish(self, 0);
        caf::actor_addr weak = self->address();
        st.scheduler->say_done(st.rank, [weak](const status&) {
          if (auto a = caf::actor_cast<caf::actor>(weak)) caf::anon_send(a, exit_atom::value);
        });
      },
      [self](exit_atom) { finish(self, 0); },
  };
}

}  // namespace

int run_server(const cluster_config& cfg, const options& opts) {
  timeline::set_process_name("server");  // its rank comes with the node table
  const std::size_t threads = opts.worker_threads
                                  ? opts.worker_threads
                                  : std::max<std::size_t>(1, std::thread::hardware_concurrency());
  // Declared before the actor system: actors may fulfil it until the system is gone.
  std::promise<int> exit_code;
  auto done = exit_code.get_future();
  status broken;  // written by the control actor before it sets exit_code
  caf::actor_system_config sys_cfg;
  sys_cfg.set("scheduler.max-threads", threads);
  sys_cfg.set("work-stealing.moderate-poll-attempts", std::size_t{0});
  add_to_config(sys_cfg);
  caf::actor_system sys{sys_cfg};
  std::vector<caf::actor> shards;
  std::vector<std::shared_ptr<server_gate>> gates;
  const std::size_t n = opts.num_shards ? opts.num_shards : threads;
  for (std::size_t i = 0; i < n; ++i) {
    gates.push_back(std::make_shared<server_gate>());
    shards.push_back(sys.spawn(server_shard, gates.back()));
  }
  auto rank = std::make_shared<std::atomic<std::int64_t>>(-1);
  auto binding = std::make_shared<rank_binding>(cfg.cluster_id);
  auto ctl = sys.spawn(server_ctl, shards, &exit_code, &broken, rank, binding);
  int code = 1;
  {
    net::runtime rt(1);
    auto disp = std::make_shared<dispatcher>(shards, gates, ctl, rank,
                                             server_file_dirs{cfg.profile_dir, cfg.states_dir},
                                             binding, node_caps(cfg));
    net::handlers worker_h;
    worker_h.on_message = [disp](const net::connection_ptr& c, net::message&& m) {
      disp->on_message(c, std::move(m));
    };
    worker_h.payload_sink_for = [disp](const net::connection_ptr& c, const net::message_head& h) {
      return disp->sink_for(c, h);
    };
    // A worker that disconnects is the scheduler's to judge: it knows whether the worker
    // finished in order, and tells every server if not.
    worker_h.on_close = [disp](const net::connection_ptr& c, const status&) {
      disp->connection_closed(c);
    };
    // The scheduler's word reaches the control actor as its own messages; the table is the
    // only one that does not break the cluster (a server takes no replies).
    caf::actor_addr weak = ctl.address();
    auto link = std::make_shared<scheduler_link>(cfg, "server");
    const status reached = link->connect(
        rt, std::chrono::steady_clock::now(),
        [weak](const net::connection_ptr&, scheduler_event&& e) {
          auto a = caf::actor_cast<caf::actor>(weak);
          if (!a) return;
          if (e.what == scheduler_event::kind::table)
            caf::anon_send(a, table_atom::value, std::move(e.table));
          else
            caf::anon_send(a, broken_atom::value, std::move(e.why));
        },
        [weak](const status& why) {
          if (auto a = caf::actor_cast<caf::actor>(weak))
            caf::anon_send(a, broken_atom::value, why);
        });
    if (!reached) {
      log_line("server", reached.message());
    } else {
      caf::anon_send(ctl, link_atom::value, link);
      // Listens on the interface that reaches the scheduler (loopback in local mode), or on
      // KVACTOR_NODE_HOST: see node_address.hpp. Known only now that the connection stands.
      const auto at = server_address(cfg, host_of(link->connection()->local_address()));
      auto l = rt.listen(at.bind, 0, make_identity(cfg, "server", -1), node_caps(cfg), worker_h);
      if (!l) {
        log_line("server", "cannot listen on " + at.bind + ": " + l.error().to_string());
      } else {
        const std::uint16_t port = (*l)->port();
        link->register_node(at.advertise, port);
        log_line("server", "accepting workers on " + at.advertise + ":" + std::to_string(port));
        code = done.get();
        (*l)->stop();
      }
    }
    // After a break, every worker learns why this server goes (its GOODBYE says), even one
    // that hears it before the scheduler's notice.
    rt.shutdown(code == 0 ? status{} : broken);
  }
  for (auto& s : shards)
    caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(ctl, caf::exit_reason::user_shutdown);
  if (timeline::enabled()) timeline::write_and_report();
  return code;
}

}  // namespace kvactor::detail
