#include "server_dispatch.hpp"

#include <caf/send.hpp>

#include <cstring>
#include <mutex>

#include "kvactor/detail/recycling_allocator.hpp"
#include "kvactor/detail/timeline.hpp"
#include "message_limits.hpp"
#include "node_common.hpp"
#include "part_plan.hpp"
#include "push_intake.hpp"
#include "reply_batch.hpp"
#include "server_messages.hpp"

namespace kvactor::detail {

dispatcher::dispatcher(std::vector<caf::actor> shards,
                       std::vector<std::shared_ptr<server_gate>> gates, caf::actor ctl,
                       std::shared_ptr<std::atomic<std::int64_t>> rank, server_file_dirs dirs,
                       std::shared_ptr<rank_binding> binding, const net::caps& caps)
    : shards_(std::move(shards)),
      gates_(std::move(gates)),
      ctl_(std::move(ctl)),
      rank_(std::move(rank)),
      dirs_(std::move(dirs)),
      binding_(std::move(binding)),
      max_reply_meta_(caps.max_meta_bytes - 1024),
      max_reply_bytes_(max_payload_bytes(caps)) {}

void dispatcher::on_message(const net::connection_ptr& c, net::message&& m) {
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
    case wire::msg::batch:
      return batch(c, m, worker);
    case wire::msg::command:
      return command(c, m, worker);
    default:
      c->close(status{errc::protocol_error, "unexpected message type " + wire::type_text(m.type)});
  }
}

void dispatcher::connection_closed(const net::connection_ptr& c) {
  binding_->forget(c.get());
}

// A worker connection's first request must be bind_rank with the token the scheduler gave
// it; anything else, a wrong token or a rank bound already closes the connection.
void dispatcher::bind(const net::connection_ptr& c, const net::message& m) {
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
        log_line("server", "refused a connection from " + c->remote_address() + ": " + s.message());
        c->close(s);
      });
}

std::shared_ptr<server_request> dispatcher::request_of(const net::connection_ptr& c,
                                                       const net::message& m, wire::msg type,
                                                       std::int64_t worker) {
  auto meta = wire::decode<wire::data_meta>(m.meta);
  if (!meta) {
    send_reply(c, m.id, m.stream, m.priority, meta.error(), nullptr);
    return nullptr;
  }
  return make_request(c, std::move(*meta), type, worker, m.id, m.stream, m.priority);
}

namespace {

// A request answered on its own (not in a batch): where its reply goes.
struct addressed_request : server_request {
  net::connection_ptr conn;
  std::uint64_t stream = 0;
};

}  // namespace

std::shared_ptr<server_request> dispatcher::make_request(const net::connection_ptr& c,
                                                         wire::data_meta meta, wire::msg type,
                                                         std::int64_t worker, std::uint64_t id,
                                                         std::uint64_t stream, std::int32_t prio) {
  auto r = std::allocate_shared<addressed_request>(recycling_allocator<addressed_request>{});
  r->kind = type;
  r->meta = std::move(meta);
  r->worker = worker;
  r->conn = c;
  r->id = id;
  r->stream = stream;
  r->priority = prio;
  if (timeline::enabled()) {
    timeline::name_thread("net I/O", 2);
    r->trace_received = timeline::now_ns();
  }
  // The request owns its reply function, so `req` outlives every call of it; one pointer
  // fits the function without an allocation.
  r->reply = [req = r.get()](const status& s, const tensor* v) {
    const std::int64_t t0 = req->trace_received ? timeline::now_ns() : 0;
    send_reply(req->conn, req->id, req->stream, req->priority, s, v);
    if (t0) trace_reply(*req, t0, v);
  };
  return r;
}

// Only what a round can take as it arrives: a dense, uncompressed push or pushpull of a size
// that matches its meta, above what an I/O thread serves itself, from a bound worker. The
// shard's gate is only tried, never waited for (server_gate.hpp, try_for).
net::payload_sink_ptr dispatcher::sink_for(const net::connection_ptr& c,
                                           const net::message_head& h) {
  const auto type = static_cast<wire::msg>(h.type);
  if ((type != wire::msg::push && type != wire::msg::pushpull) ||
      (h.flags & wire::flag_compressed) || h.payload_size <= server_gate::inline_bytes ||
      c->peer().role != "worker")
    return nullptr;
  const std::int64_t worker = binding_->rank_of(c.get());
  if (worker < 0) return nullptr;
  auto meta = wire::decode<wire::data_meta>(*h.meta);
  if (!meta || meta->dtype > static_cast<std::uint8_t>(dtype::uint8) || meta->numel == 0 ||
      meta->numel > (std::uint64_t{1} << 40) ||
      meta->numel * size_of(static_cast<dtype>(meta->dtype)) != h.payload_size)
    return nullptr;
  auto r = make_request(c, std::move(*meta), type, worker, h.id, h.stream, h.priority);
  r->wire_bytes = h.payload_size;
  const std::size_t s = shard_of(*r);
  if (!gates_[s]->streams.load(std::memory_order_acquire)) return nullptr;
  std::weak_ptr<dispatcher> weak = weak_from_this();
  // A busy shard, or a push that belongs to the next round, holds the connection back (TCP
  // and the peer's slots keep its bytes) and is asked again as the transport offers the
  // slice again: a server holds no push ahead of its round.
  auto open = [weak, s](const server_request_ptr& req) {
    using answer = server_core::intake_answer;
    auto self = weak.lock();
    if (!self) return push_sink::open_result::refused;
    auto held = self->gates_[s]->try_for(req->worker, req->route);
    if (!held) return push_sink::open_result::busy;
    const answer a = self->gates_[s]->core->open_intake(req);
    return a == answer::opened        ? push_sink::open_result::opened
           : a == answer::after_round ? push_sink::open_result::busy
                                      : push_sink::open_result::refused;
  };
  // Where the round says never at once, the transport receives the push whole (no copy).
  if (open(r) == push_sink::open_result::refused) return nullptr;
  return std::make_shared<push_sink>(
      std::move(r),
      [weak](server_request_ptr done) {
        if (auto self = weak.lock()) self->to_shard(std::move(done));
      },
      std::move(open));
}

