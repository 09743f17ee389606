// A server process: shard actors own the parts of keys by hash; the transport's I/O threads
// decode requests and send them straight to the owning shard (one hop), and commands to every
// shard in the order they arrived; a control actor follows the scheduler.
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include "../caf_glue.hpp"
#include "../multi_precision.hpp"
#include "../optimizers.hpp"
#include "kvactor/compression.hpp"
#include "kvactor/serialization/optimizer_config.hpp"
#include "kvactor/serialization/optimizer_states.hpp"
#include "node_address.hpp"
#include "node_common.hpp"
#include "nodes.hpp"
#include "profile_file.hpp"
#include "rank_binding.hpp"
#include "server_core.hpp"

namespace kvactor::detail {
namespace {

/// Counts shards that applied a command; the last one answers the worker.
struct command_ack {
  std::atomic<std::size_t> left;
  std::function<void()> done;
};

struct shard_command {
  std::function<void(server_core&)> apply;
  std::shared_ptr<command_ack> ack;
};

}  // namespace
}  // namespace kvactor::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::detail::server_request_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::detail::shard_command)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::detail::inbound_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kvactor::detail::closed_conn)

namespace kvactor::detail {
namespace {

using configure_atom = caf::atom_constant<caf::atom("kv_config")>;
using fail_atom = caf::atom_constant<caf::atom("kv_fail")>;
using msg_atom = caf::atom_constant<caf::atom("kv_msg")>;
using closed_atom = caf::atom_constant<caf::atom("kv_closed")>;
using stop_atom = caf::atom_constant<caf::atom("kv_stop")>;
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
        c.apply(*self->state.core);
        if (c.ack->left.fetch_sub(1, std::memory_order_acq_rel) == 1) c.ack->done();
      },
      [self](configure_atom, std::uint32_t workers) {
        auto& st = self->state;
        if (st.core) return;
        st.core = std::make_unique<server_core>(workers);
        for (auto& c : st.command_backlog) {
          c.apply(*st.core);
          if (c.ack->left.fetch_sub(1, std::memory_order_acq_rel) == 1) c.ack->done();
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
                self, status{errc::protocol_error, "unexpected message from the scheduler"});
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

// ---------------------------------------------------------------- command bodies

// "k1=v1,k2=v2" (the bodies kvactor's commands take; an empty body has no pairs).
result<std::vector<std::pair<std::string, std::string>>> parse_body(const std::string& body) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t pos = 0;
  while (pos < body.size()) {
    auto end = body.find(',', pos);
    if (end == std::string::npos) end = body.size();
    const std::string item = body.substr(pos, end - pos);
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      return status{errc::invalid_argument, "command parameter \"" + item + "\" is not key=value"};
    out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
    pos = end + 1;
  }
  return out;
}

// ---------------------------------------------------------------- request decoding

class dispatcher : public std::enable_shared_from_this<dispatcher> {
 public:
  dispatcher(std::vector<caf::actor> shards, caf::actor ctl,
             std::shared_ptr<std::atomic<std::int64_t>> rank, std::string profile_dir,
             std::shared_ptr<rank_binding> binding)
      : shards_(std::move(shards)),
        ctl_(std::move(ctl)),
        rank_(std::move(rank)),
        profile_dir_(std::move(profile_dir)),
        binding_(std::move(binding)) {}

  void on_message(const net::connection_ptr& c, net::message&& m) {
    const auto type = static_cast<wire::msg>(m.type);
    if (c->peer().role != "worker" || c->peer().rank < 0) {
      c->close(status{errc::protocol_error, "only workers send requests to servers"});
      return;
    }
    // The rank the scheduler assigned, as the connection proved it (not the one it claims).
    const std::int64_t worker = binding_->rank_of(c.get());
    if (worker < 0) return bind(c, m);
    switch (type) {
      case wire::msg::init:
      case wire::msg::push:
      case wire::msg::pull:
      case wire::msg::pushpull:
        return data(c, std::move(m), type, worker);
      case wire::msg::push_rows:
      case wire::msg::pull_rows:
        return rows(c, std::move(m), type, worker);
      case wire::msg::command:
        return command(c, m, worker);
      default:
        c->close(status{errc::protocol_error, "unexpected message type " + std::to_string(m.type)});
    }
  }

  void connection_closed(const net::connection_ptr& c) { binding_->forget(c.get()); }

