#include "scheduler_link.hpp"

#include "node_common.hpp"

namespace kvactor::detail {

namespace {

scheduler_event event_of(scheduler_event::kind what, status why) {
  scheduler_event e;
  e.what = what;
  e.why = std::move(why);
  return e;
}

}  // namespace

scheduler_event read_scheduler_message(const std::string& role, const net::message& m) {
  using kind = scheduler_event::kind;
  switch (static_cast<wire::msg>(m.type)) {
    case wire::msg::node_table: {
      auto t = wire::decode<wire::node_table_meta>(m.meta);
      if (!t) return event_of(kind::bad_table, t.error());
      // Without it a server could bind no worker, and a worker prove no rank.
      if (t->rank_key.empty())
        return event_of(kind::bad_table,
                        status{errc::protocol_error, "the node table has no rank key"});
      scheduler_event e;
      e.what = kind::table;
      e.table = std::move(*t);
      return e;
    }
    case wire::msg::node_lost:
      return event_of(kind::lost, node_lost_status(wire::decode<wire::node_lost_meta>(m.meta)));
    case wire::msg::reply: {
      if (role != "worker") break;
      auto e = event_of(kind::reply, reply_status(m));
      e.id = m.id;
      return e;
    }
    default:
      break;
  }
  return event_of(kind::unexpected,
                  status{errc::protocol_error,
                         "unexpected message from the scheduler: type " + wire::type_text(m.type)});
}

status scheduler_lost_status(const status& why) {
  return lost_status("the scheduler", close_cause(why));
}

scheduler_link::scheduler_link(cluster_config cfg, std::string role)
    : cfg_(std::move(cfg)),
      role_(std::move(role)),
      address_(cfg_.root_host + ":" + std::to_string(cfg_.root_port)) {}

status scheduler_link::connect(net::runtime& rt, std::chrono::steady_clock::time_point started,
                               event_fn on_event, lost_fn on_lost) {
  net::handlers h;
  h.on_message = [role = role_, on_event = std::move(on_event)](const net::connection_ptr& c,
                                                                net::message&& m) {
    on_event(c, read_scheduler_message(role, m));
  };
  h.on_close = [on_lost = std::move(on_lost)](const net::connection_ptr&, const status& why) {
    on_lost(scheduler_lost_status(why));
  };
  auto c =
      connect_reporting(rt, cfg_, cfg_.root_host, cfg_.root_port, make_identity(cfg_, role_, -1),
                        std::move(h), started, role_, "the scheduler at " + address_);
  if (!c)
    return status{c.error().code(), "cannot reach the scheduler at " + address_ +
                                        " (DMLC_PS_ROOT_URI:DMLC_PS_ROOT_PORT) within " +
                                        duration_text(cfg_.connect_timeout) + ": " +
                                        c.error().message()};
  conn_ = *c;
  return {};
}

void scheduler_link::register_node(const std::string& host, std::uint16_t port) {
  wire::register_meta reg;
  reg.role = role_;
  reg.host = host;
  reg.port = port;
  reg.rank_hint = cfg_.rank_hint;
  send_control(conn_, wire::msg::register_node, 0, wire::encode(reg));
}

void scheduler_link::say_done(std::int64_t rank, std::function<void(const status&)> on_sent) {
  send_control(conn_, wire::msg::node_done, 0, wire::encode(wire::node_done_meta{role_, rank}), 0,
               std::move(on_sent));
}

void scheduler_link::leave_broken(const status& why) {
  conn_->close(stopped_status(why));
}

}  // namespace kvactor::detail
