// A server process: shard actors own the parts of keys by hash; the transport's I/O threads
// decode requests and send them straight to the owning shard (one hop), and commands to every
// shard in the order they arrived (server_dispatch.hpp); a control actor follows the
// scheduler. This file: the actors, and run_server, which wires them to the transport.
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <atomic>
#include <future>
#include <thread>

#include "../caf_glue.hpp"
#include "node_address.hpp"
#include "node_common.hpp"
#include "nodes.hpp"
#include "rank_binding.hpp"
#include "server_core.hpp"
#include "server_dispatch.hpp"
#include "server_messages.hpp"

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::detail::inbound_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::detail::closed_conn)

namespace kvactor::detail {
namespace {

using configure_atom = caf::atom_constant<caf::atom("kv_config")>;
using fail_atom = caf::atom_constant<caf::atom("kv_fail")>;
using msg_atom = caf::atom_constant<caf::atom("kv_msg")>;
using closed_atom = caf::atom_constant<caf::atom("kv_closed")>;
using exit_atom = caf::atom_constant<caf::atom("kv_exit")>;

// ---------------------------------------------------------------- shard actors

struct shard_state {
  std::unique_ptr<server_core> core;
  std::vector<server_request_ptr> backlog;  // requests that came before the node table
  std::vector<shard_command> command_backlog;
  static inline const char* name = "kvactor.server_shard";
};

caf::behavior server_shard(caf::stateful_actor<shard_state>* self, int) {
  return {
      [self](const server_request_ptr& r) {
        if (!self->state.core)
          self->state.backlog.push_back(r);
        else
          self->state.core->handle(r);
      },
      [self](const shard_command& c) {
        if (!self->state.core) {
          self->state.command_backlog.push_back(c);
          return;
        }
        apply_command(*self->state.core, c.what);
        c.ack->shard_done();
      },
      [self](configure_atom, std::uint32_t workers) {
        auto& st = self->state;
        if (st.core) return;
        st.core = std::make_unique<server_core>(workers);
        for (auto& c : st.command_backlog) {
          apply_command(*st.core, c.what);
          c.ack->shard_done();
        }
        st.command_backlog.clear();
        for (auto& r : st.backlog)
          st.core->handle(r);
        st.backlog.clear();
      },
      [self](fail_atom, const status& why) {
        if (self->state.core) self->state.core->fail_all(why);
        for (auto& r : self->state.backlog)
          r->reply(why, nullptr);
        self->state.backlog.clear();
      },
  };
}

// ---------------------------------------------------------------- control actor

struct ctl_state {
  std::vector<caf::actor> shards;
  net::connection_ptr scheduler;
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
  *self->state.broken = status{errc::peer_lost, "it stopped: " + why.message()};
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
      [self](msg_atom, const inbound_ptr& in) {
        auto& st = self->state;
        if (!st.scheduler) st.scheduler = in->conn;
        switch (static_cast<wire::msg>(in->msg.type)) {
          case wire::msg::node_table: {
            auto t = wire::decode<wire::node_table_meta>(in->msg.meta);
            if (!t) return break_cluster(self, t.error());
            if (t->rank_key.empty())
              return break_cluster(self,
                                   status{errc::protocol_error, "the node table has no rank key"});
            st.rank = t->rank;
            st.binding->set_key(t->rank_key);
            st.shared_rank->store(t->rank);
            for (auto& s : st.shards)
              caf::anon_send(s, configure_atom::value, t->num_workers);
            return;
          }
          case wire::msg::node_lost:
            return break_cluster(
                self, node_lost_status(wire::decode<wire::node_lost_meta>(in->msg.meta)));
          default:
            return break_cluster(
                self, status{errc::protocol_error, "unexpected message from the scheduler: type " +
                                                       wire::type_text(in->msg.type)});
        }
      },
      [self](closed_atom, const closed_conn& cc) {
        break_cluster(self, lost_status("the scheduler", close_cause(cc.why)));
      },
      [self](stop_atom) {
        auto& st = self->state;
        if (st.stopping) return;
        st.stopping = true;
        log_line("server", "stop command received; finishing");
        if (!st.scheduler) return finish(self, 0);
        caf::actor_addr weak = self->address();
        send_control(st.scheduler, wire::msg::node_done, 0,
                     wire::encode(wire::node_done_meta{"server", st.rank}), 0,
                     [weak](const status&) {
                       if (auto a = caf::actor_cast<caf::actor>(weak))
                         caf::anon_send(a, exit_atom::value);
                     });
      },
      [self](exit_atom) { finish(self, 0); },
  };
}

}  // namespace