 private:
  // A worker connection's first request must be bind_rank with the token the scheduler gave
  // it; anything else, a wrong token or a rank bound already closes the connection.
  void bind(const net::connection_ptr& c, const net::message& m) {
    auto cmd = static_cast<wire::msg>(m.type) == wire::msg::command
                   ? wire::decode<wire::command_meta>(m.meta)
                   : result<wire::command_meta>{status{errc::protocol_error, "not a command"}};
    if (!cmd || cmd->cmd != static_cast<std::uint8_t>(wire::command::bind_rank)) {
      const status why{errc::unauthenticated,
                       "worker " + std::to_string(c->peer().rank) +
                           " sent a request before proving its rank (bind_rank)"};
      log_line("server", "refused a connection from " + c->remote_address() + ": " + why.message());
      c->close(why);
      return;
    }
    binding_->claim(
        c.get(), c->peer().rank, cmd->body, [c, id = m.id, stream = m.stream](const status& s) {
          if (s.is_ok()) return send_reply(c, id, stream, 0, s, nullptr);
          log_line("server",
                   "refused a connection from " + c->remote_address() + ": " + s.message());
          c->close(s);
        });
  }

  void data(const net::connection_ptr& c, net::message&& m, wire::msg type, std::int64_t worker) {
    auto meta = wire::decode<wire::data_meta>(m.meta);
    auto reply = [c, id = m.id, stream = m.stream, prio = m.priority](
                     const status& s, const tensor* v) { send_reply(c, id, stream, prio, s, v); };
    if (!meta) return reply(meta.error(), nullptr);
    auto r = std::make_shared<server_request>();
    r->kind = type;
    r->meta = std::move(*meta);
    r->worker = worker;
    r->reply = std::move(reply);
    // A refused push still goes to its shard, where it takes its place in the round.
    if (auto s = decode_payload(r.get(), m); !s) r->rejected = s;
    const auto k = r->meta.key.to_key();
    const std::size_t h =
        k.hash() ^ (static_cast<std::size_t>(r->meta.part) * 0x9e3779b97f4a7c15ull);
    caf::anon_send(shards_[h % shards_.size()], std::move(r));
  }

  // The payload of an init, push or pushpull as the flat tensor r->payload (decompressed).
  status decode_payload(server_request* r, net::message& m) {
    const auto type = r->kind;
    if (type != wire::msg::pull && (m.flags & wire::flag_compressed)) {
      // Decoded here, off the shard: what follows sees an ordinary float32 push.
      compression::params gc;
      {
        std::lock_guard<std::mutex> g(optimizer_mu_);
        gc = gc_;
      }
      if (gc.type == compression::kind::none)
        return status{errc::invalid_argument,
                      "a compressed push, but gradient compression is not set on this server"};
      if (r->meta.dtype != static_cast<std::uint8_t>(dtype::float32) || r->meta.numel == 0 ||
          r->meta.numel > (std::uint64_t{1} << 40) ||
          compression::words(gc.type, r->meta.numel) * 4 != m.payload_size)
        return status{errc::protocol_error, "compressed payload does not match its metadata"};
      r->wire_bytes = m.payload_size;
      r->payload = tensor::empty({static_cast<std::int64_t>(r->meta.numel)}, dtype::float32);
      const std::size_t w = compression::words(gc.type, r->meta.numel);
      compression::dequantize(gc, static_cast<const std::uint32_t*>(m.payload_data),
                              static_cast<float*>(r->payload.data_unchecked()), r->meta.numel, 0,
                              w);
    } else if (type != wire::msg::pull) {
      const auto t = static_cast<dtype>(r->meta.dtype);
      if (r->meta.dtype > static_cast<std::uint8_t>(dtype::uint8) || r->meta.numel == 0 ||
          r->meta.numel > (std::uint64_t{1} << 40) || r->meta.numel * size_of(t) != m.payload_size)
        return status{errc::protocol_error, "payload does not match its metadata"};
      const shape s{static_cast<std::int64_t>(r->meta.numel)};
      try {
        if (m.payload_buffer && m.payload_data == m.payload_buffer->data())
          r->payload = tensor::from_buffer(std::move(m.payload_buffer), s, t);
        else
          r->payload = tensor::from_bytes(m.payload_data, s, t);
      } catch (const std::exception& e) {
        return status{errc::internal, e.what()};
      }
    }
    return {};
  }

