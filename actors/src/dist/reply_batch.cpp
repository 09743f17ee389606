#include "reply_batch.hpp"

#include <algorithm>
#include <cstring>
#include <new>

#include "kvactor/buffer_pool.hpp"
#include "kvactor/serialization/protocol.hpp"
#include "message_limits.hpp"
#include "node_common.hpp"

namespace kvactor::detail {

reply_batch::reply_batch(net::connection_ptr c, std::uint64_t stream, std::size_t max_meta,
                         std::uint64_t max_payload)
    : conn_(std::move(c)), stream_(stream), max_meta_(max_meta), max_payload_(max_payload) {}

namespace {
// The scope of the batch share a shard applies on this thread, if any.
thread_local reply_batch::applying* applying_now = nullptr;
}  // namespace

reply_batch::applying::applying(reply_batch& b) noexcept : batch_(b), previous_(applying_now) {
  applying_now = this;
  // The room expect() reserved, for the first share that comes.
  std::lock_guard<std::mutex> g(b.mu_);
  if (b.gathered_.empty()) own_.swap(b.gathered_);
}

reply_batch::applying::~applying() {
  applying_now = previous_;
  try {
    std::lock_guard<std::mutex> g(batch_.mu_);
    if (batch_.open_.load(std::memory_order_relaxed)) {
      // Room first: nothing is moved unless everything fits.
      batch_.gathered_.reserve(batch_.gathered_.size() + own_.size());
      batch_.late_.reserve(batch_.late_.size() + late_.size());
      if (batch_.gathered_.empty())
        batch_.gathered_.swap(own_);
      else
        for (auto& a : own_)
          batch_.gathered_.push_back(std::move(a));
      for (auto& l : late_)
        batch_.late_.push_back(std::move(l));
      return;
    }
  } catch (const std::bad_alloc&) {
    // No room to hand them over: they leave now, apart from the batch's other answers.
  }
  // Or the batch left before this scope closed (not how shards use it).
  batch_.send_all(own_, late_);
}

void reply_batch::applying::add_late(const net::connection_ptr& c, std::uint64_t stream,
                                     answer&& a) {
  for (auto& l : late_)
    if (l.conn == c && l.stream == stream) {
      l.answers.push_back(std::move(a));
      return;
    }
  late_.push_back(late_group{c, stream, {}});
  late_.back().answers.push_back(std::move(a));
}

reply_batch::~reply_batch() {
  std::vector<answer> own;
  std::vector<late_group> late;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!open_.load(std::memory_order_relaxed)) return;
    open_.store(false, std::memory_order_release);
    own.swap(gathered_);
    late.swap(late_);
  }
  send_all(own, late);
}

reply_batch::answer reply_batch::answer_of(const server_request& r, const status& s,
                                           const tensor* value) {
  return answer{r.id, r.priority, s, value && value->defined() ? *value : tensor{}};
}

void reply_batch::reply(const server_request& r, const status& s, const tensor* value) {
  applying* now = applying_now;
  if (now && &now->batch_ == this) {
    now->own_.push_back(answer_of(r, s, value));
    return;
  }
  if (open_.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> g(mu_);
    if (open_.load(std::memory_order_relaxed)) {
      gathered_.push_back(answer_of(r, s, value));
      return;
    }
  }
  // A late answer: with the batch being applied on this thread, or alone.
  if (now) {
    now->add_late(conn_, stream_, answer_of(r, s, value));
    return;
  }
  send_reply(conn_, r.id, stream_, r.priority, s, value);
}

void reply_batch::shard_done() {
  if (!left_.done_one(status{})) return;
  std::vector<answer> own;
  std::vector<late_group> late;
  {
    std::lock_guard<std::mutex> g(mu_);
    open_.store(false, std::memory_order_release);
    own.swap(gathered_);
    late.swap(late_);
  }
  send_all(own, late);
}

void reply_batch::send_all(std::vector<answer>& own, std::vector<late_group>& late) {
  if (!own.empty()) send(conn_, stream_, own);
  for (auto& l : late)
    send(l.conn, l.stream, l.answers);
}

// As few batch_reply messages as the caps allow, each its answers' metas and their values one
// after another.
void reply_batch::send(const net::connection_ptr& c, std::uint64_t stream,
                       std::vector<answer>& answers) {
  std::size_t i = 0;
  while (i < answers.size()) {
    std::size_t j = i, meta = 64;
    std::uint64_t bytes = 0;
    std::int32_t top = answers[i].priority;
    for (; j < answers.size(); ++j) {
      const auto& a = answers[j];
      const std::size_t m = 32 + std::min(a.s.message().size(), wire::max_string_bytes);
      const std::uint64_t b = a.value.defined() ? a.value.nbytes() : 0;
      if (j > i && (meta + m > max_meta_ || bytes + b > max_payload_)) break;
      meta += m;
      bytes += b;
      top = std::max(top, a.priority);
    }
    std::shared_ptr<buffer> payload;
    try {
      if (bytes) payload = buffer_pool::global().acquire(bytes);
    } catch (const std::exception&) {
      // No memory for one more copy: each answer leaves alone, with its value as it is.
      for (; i < j; ++i)
        send_reply(c, answers[i].id, stream, answers[i].priority, answers[i].s,
                   answers[i].value.defined() ? &answers[i].value : nullptr);
      continue;
    }
    wire::batch_reply_meta bm;
    bm.entries.reserve(j - i);
    char* at = payload ? static_cast<char*>(payload->data()) : nullptr;
    for (; i < j; ++i) {
      auto& a = answers[i];
      const std::uint64_t b = a.value.defined() ? a.value.nbytes() : 0;
      bm.entries.push_back(wire::batch_reply_entry{a.id, static_cast<std::uint8_t>(a.s.code()),
                                                   fit_message(a.s.message()), b});
      if (b) {
        std::memcpy(at, a.value.data_unchecked(), b);
        at += b;
      }
      a.value = tensor{};  // the copy is made: the value's buffer may be reused
    }
    net::outgoing m;
    m.type = static_cast<std::uint8_t>(wire::msg::batch_reply);
    m.flags = wire::flag_response;
    m.stream = stream;
    m.priority = top;
    m.meta = encode_for_send(bm);
    attach_pooled(m, std::move(payload), bytes);
    c->send(std::move(m));
  }
}

}  // namespace kvactor::detail
