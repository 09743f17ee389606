#include "reply_batch.hpp"

#include <algorithm>
#include <cstring>

#include "kvactor/buffer_pool.hpp"
#include "kvactor/serialization/protocol.hpp"
#include "message_limits.hpp"
#include "node_common.hpp"

namespace kvactor::detail {

reply_batch::reply_batch(net::connection_ptr c, std::uint64_t stream, std::size_t max_meta,
                         std::uint64_t max_payload)
    : conn_(std::move(c)), stream_(stream), max_meta_(max_meta), max_payload_(max_payload) {}

namespace {
// The batch whose share a shard applies on this thread, if any (reply_batch::applying).
thread_local reply_batch* applying_now = nullptr;
}  // namespace

reply_batch::applying::applying(reply_batch& b) noexcept : previous_(applying_now) {
  applying_now = &b;
}

reply_batch::applying::~applying() {
  applying_now = previous_;
}

reply_batch::~reply_batch() {
  std::vector<answer> own;
  std::vector<late_group> late;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!open_) return;
    open_ = false;
    own.swap(gathered_);
    late.swap(late_);
  }
  send_all(own, late);
}

void reply_batch::reply(const server_request& r, const status& s, const tensor* value) {
  answer a{r.id, r.priority, s, value && value->defined() ? *value : tensor{}};
  {
    std::lock_guard<std::mutex> g(mu_);
    if (open_) {
      gathered_.push_back(std::move(a));
      return;
    }
  }
  // Locks are taken one after the other: never this batch's and the applied one's together.
  reply_batch* now = applying_now;
  if (now && now != this && now->take_late(conn_, stream_, std::move(a))) return;
  send_reply(conn_, r.id, stream_, r.priority, s, value);
}

bool reply_batch::take_late(const net::connection_ptr& c, std::uint64_t stream, answer&& a) {
  std::lock_guard<std::mutex> g(mu_);
  if (!open_) return false;
  for (auto& l : late_)
    if (l.conn == c && l.stream == stream) {
      l.answers.push_back(std::move(a));
      return true;
    }
  late_.push_back(late_group{c, stream, {}});
  late_.back().answers.push_back(std::move(a));
  return true;
}

void reply_batch::shard_done() {
  if (!left_.done_one(status{})) return;
  std::vector<answer> own;
  std::vector<late_group> late;
  {
    std::lock_guard<std::mutex> g(mu_);
    open_ = false;
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