  // Row-sparse requests: the payload starts with `rows` int64 row ids (of the part), and for
  // push_rows continues with one row of values per id.
  void rows(const net::connection_ptr& c, net::message&& m, wire::msg type, std::int64_t worker) {
    auto meta = wire::decode<wire::data_meta>(m.meta);
    auto reply = [c, id = m.id, stream = m.stream, prio = m.priority](
                     const status& s, const tensor* v) { send_reply(c, id, stream, prio, s, v); };
    if (!meta) return reply(meta.error(), nullptr);
    auto r = std::make_shared<server_request>();
    r->kind = type;
    r->meta = std::move(*meta);
    r->worker = worker;
    r->reply = std::move(reply);
    const auto k = r->meta.key.to_key();
    const std::size_t h =
        k.hash() ^ (static_cast<std::size_t>(r->meta.part) * 0x9e3779b97f4a7c15ull);
    // A refused push still goes to its shard, where it takes its place in the round.
    if (r->meta.dtype > static_cast<std::uint8_t>(dtype::uint8))
      r->rejected = status{errc::protocol_error, "bad element type"};
    const auto t = static_cast<dtype>(r->meta.dtype);
    const std::uint64_t ids_bytes = r->meta.rows * 8;
    const std::uint64_t data_bytes = type == wire::msg::push_rows && r->rejected.is_ok()
                                         ? r->meta.rows * r->meta.row * size_of(t)
                                         : 0;
    if (r->rejected.is_ok() && m.payload_size != ids_bytes + data_bytes)
      r->rejected = status{errc::protocol_error, "row payload does not match its metadata"};
    if (!r->rejected.is_ok()) return caf::anon_send(shards_[h % shards_.size()], std::move(r));
    r->row_ids.resize(static_cast<std::size_t>(r->meta.rows));
    if (ids_bytes) std::memcpy(r->row_ids.data(), m.payload_data, ids_bytes);
    if (data_bytes)
      r->row_data = tensor::from_bytes(
          static_cast<const char*>(m.payload_data) + ids_bytes,
          {static_cast<std::int64_t>(r->meta.rows), static_cast<std::int64_t>(r->meta.row)}, t);
    caf::anon_send(shards_[h % shards_.size()], std::move(r));
  }