// A push that was summed into its round as it arrived: to its shard, to count in the round.
void dispatcher::streamed(const net::connection_ptr& c, const net::message& m) {
  auto sink = std::dynamic_pointer_cast<push_sink>(m.sink);
  if (!sink) return c->close(status{errc::internal, "a payload sink this server did not make"});
  sink->finish();
}

// The timeline: the reply's sending (this thread's work), and the request's life on this
// server from arrival to its reply.
void dispatcher::trace_reply(const server_request& r, std::int64_t t0, const tensor* value) {
  const std::int64_t t1 = timeline::now_ns();
  timeline::name_thread("actor", 2);  // replies are sent from the shards
  auto a = timeline::args{r.meta.key.to_key().to_string()}
               .with("part", r.meta.part)
               .with("worker", r.worker)
               .with("bytes", value ? static_cast<std::int64_t>(value->nbytes()) : 0);
  timeline::span("server", "reply", t0, t1, a);
  timeline::async_span("server", wire::to_string(r.kind), r.trace_received, t1, std::move(a));
}

std::size_t dispatcher::shard_of(server_request& r) const {
  r.route = part_hash(r.meta.key.to_key().hash(), r.meta.part);
  return r.route % shards_.size();
}

void dispatcher::post(std::size_t s, server_request_ptr r) {
  gates_[s]->sent(server_gate::count_for(r->worker, r->route));
  caf::anon_send(shards_[s], std::move(r));
}

void dispatcher::post(std::size_t s, shard_batch b) {
  for (std::size_t i = 0; i < b.requests.size(); ++i)
    gates_[s]->sent(server_gate::count_for(b.requests[i]->worker, b.requests[i]->route), i == 0);
  caf::anon_send(shards_[s], std::move(b));
}

void dispatcher::post(std::size_t s, shard_command c) {
  gates_[s]->sent(server_gate::command_count);
  caf::anon_send(shards_[s], std::move(c));
}

// Even a refused push goes to its shard, where it takes its place in the round.
void dispatcher::to_shard(std::shared_ptr<server_request> r) {
  const std::size_t s = shard_of(*r);
  if (auto held = gates_[s]->try_here(*r)) {
    gates_[s]->core->handle(std::move(r));
    return;
  }
  post(s, std::move(r));
}

void dispatcher::data(const net::connection_ptr& c, net::message&& m, wire::msg type,
                      std::int64_t worker) {
  if (m.sink) return streamed(c, m);
  auto r = request_of(c, m, type, worker);
  if (!r) return;
  const std::int64_t t0 = r->trace_received;
  const auto bytes = static_cast<std::int64_t>(m.payload_size);
  if (auto s = decode_payload(r.get(), m); !s) r->rejected = s;
  if (t0) trace_receive(*r, t0, bytes);
  to_shard(std::move(r));
}

// The timeline: this thread's work on a received request (decoding its payload), up to its
// hand-over to the shard.
void dispatcher::trace_receive(const server_request& r, std::int64_t t0, std::int64_t bytes) {
  timeline::span("server", "receive", t0, timeline::now_ns(),
                 timeline::args{r.meta.key.to_key().to_string()}
                     .with("part", r.meta.part)
                     .with("worker", r.worker)
                     .with("bytes", bytes));
}

// The payload of an init, push or pushpull as the flat tensor r->payload (decompressed).
status dispatcher::decode_payload(server_request* r, net::message& m) {
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
                            static_cast<float*>(r->payload.data_unchecked()), r->meta.numel, 0, w);
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
void dispatcher::rows(const net::connection_ptr& c, net::message&& m, wire::msg type,
                      std::int64_t worker) {
  auto r = request_of(c, m, type, worker);
  if (!r) return;
  r->rejected = decode_rows(r.get(), m);
  if (r->rejected.is_ok() && r->trace_received)
    trace_receive(*r, r->trace_received, static_cast<std::int64_t>(m.payload_size));
  to_shard(std::move(r));
}

