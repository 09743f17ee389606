// dispatcher's commands (server_dispatch.hpp): checked on the I/O thread, applied on every
// shard, answered after the last; files only where server_files.hpp allows.
#include <caf/send.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "../multi_precision.hpp"
#include "../optimizers.hpp"
#include "kvactor/serialization/optimizer_config.hpp"
#include "kvactor/serialization/optimizer_states.hpp"
#include "node_common.hpp"
#include "server_dispatch.hpp"
#include "server_files.hpp"
#include "server_messages.hpp"

namespace kvactor::detail {
namespace {

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

// The profile as one JSON line.
std::vector<std::uint8_t> profile_json(const server_profile& p) {
  const char* names[] = {"init", "push", "pull", "pushpull"};
  std::string out = "{\"pid\":" + std::to_string(::getpid());
  for (int i = 0; i < 4; ++i)
    out += ",\"" + std::string(names[i]) + "\":{\"count\":" + std::to_string(p.count[i]) +
           ",\"bytes_in\":" + std::to_string(p.bytes_in[i]) + "}";
  out += ",\"busy_ns\":" + std::to_string(p.busy_ns) + "}\n";
  return {out.begin(), out.end()};
}

}  // namespace

void dispatcher::command(const net::connection_ptr& c, const net::message& m, std::int64_t worker) {
  auto reply = [c, id = m.id, stream = m.stream](const status& s) {
    send_reply(c, id, stream, 0, s, nullptr);
  };
  auto cmd = wire::decode<wire::command_meta>(m.meta);
  if (!cmd) return reply(cmd.error());
  command_body apply;
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
      apply = cmd::set_updater{std::move(upd)};
      break;
    }
    case wire::command::sync_mode: {
      if (cmd->body != "0" && cmd->body != "1")
        return reply(status{errc::invalid_argument, "sync_mode takes \"1\" or \"0\""});
      const bool sync = cmd->body == "1";
      apply = cmd::set_sync{sync};
      break;
    }
    case wire::command::stop_server: {
      apply = cmd::noop{};
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
      apply = cmd::set_multi_precision{on};
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
      apply = cmd::set_compression{compression_config{type, threshold}};
      break;
    }
    case wire::command::set_profiler_params: {
      auto kv = parse_body(cmd->body);
      if (!kv) return reply(kv.error());
      auto state = cmd::profiler::change::none;
      std::string file;
      for (const auto& [k, v] : *kv) {
        if (k == "state" && (v == "run" || v == "stop"))
          state = v == "run" ? cmd::profiler::change::run : cmd::profiler::change::stop;
        else if (k == "filename" && !v.empty())
          file = v;
        else
          return reply(status{
              errc::invalid_argument,
              "profiler parameters are state=run|stop and filename=PATH; got " + k + "=" + v});
      }
      if (!file.empty()) {  // checked before anything changes
        auto path =
            server_file_path(server_file_kind::profile, dirs_.profiles, file, rank_->load());
        if (!path) return reply(path.error());
        file = *path;
      }
      // Profiles of all shards add up; with a filename they are written when all shards
      // have answered.
      auto total = std::make_shared<profile_total>();
      apply = cmd::profiler{state, total};
      if (!file.empty()) {
        // Every server writes its own (server_files.hpp), before it answers.
        finish = [total, file] { return write_server_file(file, profile_json(total->sum())); };
      }
      break;
    }
    case wire::command::save_states: {
      if (cmd->body.size() < 2 || (cmd->body[0] != '0' && cmd->body[0] != '1'))
        return reply(status{errc::invalid_argument, "save_states: bad command body"});
      const bool dump = cmd->body[0] == '1';
      auto file = server_file_path(server_file_kind::states, dirs_.states, cmd->body.substr(1),
                                   rank_->load());
      if (!file) return reply(file.error());
      auto records = std::make_shared<states_total>();
      apply = cmd::snapshot_states{records};
      std::optional<optimizer_config> cfg;
      if (dump) {
        cfg = current_optimizer();
        if (!cfg)
          return reply(
              status{errc::invalid_argument, "save_optimizer_states: no optimizer is set to dump"});
      }
      finish = [records, cfg, file = *file] {
        wire::states_file out;
        out.optimizer = cfg;
        out.keys = records->take();
        return write_server_file(file, wire::encode(out));
      };
      break;
    }
    case wire::command::load_states: {
      if (cmd->body.empty()) return reply(status{errc::invalid_argument, "load_states: no file"});
      auto file =
          server_file_path(server_file_kind::states, dirs_.states, cmd->body, rank_->load());
      if (!file) return reply(file.error());
      return load_states(reply, *file);
    }
    case wire::command::bind_rank:
      return reply(status{errc::invalid_argument, "this connection's rank is bound already"});
    case wire::command::worker_done:
      apply = cmd::worker_left{worker};
      break;
    default:
      return reply(
          status{errc::invalid_argument, "unknown server command " + std::to_string(cmd->cmd)});
  }
  fan_out(apply, [reply, finish, after] {
    reply(finish ? finish() : status{});
    if (after) after();
  });
}

std::optional<optimizer_config> dispatcher::current_optimizer() {
  std::lock_guard<std::mutex> g(optimizer_mu_);
  auto c = optimizer_;
  if (c && multi_precision_) c->params["multi_precision"] = 1;
  return c;
}

// Reads the file off the I/O thread, checks every record on every shard, and installs
// them only if all fit.
void dispatcher::load_states(const reply_fn& reply, const std::string& file) {
  std::thread([this, reply, file, self = shared_from_this()] {
    const wire::states_caps caps;
    auto bytes = read_server_file(file, caps.max_bytes);
    if (!bytes) return reply(bytes.error());
    auto content = wire::decode_states(bytes->data(), bytes->size(), caps);
    if (!content)
      return reply(status{content.error().code(), file + ": " + content.error().message()});
    std::shared_ptr<const updater> inner;
    bool mp = false;
    std::optional<optimizer_config> cfg;  // the file's, without multi_precision
    if (content->optimizer) {
      auto split = split_multi_precision(*content->optimizer);
      if (!split) return reply(split.error());
      inner = std::move(split->inner_updater);
      mp = split->multi_precision;
      cfg = std::move(split->inner);
    }
    auto chk = std::make_shared<states_check>();
    auto recs =
        std::make_shared<const std::vector<wire::key_state_record>>(std::move(content->keys));
    fan_out(cmd::check_states{recs, inner, mp, chk},
            [this, self, chk, recs, inner, mp, reply, file, cfg] {
              if (auto s = chk->error(); !s.is_ok()) return reply(s);
              if (chk->matched() != recs->size())
                return reply(status{errc::invalid_argument,
                                    "load_optimizer_states: " + file + " has " +
                                        std::to_string(recs->size() - chk->matched()) +
                                        " key part(s) this server does not hold"});
              if (cfg) {
                std::lock_guard<std::mutex> g(optimizer_mu_);
                optimizer_ = cfg;
                multi_precision_ = mp;
              }
              fan_out(cmd::restore_states{recs, inner, mp}, [reply] { reply(status{}); });
            });
  }).detach();
}

}  // namespace kvactor::detail