  void command(const net::connection_ptr& c, const net::message& m, std::int64_t worker) {
    auto reply = [c, id = m.id, stream = m.stream](const status& s) {
      send_reply(c, id, stream, 0, s, nullptr);
    };
    auto cmd = wire::decode<wire::command_meta>(m.meta);
    if (!cmd) return reply(cmd.error());
    std::function<void(server_core&)> apply;
    std::function<status()> finish;
    std::function<void()> after;
    switch (static_cast<wire::command>(cmd->cmd)) {
      case wire::command::controller: {
        auto cfg = decode_optimizer_config(reinterpret_cast<const std::uint8_t*>(cmd->body.data()),
                                           cmd->body.size());
        if (!cfg) return reply(cfg.error());
        auto u = make_optimizer(*cfg);
        if (!u) return reply(u.error());
        {
          // Every worker sends set_optimizer; the same optimizer again keeps the state
          // (momentum, ...) the first one built up.
          std::lock_guard<std::mutex> g(optimizer_mu_);
          if (optimizer_ && *optimizer_ == *cfg) return reply(status{});
          optimizer_ = *cfg;
        }
        std::shared_ptr<const updater> upd = std::move(*u);
        apply = [upd](server_core& core) { core.set_updater(upd); };
        break;
      }
      case wire::command::sync_mode: {
        if (cmd->body != "0" && cmd->body != "1")
          return reply(status{errc::invalid_argument, "sync_mode takes \"1\" or \"0\""});
        const bool sync = cmd->body == "1";
        apply = [sync](server_core& core) { core.set_sync(sync); };
        break;
      }
      case wire::command::stop_server: {
        apply = [](server_core&) {};
        caf::actor ctl = ctl_;
        after = [ctl] { caf::anon_send(ctl, stop_atom::value); };
        break;
      }
      case wire::command::set_multi_precision: {
        if (cmd->body != "" && cmd->body != "1" && cmd->body != "0")
          return reply(
              status{errc::invalid_argument, "set_multi_precision takes \"\", \"1\" or \"0\""});
        const bool on = cmd->body != "0";
        {
          std::lock_guard<std::mutex> g(optimizer_mu_);
          multi_precision_ = on;
        }
        apply = [on](server_core& core) { core.set_multi_precision(on); };
        break;
      }
      case wire::command::set_gradient_compression: {
        auto kv = parse_body(cmd->body);
        if (!kv) return reply(kv.error());
        std::string type = "none";
        double threshold = 0.5;
        for (const auto& [k, v] : *kv) {
          if (k == "type") {
            type = v;
          } else if (k == "threshold") {
            char* end = nullptr;
            threshold = std::strtod(v.c_str(), &end);
            if (end == v.c_str() || *end)
              return reply(status{errc::invalid_argument,
                                  "gradient compression threshold must be a number, got " + v});
          } else {
            return reply(status{errc::invalid_argument,
                                "unknown gradient compression parameter \"" + k + "\""});
          }
        }
        auto p = compression::parse(type, threshold);
        if (!p) return reply(p.error());
        {
          std::lock_guard<std::mutex> g(optimizer_mu_);
          gc_ = *p;
        }
        compression_config c{type, threshold};
        apply = [c](server_core& core) { core.set_compression(c); };
        break;
      }
      case wire::command::set_profiler_params: {
        auto kv = parse_body(cmd->body);
        if (!kv) return reply(kv.error());
        std::string state, file;
        for (const auto& [k, v] : *kv) {
          if (k == "state" && (v == "run" || v == "stop"))
            state = v;
          else if (k == "filename" && !v.empty())
            file = v;
          else
            return reply(status{
                errc::invalid_argument,
                "profiler parameters are state=run|stop and filename=PATH; got " + k + "=" + v});
        }
        if (!file.empty()) {  // checked before anything changes
          auto path = profile_path(profile_dir_, file, rank_->load());
          if (!path) return reply(path.error());
          file = *path;
        }
        // Profiles of all shards add up; with a filename they are written when all shards
        // have answered.
        auto total = std::make_shared<std::pair<std::mutex, server_profile>>();
        apply = [state, total](server_core& core) {
          if (state == "run") {
            core.reset_profile();
            core.set_profiling(true);
          } else if (state == "stop") {
            core.set_profiling(false);
          }
          std::lock_guard<std::mutex> g(total->first);
          for (int i = 0; i < 4; ++i) {
            total->second.count[i] += core.profile().count[i];
            total->second.bytes_in[i] += core.profile().bytes_in[i];
          }
          total->second.busy_ns += core.profile().busy_ns;
        };
        if (!file.empty()) {
          // Every server writes its own (profile_file.hpp), before it answers.
          finish = [total, file] {
            std::lock_guard<std::mutex> g(total->first);
            return write_profile(file, total->second);
          };
        }
        break;
      }
      case wire::command::save_states: {
        if (cmd->body.size() < 2 || (cmd->body[0] != '0' && cmd->body[0] != '1'))
          return reply(status{errc::invalid_argument, "save_states: bad command body"});
        const bool dump = cmd->body[0] == '1';
        const std::string file = cmd->body.substr(1) + ".server" + std::to_string(rank_->load());
        auto records =
            std::make_shared<std::pair<std::mutex, std::vector<wire::key_state_record>>>();
        apply = [records](server_core& core) {
          auto mine = core.snapshot_states();
          std::lock_guard<std::mutex> g(records->first);
          for (auto& r : mine)
            records->second.push_back(std::move(r));
        };
        std::optional<optimizer_config> cfg;
        if (dump) {
          cfg = current_optimizer();
          if (!cfg)
            return reply(status{errc::invalid_argument,
                                "save_optimizer_states: no optimizer is set to dump"});
        }
        finish = [records, cfg, file] {
          wire::states_file out;
          out.optimizer = cfg;
          std::lock_guard<std::mutex> g(records->first);
          out.keys = std::move(records->second);
          return wire::write_states_file(file, out);
        };
        break;
      }
      case wire::command::load_states: {
        if (cmd->body.empty()) return reply(status{errc::invalid_argument, "load_states: no file"});
        return load_states(reply, cmd->body + ".server" + std::to_string(rank_->load()));
      }
      case wire::command::bind_rank:
        return reply(status{errc::invalid_argument, "this connection's rank is bound already"});
      case wire::command::worker_done:
        apply = [worker](server_core& core) { core.worker_left(worker); };
        break;
      default:
        return reply(
            status{errc::invalid_argument, "unknown server command " + std::to_string(cmd->cmd)});
    }
    fan_out(std::move(apply), [reply, finish, after] {
      reply(finish ? finish() : status{});
      if (after) after();
    });
  }

