#include "cluster_router.hpp"

#include <algorithm>
#include <cstring>

#include "kvactor/detail/compression.hpp"
#include "kvactor/detail/kernels.hpp"
#include "kvactor/detail/recycling_allocator.hpp"
#include "kvactor/detail/timeline.hpp"
#include "message_limits.hpp"
#include "node_common.hpp"

namespace kvactor::detail {

cluster_router::cluster_router(cluster_session& session, std::uint64_t max_payload,
                               std::size_t parallel_threshold, fusion_settings fusion)
    : session_(session),
      tracker_(session.tracker()),
      max_payload_(max_payload),
      parallel_threshold_(parallel_threshold),
      fusion_(
          fusion,
          [this](std::uint32_t server, net::outgoing&& m) {
            return send_message(server, std::move(m), "a fused batch of small keys");
          },
          [this](std::uint64_t id, const status& why) {
            auto pp = tracker_.take_part(id);
            if (pp.op) pp.op->part_done(why);
          }) {}

void cluster_router::start(std::weak_ptr<cluster_router> self, std::size_t reducer_threads) {
  self_ = std::move(self);
  pool_ = std::make_unique<thread_pool>(reducer_threads);
}

void cluster_router::joined() {
  fusion_.start(session_.num_servers());
}

void cluster_router::stop() {
  fusion_.stop();
  pool_.reset();
}

dist_op_ptr cluster_router::make_op(op_kind kind, key_group& g, int priority,
                                    std::shared_ptr<dist_call> call) {
  auto o = std::allocate_shared<dist_op>(recycling_allocator<dist_op>{});
  o->kind = kind;
  o->info = g.info;
  o->priority = priority;
  o->values = std::move(g.values);
  o->outs = std::move(g.outs);
  o->call = std::move(call);
  o->parts =
      plan_parts(*o->info, session_.num_servers(), session_.config().big_array_bound, max_payload_);
  o->lease();
  return o;
}

dist_op_ptr cluster_router::make_rows_push(const sparse_group& g, int priority,
                                           std::shared_ptr<dist_call> call) {
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
  auto o = std::allocate_shared<dist_op>(recycling_allocator<dist_op>{});
  o->kind = op_kind::push;
  o->info = g.info;
  o->priority = priority;
  o->call = std::move(call);
  o->parts =
      plan_parts(*o->info, session_.num_servers(), session_.config().big_array_bound, max_payload_);
  const auto* mp = static_cast<const std::int64_t*>(merged.host_indices().data_unchecked());
  o->sparse_ids.assign(mp, mp + merged.num_rows());
  o->sparse_rows = merged.data();
  return o;
}

void cluster_router::issue(const dist_op_ptr& o, const std::shared_ptr<key_channel>& ch) {
  if (timeline::enabled()) {
    timeline::name_thread("caller");
    o->trace_issued = timeline::now_ns();
  }
  const bool sums = !o->values.empty() && o->values.size() > 1;
  if (!o->values.empty() && !sums) o->source = o->values.front();
  bool async_sum = false;
  if (sums) {
    try {
      o->source = tensor::empty(o->info->shape, o->info->dtype);
    } catch (const std::exception& e) {
      o->parts_left.reset(1);
      o->part_done(
          status{errc::internal, std::string{"no memory to sum the devices: "} + e.what()});
      return;
    }
    async_sum = (o->values.size() + 1) * o->info->nbytes() >= parallel_threshold_;
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
    pool_->submit(
        parts,
        [o, n, parts](std::size_t i) {
          std::size_t b, e;
          split_range(n, parts, i, b, e);
          sum_into(*o, b, e);
        },
        [weak = self_, o, ch] {
          std::lock_guard<std::mutex> g(ch->mu);
          o->ready = true;
          auto self = weak.lock();
          while (!ch->waiting.empty() && ch->waiting.front()->ready) {
            auto next = std::move(ch->waiting.front());
            ch->waiting.pop_front();
            // Without the store, the op's destructor fails it.
            if (self) self->send(next);
          }
          if (auto self = weak.lock()) self->end_call();
        },
        o->priority);
  }
}

void cluster_router::sum_into(dist_op& o, std::size_t b, std::size_t e) {
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

// A part's message without its payload and metadata: type, id, stream and priority.
net::outgoing cluster_router::part_message(const dist_op& o, const part_plan& pp,
                                           std::uint64_t id) {
  net::outgoing m;
  m.type = static_cast<std::uint8_t>(o.wire_type());
  m.id = id;
  m.stream = pp.stream;
  m.priority = o.priority;
  return m;
}

wire::data_meta cluster_router::part_meta(const dist_op& o, const part_plan& pp,
                                          std::uint64_t rows) {
  wire::data_meta meta;
  meta.key = wire::wire_key::from(o.info->user_key);
  meta.part = pp.index;
  meta.num_parts = pp.of;
  meta.numel = pp.count;
  meta.dtype = static_cast<std::uint8_t>(o.info->dtype);
  meta.row = row_size(*o.info);
  meta.rows = rows;
  return meta;
}

// Row-sparse requests: each part gets the rows of it the op names (ids relative to the
// part, then for pushes the rows). Every part gets a push, empty or not, since a dist_sync
// round waits for one push per worker; pulls skip parts they want nothing from.
void cluster_router::send_rows(const dist_op_ptr& o) {
  if (o->trace_issued) o->trace_sent = timeline::now_ns();
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
    o->parts_left.reset(1);
    o->part_done(status{});
    return;
  }
  o->parts_left.reset(sending.size());
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
    auto id = tracker_.track(o, k);
    if (!id) continue;
    net::outgoing m = part_message(*o, pp, *id);
    m.payload = ids_bytes + data_bytes ? buf->data() : nullptr;
    m.payload_size = ids_bytes + data_bytes;
    m.keepalive = buf;
    m.release_inline = true;
    const std::uint64_t answer = push ? 0 : pid.size() * row * esz;
    send_part(*o, pp, *id, std::move(m), pid.size(), ids_bytes + data_bytes + answer);
  }
}

