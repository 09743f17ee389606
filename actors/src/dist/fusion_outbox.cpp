#include "fusion_outbox.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <numeric>
#include <string>
#include <tuple>

#include "kvactor/buffer_pool.hpp"
#include "node_common.hpp"

namespace kvactor::detail {

namespace {

// Batches of a worker share one ordering stream per connection, apart from every key part's
// own (part_plan's streams are key hashes; a collision would only add order).
constexpr std::uint64_t fusion_stream = ~std::uint64_t{0};

// What an entry adds to the batch's metadata: its fixed fields and its data meta's, and the
// key's name.
std::size_t meta_bytes_of(const wire::data_meta& d) {
  return 80 + d.key.name.size();
}

}  // namespace

std::vector<std::size_t> fusion_order(const std::vector<std::int32_t>& priorities,
                                      const std::vector<const wire::data_meta*>& metas) {
  std::vector<std::size_t> order(priorities.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  if (std::all_of(priorities.begin(), priorities.end(),
                  [&](std::int32_t p) { return p == priorities.front(); }))
    return order;
  // An entry goes no earlier than a later entry of its part could: it is ranked by the
  // highest priority of itself and its part's later entries, so that a stable sort by rank
  // never swaps two entries of one part.
  using part_key = std::tuple<bool, std::int64_t, std::string, std::uint32_t>;
  std::map<part_key, std::int32_t> highest;
  std::vector<std::int32_t> rank(priorities.size());
  for (std::size_t i = priorities.size(); i-- > 0;) {
    const auto& d = *metas[i];
    auto [it, fresh] =
        highest.emplace(part_key{d.key.is_string, d.key.id, d.key.name, d.part}, priorities[i]);
    if (!fresh) it->second = std::max(it->second, priorities[i]);
    rank[i] = it->second;
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return rank[a] > rank[b]; });
  return order;
}

fusion_outbox::fusion_outbox(fusion_settings s, send_fn send, fail_fn fail)
    : settings_(s), send_(std::move(send)), fail_(std::move(fail)) {}

fusion_outbox::~fusion_outbox() {
  stop();
}

void fusion_outbox::start(std::uint32_t servers) {
  servers_.clear();
  for (std::uint32_t i = 0; i < servers; ++i)
    servers_.push_back(std::make_unique<pending>());
  if (settings_.window.count() > 0 && settings_.key_bytes > 0)
    window_ = std::thread([this] { run_window(); });
}

void fusion_outbox::stop() {
  {
    std::lock_guard<std::mutex> g(window_mu_);
    stopping_ = true;
  }
  window_cv_.notify_all();
  if (window_.joinable()) window_.join();
  flush();
}

void fusion_outbox::add(std::uint32_t server, net::outgoing&& m, wire::data_meta&& d,
                        std::uint64_t weight) {
  auto& p = *servers_.at(server);
  const std::size_t meta = meta_bytes_of(d);
  bool arm = false;
  unsent before, full;
  {
    std::lock_guard<std::mutex> g(p.mu);
    if (!p.entries.empty() &&
        (p.weight + weight > settings_.budget || p.meta_bytes + meta > settings_.max_meta_bytes ||
         p.entries.size() >= wire::max_batch_entries))
      before = send_locked(server, p);
    if (p.entries.empty() && settings_.window.count() > 0) {
      p.due = clock::now() + settings_.window;
      arm = true;
    }
    p.entries.push_back(entry{std::move(m), std::move(d)});
    p.weight += weight;
    p.meta_bytes += meta;
    if (p.weight >= settings_.budget) {
      full = send_locked(server, p);
      arm = false;
    }
    if (arm) {
      // Lock order: a server's, then the window's (the window's thread never holds both).
      std::lock_guard<std::mutex> w(window_mu_);
      if (p.due < next_due_) {
        next_due_ = p.due;
        window_cv_.notify_one();
      }
    }
  }
  report(std::move(before));
  report(std::move(full));
}

void fusion_outbox::report(unsent&& u) {
  for (auto id : u.ids)
    fail_(id, u.why);
}

void fusion_outbox::end_call() {
  if (settings_.window.count() <= 0) flush();
}

void fusion_outbox::flush() {
  for (std::uint32_t s = 0; s < servers_.size(); ++s) {
    auto& p = *servers_[s];
    unsent u;
    {
      std::lock_guard<std::mutex> g(p.mu);
      if (!p.entries.empty()) u = send_locked(s, p);
    }
    report(std::move(u));
  }
}

// Packs the pending requests into one message: their metas in the batch's meta, their
// payloads one after another in its payload. Caller holds p.mu.
fusion_outbox::unsent fusion_outbox::send_locked(std::uint32_t server, pending& p) {
  p.weight = 0;
  p.meta_bytes = 0;
  p.due = clock::time_point::max();
  if (p.entries.size() == 1) {
    // Alone: it leaves as the request it is (no copy; the server may serve it at once). The
    // pending list keeps its room.
    entry e = std::move(p.entries.front());
    p.entries.clear();
    e.m.meta = encode_for_send(e.d);
    e.m.stream = fusion_stream;  // behind the batches before it, which may hold its key
    const std::uint64_t id = e.m.id;
    const status s = send_(server, std::move(e.m));
    if (s.is_ok()) return {};
    return unsent{s, {id}};
  }
  std::vector<entry> es;
  es.reserve(p.entries.capacity());  // swapped in: the next batch starts with this room
  es.swap(p.entries);
  std::vector<std::int32_t> prios;
  std::vector<const wire::data_meta*> metas;
  prios.reserve(es.size());
  metas.reserve(es.size());
  std::uint64_t total = 0;
  std::int32_t top = es.front().m.priority;
  for (const auto& e : es) {
    prios.push_back(e.m.priority);
    metas.push_back(&e.d);
    total += e.m.payload_size;
    top = std::max(top, e.m.priority);
  }
  const auto order = fusion_order(prios, metas);

  std::shared_ptr<buffer> payload;
  status s;
  try {
    if (total) payload = buffer_pool::global().acquire(total);
  } catch (const std::exception& e) {
    s = status{errc::internal, std::string{"no memory for a fused batch: "} + e.what()};
  }
  net::outgoing out;
  if (s.is_ok()) {
    wire::batch_meta meta;
    meta.entries.reserve(es.size());
    char* at = payload ? static_cast<char*>(payload->data()) : nullptr;
    for (std::size_t i : order) {
      auto& e = es[i];
      wire::batch_entry be;
      be.type = e.m.type;
      be.flags = e.m.flags;
      be.id = e.m.id;
      be.priority = e.m.priority;
      be.bytes = e.m.payload_size;
      be.data = std::move(e.d);
      meta.entries.push_back(std::move(be));
      if (e.m.payload_size) {
        std::memcpy(at, e.m.payload, e.m.payload_size);
        at += e.m.payload_size;
      }
    }
    out.type = static_cast<std::uint8_t>(wire::msg::batch);
    out.id = es[order.front()].m.id;
    out.stream = fusion_stream;
    out.priority = top;
    out.meta = encode_for_send(meta);
    attach_pooled(out, std::move(payload), total);
  }
  if (s.is_ok()) s = send_(server, std::move(out));
  if (s.is_ok()) return {};
  std::vector<std::uint64_t> ids;
  ids.reserve(es.size());
  for (const auto& e : es)
    ids.push_back(e.m.id);
  return unsent{s, std::move(ids)};
}

void fusion_outbox::run_window() {
  std::unique_lock<std::mutex> lk(window_mu_);
  while (!stopping_) {
    if (next_due_ == clock::time_point::max())
      window_cv_.wait(lk);
    else
      window_cv_.wait_until(lk, next_due_);
    if (stopping_) break;
    const auto now = clock::now();
    if (now < next_due_) continue;
    next_due_ = clock::time_point::max();
    lk.unlock();
    auto next = clock::time_point::max();
    for (std::uint32_t s = 0; s < servers_.size(); ++s) {
      auto& p = *servers_[s];
      unsent u;
      {
        std::lock_guard<std::mutex> g(p.mu);
        if (p.entries.empty()) continue;
        if (p.due <= now)
          u = send_locked(s, p);
        else
          next = std::min(next, p.due);
      }
      report(std::move(u));
    }
    lk.lock();
    next_due_ = std::min(next_due_, next);
  }
}

}  // namespace kvactor::detail