  // Runs apply on every shard; done() after the last.
  void fan_out(std::function<void(server_core&)> apply, std::function<void()> done) {
    auto ack = std::make_shared<command_ack>();
    ack->left = shards_.size();
    ack->done = std::move(done);
    for (auto& s : shards_)
      caf::anon_send(s, shard_command{apply, ack});
  }

  std::optional<optimizer_config> current_optimizer() {
    std::lock_guard<std::mutex> g(optimizer_mu_);
    auto c = optimizer_;
    if (c && multi_precision_) c->params["multi_precision"] = 1;
    return c;
  }

  // Reads the file off the I/O thread, checks every record on every shard, and installs
  // them only if all fit.
  void load_states(std::function<void(const status&)> reply, std::string file) {
    std::thread([this, reply, file, self = shared_from_this()] {
      auto content = wire::read_states_file(file);
      if (!content) return reply(content.error());
      std::shared_ptr<const updater> inner;
      bool mp = false;
      if (content->optimizer) {
        optimizer_config cfg = *content->optimizer;
        auto it = cfg.params.find("multi_precision");
        mp = it != cfg.params.end() && it->second != 0;
        if (it != cfg.params.end()) cfg.params.erase(it);
        auto u = make_optimizer(cfg);
        if (!u) return reply(u.error());
        inner = std::move(*u);
      }
      struct check {
        std::mutex mu;
        std::size_t matched = 0;
        status error;
      };
      auto chk = std::make_shared<check>();
      auto recs = std::make_shared<std::vector<wire::key_state_record>>(std::move(content->keys));
      auto effective = std::make_shared<std::shared_ptr<const updater>>();
      fan_out(
          [chk, recs, inner, mp, effective](server_core& core) {
            std::shared_ptr<const updater> upd =
                inner ? (mp ? with_multi_precision(inner) : inner) : core.effective_updater();
            std::lock_guard<std::mutex> g(chk->mu);
            if (!upd) {
              if (chk->error.is_ok())
                chk->error = status{errc::invalid_argument,
                                    "load_optimizer_states: no optimizer is set on the server, "
                                    "and the file has none"};
              return;
            }
            auto r = core.check_states(*recs, upd);
            if (!r) {
              if (chk->error.is_ok()) chk->error = r.error();
              return;
            }
            chk->matched += *r;
          },
          [this, self, chk, recs, inner, mp, reply, file, cfg = content->optimizer] {
            if (!chk->error.is_ok()) return reply(chk->error);
            if (chk->matched != recs->size())
              return reply(
                  status{errc::invalid_argument, "load_optimizer_states: " + file + " has " +
                                                     std::to_string(recs->size() - chk->matched) +
                                                     " key part(s) this server does not hold"});
            if (cfg) {
              std::lock_guard<std::mutex> g(optimizer_mu_);
              optimizer_ = *cfg;
              optimizer_->params.erase("multi_precision");
              multi_precision_ = mp;
            }
            fan_out(
                [recs, inner, mp](server_core& core) {
                  if (inner) {
                    core.set_multi_precision(mp);
                    core.set_updater(inner);
                  }
                  core.restore_states(*recs);
                },
                [reply] { reply(status{}); });
          });
    }).detach();
  }

  std::vector<caf::actor> shards_;
  caf::actor ctl_;
  std::shared_ptr<std::atomic<std::int64_t>> rank_;
  const std::string profile_dir_;  // KVACTOR_PROFILE_DIR; empty: no profile files
  std::shared_ptr<rank_binding> binding_;
  std::mutex optimizer_mu_;
  std::optional<optimizer_config> optimizer_;  // guarded by optimizer_mu_
  bool multi_precision_ = false;               // ditto
  compression::params gc_;                     // ditto
};

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
    auto disp = std::make_shared<dispatcher>(shards, ctl, rank, cfg.profile_dir, binding);
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
    std::promise<result<net::connection_ptr>> connected;
    auto connected_f = connected.get_future();
    const auto started = std::chrono::steady_clock::now();
    rt.connect(cfg.root_host, cfg.root_port, make_identity(cfg, "server", -1), node_caps(cfg),
               sched_h, started + cfg.connect_timeout,
               [&connected](result<net::connection_ptr> r) { connected.set_value(std::move(r)); });
    wait_reporting(connected_f, started, cfg.connect_timeout, "server",
                   "the scheduler at " + cfg.root_host + ":" + std::to_string(cfg.root_port));
    auto conn = connected_f.get();  // the transport answers by the deadline
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
