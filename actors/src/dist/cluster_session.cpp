#include "cluster_session.hpp"

#include "kvactor/detail/timeline.hpp"
#include "message_limits.hpp"
#include "node_common.hpp"

namespace kvactor::detail {

cluster_session::cluster_session(cluster_config cfg, std::shared_ptr<op_counter> counter)
    : cfg_(std::move(cfg)),
      caps_(node_caps(cfg_)),
      counter_(std::move(counter)),
      scheduler_(cfg_, "worker") {}

void cluster_session::join(std::weak_ptr<cluster_session> self, net::handlers to_servers,
                           bool sync) {
  self_ = std::move(self);
  rt_ = std::make_unique<net::runtime>(1);
  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + cfg_.connect_timeout;
  std::weak_ptr<cluster_session> weak = self_;

  const status reached = scheduler_.connect(
      *rt_, started,
      [weak](const net::connection_ptr& c, scheduler_event&& e) {
        if (auto s = weak.lock()) s->on_scheduler_event(c, std::move(e));
      },
      [weak](const status& why) {
        if (auto s = weak.lock()) s->on_connection_lost(why);
      });
  if (!reached) throw error{reached};
  scheduler_.register_node();
  const std::string& sched_at = scheduler_.address();
  auto table_f = table_.get_future();
  // The scheduler gives up at about the same time and says which nodes are missing: a
  // moment's grace lets its verdict, rather than our bare timeout, reach the user.
  if (!wait_reporting(table_f, started, cfg_.connect_timeout, "worker",
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
  timeline::set_process_name("worker " + std::to_string(rank_));
  num_workers_ = table->num_workers;
  num_servers_ = table->num_servers;

  net::handlers vh = std::move(to_servers);
  auto server_lost = [weak](std::uint32_t s) {
    return [weak, s](const net::connection_ptr& c, const status& why) {
      if (auto self = weak.lock())
        self->on_connection_lost(lost_status(
            "server " + std::to_string(s) + " (" + c->remote_address() + ")", close_cause(why)));
    };
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
    auto f = command_all(wire::command::sync_mode, sync ? "1" : "0");
    f.get();
  }
  barrier().get();
  joined_ = true;
}

template <class MetaOf>
void cluster_session::control(const net::connection_ptr& conn, wire::msg type, MetaOf&& meta_of,
                              control_fn done) {
  auto id = tracker_.track_control(std::move(done));
  if (id) send_control(conn, type, *id, meta_of(*id), 0, refused(*id));
}

future<void> cluster_session::barrier() {
  auto call = begin_call(1);
  barrier([call](const status& s) { call->part_done(s); });
  return call->get_future();
}

void cluster_session::barrier(control_fn done) {
  control(
      scheduler_.connection(), wire::msg::barrier,
      [](std::uint64_t id) { return wire::encode(wire::barrier_meta{id}); }, std::move(done));
}

future<void> cluster_session::command_all(wire::command cmd, const std::string& body) {
  auto meta = wire::encode(wire::command_meta{static_cast<std::uint8_t>(cmd), body});
  if (auto s = check_message(caps_, meta.size(), 0,
                             std::string{"the "} + wire::to_string(cmd) + " command");
      !s)
    return future<void>::ready_with(std::move(s));
  if (servers_.empty()) return future<void>::ready_with(status{});
  auto call = begin_call(servers_.size());
  for (auto& conn : servers_)
    control(
        conn, wire::msg::command, [&meta](std::uint64_t) { return meta; },
        [call](const status& s) { call->part_done(s); });
  return call->get_future();
}

std::function<void(const status&)> cluster_session::refused(std::uint64_t id) {
  std::weak_ptr<cluster_session> weak = self_;
  return [weak, id](const status& s) {
    if (s.code() != errc::invalid_argument) return;
    auto self = weak.lock();
    if (!self) return;
    if (auto done = self->tracker_.take_control(id)) done(s);
  };
}

status cluster_session::reply_of(const net::message& m) {
  return reply_of(reply_status(m));
}

status cluster_session::reply_of(status s) {
  if (s.code() == errc::peer_lost) on_connection_lost(s);
  return s;
}

void cluster_session::on_scheduler_event(const net::connection_ptr& c, scheduler_event&& e) {
  using kind = scheduler_event::kind;
  switch (e.what) {
    case kind::table:
      if (!table_set_.exchange(true)) table_.set_value(std::move(e.table));
      return;
    case kind::bad_table:
      if (!table_set_.exchange(true)) table_.set_value(e.why);
      return;
    case kind::lost:
      if (!table_set_.exchange(true)) table_.set_value(e.why);
      return on_connection_lost(e.why);
    case kind::reply: {
      auto ctl = tracker_.take_control(e.id);
      if (!ctl) return;
      return ctl(reply_of(e.why));  // peer_lost as for a server's reply
    }
    case kind::unexpected:
      c->close(e.why);
  }
}

void cluster_session::on_connection_lost(const status& why) {
  if (closing_) return;
  tracker_.fail_all(why, [&] {
    log_line("worker", (why.code() == errc::peer_lost ? why.message() : why.to_string()) +
                           (joined_ ? "; failing every pending and later operation" : ""));
    if (!table_set_.exchange(true)) table_.set_value(why);
  });
}

void cluster_session::leave() {
  // Only a session that joined takes part in the orderly goodbye: one whose join() threw is
  // being destroyed, so no handler could fail a barrier the scheduler will never answer.
  if (scheduler_.connection() && joined_ && tracker_.broken().is_ok()) {
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
    scheduler_.say_done(rank_, [sent](const status&) { sent->set_value(); });
    sent_f.wait_for(std::chrono::seconds(5));
  } else if (scheduler_.connection()) {
    // Leaving broken: say why ("it stopped: lost server 0 ...").
    const status why = tracker_.broken();
    if (!why.is_ok()) scheduler_.leave_broken(why);
  }
  closing_ = true;
}

void cluster_session::close() {
  rt_.reset();
}

}  // namespace kvactor::detail