status dispatcher::decode_rows(server_request* r, const net::message& m) {
  if (r->meta.dtype > static_cast<std::uint8_t>(dtype::uint8))
    return status{errc::protocol_error, "bad element type"};
  const auto t = static_cast<dtype>(r->meta.dtype);
  const std::uint64_t ids_bytes = r->meta.rows * 8;
  const std::uint64_t data_bytes =
      r->kind == wire::msg::push_rows ? r->meta.rows * r->meta.row * size_of(t) : 0;
  if (m.payload_size != ids_bytes + data_bytes)
    return status{errc::protocol_error, "row payload does not match its metadata"};
  try {
    r->row_ids.resize(static_cast<std::size_t>(r->meta.rows));
    if (ids_bytes) std::memcpy(r->row_ids.data(), m.payload_data, ids_bytes);
    if (data_bytes)
      r->row_data = tensor::from_bytes(
          static_cast<const char*>(m.payload_data) + ids_bytes,
          {static_cast<std::int64_t>(r->meta.rows), static_cast<std::int64_t>(r->meta.row)}, t);
  } catch (const std::exception& e) {
    return status{errc::internal, e.what()};
  }
  return {};
}

// A fused batch: each entry becomes the request it stands for, with its answer gathered by the
// batch; each shard gets its entries as one message, in the batch's order, or applies them on
// this thread when it is idle and they all may run here (server_gate.hpp). A batch whose
// metadata does not decode or whose entries do not add up to its payload closes the
// connection: its requests' ids cannot be trusted to answer them.
void dispatcher::batch(const net::connection_ptr& c, net::message& m, std::int64_t worker) {
  auto meta = wire::decode<wire::batch_meta>(m.meta);
  if (!meta) return c->close(meta.error());
  const std::uint64_t total = wire::entries_bytes(*meta);
  if (total != m.payload_size)
    return c->close(status{errc::protocol_error, "a batch's entries name " + std::to_string(total) +
                                                     " bytes, its payload has " +
                                                     std::to_string(m.payload_size)});
  const std::int64_t t0 = timeline::enabled() ? timeline::now_ns() : 0;
  if (t0) timeline::name_thread("net I/O", 2);
  auto replies = std::make_shared<reply_batch>(c, m.stream, max_reply_meta_, max_reply_bytes_);
  std::vector<shard_batch> by_shard(shards_.size());
  const auto* at = static_cast<const char*>(m.payload_data);
  for (auto& e : meta->entries) {
    auto r = std::allocate_shared<server_request>(recycling_allocator<server_request>{});
    r->kind = static_cast<wire::msg>(e.type);
    r->meta = std::move(e.data);
    r->worker = worker;
    r->id = e.id;
    r->priority = e.priority;
    r->batch = replies;
    r->trace_received = t0;
    // The request owns its reply function; one pointer fits it without an allocation.
    r->reply = [req = r.get()](const status& s, const tensor* v) {
      const std::int64_t t1 = req->trace_received ? timeline::now_ns() : 0;
      req->batch->reply(*req, s, v);
      if (t1) trace_reply(*req, t1, v);
    };
    net::message view;
    view.flags = e.flags;
    view.payload_data = const_cast<char*>(at);
    view.payload_size = e.bytes;
    at += e.bytes;
    const bool rows = r->kind == wire::msg::push_rows || r->kind == wire::msg::pull_rows;
    if (auto s = rows ? decode_rows(r.get(), view) : decode_payload(r.get(), view); !s)
      r->rejected = s;
    by_shard[shard_of(*r)].requests.push_back(std::move(r));
  }
  std::size_t shards = 0;
  for (const auto& b : by_shard)
    shards += b.requests.empty() ? 0 : 1;
  replies->expect(shards, meta->entries.size());
  if (t0)
    timeline::span("server", "receive batch", t0, timeline::now_ns(),
                   timeline::args{"batch"}
                       .with("requests", static_cast<std::int64_t>(meta->entries.size()))
                       .with("worker", worker)
                       .with("bytes", static_cast<std::int64_t>(m.payload_size)));
  for (std::size_t s = 0; s < by_shard.size(); ++s) {
    if (by_shard[s].requests.empty()) continue;
    if (auto held = gates_[s]->try_here(by_shard[s].requests)) {
      // As the shard actor applies a share (server.cpp), on this thread.
      {
        reply_batch::applying scope(*replies);
        for (auto& r : by_shard[s].requests)
          gates_[s]->core->handle(std::move(r));
      }
      replies->shard_done();
      continue;
    }
    by_shard[s].replies = replies;
    post(s, std::move(by_shard[s]));
  }
}

void dispatcher::fan_out(const command_body& what, std::function<void()> done) {
  auto ack = std::make_shared<command_ack>(shards_.size(), std::move(done));
  for (std::size_t s = 0; s < shards_.size(); ++s)
    post(s, shard_command{what, ack});
}

}  // namespace kvactor::detail