// Puts every part of o on the wire. Caller holds o's key channel lock (or o is new).
void cluster_router::send(const dist_op_ptr& o) {
  if (o->rows_op()) return send_rows(o);
  if (o->trace_issued) o->trace_sent = timeline::now_ns();
  o->parts_left.reset(o->parts.size());
  const std::size_t esz = size_of(o->info->dtype);
  for (std::uint32_t p = 0; p < o->parts.size(); ++p) {
    const auto& pp = o->parts[p];
    auto id = tracker_.track(o, p);
    if (!id) continue;
    net::outgoing m = part_message(*o, pp, *id);
    if (o->kind != op_kind::pull && o->kind != op_kind::broadcast) {
      m.payload = static_cast<const char*>(o->source.data_unchecked()) + pp.offset * esz;
      m.payload_size = pp.count * esz;
      // The payload's memory is all the transport needs kept; releasing it only returns a
      // buffer to the pool, so it may happen on this thread.
      m.keepalive = o->source.storage_ptr();
      m.release_inline = true;
      if (o->gc.type != compression::kind::none && o->channel) quantize(*o, pp, m);
    }
    const std::int64_t t0 = o->trace_issued ? timeline::now_ns() : 0;
    const auto bytes = static_cast<std::int64_t>(m.payload_size);
    send_part(*o, pp, *id, std::move(m), 0, pp.count * esz);
    if (t0)
      timeline::span("worker", "send", t0, timeline::now_ns(),
                     timeline::args{o->info->name()}
                         .with("part", pp.index)
                         .with("server", pp.server)
                         .with("bytes", bytes));
  }
}