int run_server(const cluster_config& cfg, const options& opts) {
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
  const std::size_t n = opts.num_shards ? opts.num_shards : threads;
  for (std::size_t i = 0; i < n; ++i)
    shards.push_back(sys.spawn(server_shard, 0));
  auto rank = std::make_shared<std::atomic<std::int64_t>>(-1);
  auto binding = std::make_shared<rank_binding>(cfg.cluster_id);
  auto ctl = sys.spawn(server_ctl, shards, &exit_code, &broken, rank, binding);
  int code = 1;
  {
    net::runtime rt(1);
    auto disp = std::make_shared<dispatcher>(
        shards, ctl, rank, server_file_dirs{cfg.profile_dir, cfg.states_dir}, binding);
    net::handlers worker_h;
    worker_h.on_message = [disp](const net::connection_ptr& c, net::message&& m) {
      disp->on_message(c, std::move(m));
    };
    // A worker that disconnects is the scheduler's to judge: it knows whether the worker
    // finished in order, and tells every server if not.
    worker_h.on_close = [disp](const net::connection_ptr& c, const status&) {
      disp->connection_closed(c);
    };
    caf::actor_addr weak = ctl.address();
    net::handlers sched_h;
    sched_h.on_message = [weak](const net::connection_ptr& c, net::message&& m) {
      if (auto a = caf::actor_cast<caf::actor>(weak))
        caf::anon_send(a, msg_atom::value, std::make_shared<inbound>(inbound{c, std::move(m)}));
    };
    sched_h.on_close = [weak](const net::connection_ptr& c, const status& why) {
      if (auto a = caf::actor_cast<caf::actor>(weak))
        caf::anon_send(a, closed_atom::value, closed_conn{c, why});
    };
    auto conn = connect_reporting(
        rt, cfg, cfg.root_host, cfg.root_port, make_identity(cfg, "server", -1), sched_h,
        std::chrono::steady_clock::now(), "server",
        "the scheduler at " + cfg.root_host + ":" + std::to_string(cfg.root_port));
    if (!conn) {
      log_line("server", "cannot reach the scheduler at " + cfg.root_host + ":" +
                             std::to_string(cfg.root_port) +
                             " (DMLC_PS_ROOT_URI:DMLC_PS_ROOT_PORT) within " +
                             duration_text(cfg.connect_timeout) + ": " + conn.error().message());
    } else {
      // Listens on the interface that reaches the scheduler (loopback in local mode), or on
      // KVACTOR_NODE_HOST: see node_address.hpp. Known only now that the connection stands.
      const auto at = server_address(cfg, host_of((*conn)->local_address()));
      auto l = rt.listen(at.bind, 0, make_identity(cfg, "server", -1), node_caps(cfg), worker_h);
      if (!l) {
        log_line("server", "cannot listen on " + at.bind + ": " + l.error().to_string());
      } else {
        wire::register_meta reg;
        reg.role = "server";
        reg.host = at.advertise;
        reg.port = (*l)->port();
        reg.rank_hint = cfg.rank_hint;
        send_control(*conn, wire::msg::register_node, 0, wire::encode(reg));
        log_line("server", "accepting workers on " + reg.host + ":" + std::to_string(reg.port));
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
  return code;
}

}  // namespace kvactor::detail