// Quantizes a push part with its key's residual (the channel lock is held: one sender at a
// time); a new compression setting starts from a fresh residual.
void cluster_router::quantize(const dist_op& o, const part_plan& pp, net::outgoing& m) {
  auto& ch = *o.channel;
  if (!ch.residual.defined() || ch.gc_version != o.gc_version) {
    ch.residual = tensor::zeros(o.info->shape, dtype::float32);
    ch.gc_version = o.gc_version;
  }
  const std::size_t w = compression::words(o.gc.type, pp.count);
  auto buf = buffer_pool::global().acquire(w * 4);
  compression::quantize(o.gc, static_cast<const float*>(o.source.data_unchecked()) + pp.offset,
                        static_cast<float*>(ch.residual.data_unchecked()) + pp.offset,
                        static_cast<std::uint32_t*>(buf->data()), pp.count, 0, w);
  m.keepalive = buf;
  m.payload = buf->data();
  m.payload_size = w * 4;
  m.flags |= wire::flag_compressed;
}

// Sends a tracked part, in its server's batch when its key is small; one the transport would
// refuse fails instead.
void cluster_router::send_part(const dist_op& o, const part_plan& pp, std::uint64_t id,
                               net::outgoing&& m, std::uint64_t rows, std::uint64_t weight) {
  if (fusion_.fuses(o.info->nbytes(), o.parts.size()))
    return fusion_.add(pp.server, std::move(m), part_meta(o, pp, rows), weight);
  m.meta = encode_for_send(part_meta(o, pp, rows));
  auto s = send_message(pp.server, std::move(m), "a request");
  if (s.is_ok()) return;
  auto ref = tracker_.take_part(id);
  if (ref.op) ref.op->part_done(s);
}

// Checked here: the transport reports a refusal only to on_sent, which the data path does not
// pay for.
status cluster_router::send_message(std::uint32_t server, net::outgoing&& m, const char* what) {
  auto s = check_message(session_.caps(), m.meta.size(), m.payload_size, what);
  if (s.is_ok()) session_.server(server)->send(std::move(m));
  return s;
}

void* cluster_router::destination(const net::message_head& h) {
  // A batch reply's values land in a buffer first: each goes to its own outputs.
  if (h.type != static_cast<std::uint8_t>(wire::msg::reply)) return nullptr;
  return tracker_.with_part(h.id, [&](const request_tracker::part_ref* p) -> void* {
    if (!p) return nullptr;
    const auto& o = *p->op;
    if (!o.pull_like() || o.outs.empty()) return nullptr;
    const auto& pp = o.parts[p->part];
    const std::size_t esz = size_of(o.info->dtype);
    if (h.payload_size != pp.count * esz) return nullptr;
    return static_cast<char*>(o.outs.front().data_unchecked()) + pp.offset * esz;
  });
}

void cluster_router::on_server_message(const net::connection_ptr& c, net::message&& m) {
  const auto type = static_cast<wire::msg>(m.type);
  if (type == wire::msg::batch_reply) return on_batch_reply(c, m);
  if (type != wire::msg::reply) {
    c->close(status{errc::protocol_error,
                    "a server sent a request to a worker: type " + wire::type_text(m.type)});
    return;
  }
  auto t = tracker_.take(m.id);
  if (!t.part.op && !t.control) return;  // failed and forgotten already
  status s = session_.reply_of(m);
  if (t.control) return t.control(s);
  on_part_reply(std::move(t.part), std::move(s), m.payload_data, m.payload_size);
}

// The answers to a fused batch's requests, each under its request's id, their values one
// after another in the payload. A batch reply that does not add up closes the connection:
// which of its answers is right cannot be told.
void cluster_router::on_batch_reply(const net::connection_ptr& c, const net::message& m) {
  auto meta = wire::decode<wire::batch_reply_meta>(m.meta);
  if (!meta) return c->close(meta.error());
  const std::uint64_t total = wire::entries_bytes(*meta);
  if (total != m.payload_size)
    return c->close(status{errc::protocol_error,
                           "a batch reply's entries name " + std::to_string(total) +
                               " bytes, its payload has " + std::to_string(m.payload_size)});
  const auto* at = static_cast<const char*>(m.payload_data);
  for (auto& e : meta->entries) {
    auto part = tracker_.take_part(e.id);
    if (part.op)
      on_part_reply(std::move(part), session_.reply_of(reply_status(e.code, std::move(e.message))),
                    at, e.bytes);
    at += e.bytes;
  }
}

void cluster_router::on_part_reply(request_tracker::part_ref&& t, status s, const void* data,
                                   std::uint64_t bytes) {
  auto& o = *t.op;
  const std::int64_t t0 = o.trace_issued ? timeline::now_ns() : 0;
  if (s.is_ok() && o.kind == op_kind::row_pull)
    s = scatter_rows(o, t.part, data, bytes);
  else if (s.is_ok() && o.pull_like() && !o.outs.empty())
    s = copy_pulled(o, t.part, data, bytes);
  if (t0) {
    // The part from the wire to its reply (the server's time and the network's), then this
    // thread's work on the reply.
    timeline::name_thread("net I/O", 2);
    const auto& pp = o.parts[t.part];
    timeline::async_span("worker", "in flight", o.trace_sent, t0,
                         timeline::args{o.info->name()}
                             .with("part", pp.index)
                             .with("server", pp.server)
                             .with("bytes", static_cast<std::int64_t>(bytes)));
    timeline::span("worker", "reply", t0, timeline::now_ns(),
                   timeline::args{o.info->name()}.with("part", pp.index));
  }
  o.part_done(s);
}

void dist_op::finish_traced() {
  const std::int64_t t0 = timeline::now_ns();
  if (call) call->part_done(parts_left.first_error());
  const std::int64_t t1 = timeline::now_ns();
  // The op from issue to its last reply, then the completion of its part of the call (the
  // last part completes the user's future, and runs what waits on it).
  timeline::async_span(
      "worker", to_string(kind), trace_issued, t0,
      timeline::args{info->name()}.with("bytes", static_cast<std::int64_t>(info->nbytes())));
  timeline::span("worker", "complete", t0, t1, timeline::args{info->name()});
}

// The part's rows, in the order of the ids it was sent; each output takes those it wants.
status cluster_router::scatter_rows(const dist_op& o, std::uint32_t part, const void* data,
                                    std::uint64_t size) {
  const auto& pid = o.part_ids[part];
  const std::size_t bytes = row_size(*o.info) * size_of(o.info->dtype);
  if (size != pid.size() * bytes)
    return status{errc::protocol_error,
                  "server answered the wrong number of rows for key " + o.info->name()};
  for (std::size_t j = 0; j < o.outs.size(); ++j) {
    const auto& w = o.want.size() == 1 ? o.want[0] : o.want[j];
    char* dst = static_cast<char*>(o.outs[j].data_unchecked());
    std::size_t a = 0;
    for (std::size_t i = 0; i < pid.size(); ++i) {
      while (a < w.size() && w[a] < pid[i])
        ++a;
      if (a < w.size() && w[a] == pid[i])
        std::memcpy(dst + (o.compact_rows ? a : static_cast<std::size_t>(pid[i])) * bytes,
                    static_cast<const char*>(data) + i * bytes, bytes);
    }
  }
  return status{};
}

// A pulled part: in the first output already when destination() placed it there, then
// copied to the other outputs.
status cluster_router::copy_pulled(const dist_op& o, std::uint32_t part, const void* data,
                                   std::uint64_t size) {
  const auto& pp = o.parts[part];
  const std::size_t esz = size_of(o.info->dtype);
  const std::size_t bytes = pp.count * esz;
  char* dst = static_cast<char*>(o.outs.front().data_unchecked()) + pp.offset * esz;
  if (size != bytes)
    return status{errc::protocol_error, "server answered " + std::to_string(size) +
                                            " bytes for key " + o.info->name() + ", expected " +
                                            std::to_string(bytes)};
  if (data != dst) std::memcpy(dst, data, bytes);
  for (std::size_t j = 1; j < o.outs.size(); ++j)
    std::memcpy(static_cast<char*>(o.outs[j].data_unchecked()) + pp.offset * esz, dst, bytes);
  return status{};
}

}  // namespace kvactor::detail
