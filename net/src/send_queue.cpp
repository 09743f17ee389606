#include "send_queue.hpp"

#include <algorithm>

namespace kvactor::net::detail {

namespace fr = serialization;

void batch::stage(const void* p, std::size_t n) {
  if (n == 0) return;
  const auto* b = static_cast<const std::uint8_t*>(p);
  if (!segments_.empty() && segments_.back().staged &&
      segments_.back().offset + segments_.back().size == staging_.size()) {
    segments_.back().size += n;
  } else {
    segments_.push_back(segment{true, staging_.size(), nullptr, n});
  }
  staging_.insert(staging_.end(), b, b + n);
  total_ += n;
}

void batch::add_frame(const fr::frame_header& h, const std::vector<std::uint8_t>* meta,
                      const void* payload, std::size_t payload_size) {
  std::uint8_t hb[fr::frame_header_size];
  fr::encode_frame_header(h, hb);
  stage(hb, sizeof hb);
  if (meta && !meta->empty()) stage(meta->data(), meta->size());
  if (payload_size) {
    segments_.push_back(segment{false, 0, payload, payload_size});
    total_ += payload_size;
  }
}

void batch::remaining(std::vector<span>& out) const {
  out.clear();
  for (std::size_t i = cursor_; i < segments_.size(); ++i) {
    const auto& s = segments_[i];
    const auto* base =
        s.staged ? staging_.data() + s.offset : static_cast<const std::uint8_t*>(s.data);
    const std::size_t skip = i == cursor_ ? cursor_offset_ : 0;
    out.push_back(span{base + skip, s.size - skip});
  }
}

void batch::consume(std::size_t n) noexcept {
  written_ += n;
  while (n && cursor_ < segments_.size()) {
    const std::size_t left = segments_[cursor_].size - cursor_offset_;
    if (n < left) {
      cursor_offset_ += n;
      return;
    }
    n -= left;
    ++cursor_;
    cursor_offset_ = 0;
  }
}

void batch::clear() noexcept {
  staging_.clear();
  segments_.clear();
  finished.clear();
  refs.clear();
  total_ = shm_bytes_ = written_ = cursor_ = cursor_offset_ = 0;
}

send_queue::send_queue(std::uint32_t max_slice, std::size_t max_partial, std::uint64_t max_buffered)
    : max_slice_(max_slice ? max_slice : 1),
      max_partial_(max_partial),
      max_buffered_(max_buffered) {}

void send_queue::push_control(pending_ptr p) {
  p->control = true;
  control_.push_back(std::move(p));
}

void send_queue::push(pending_ptr p) {
  auto& s = stream_of(p->m.stream);
  const bool was_empty = s.q.empty();
  add_priority(s, p->m.priority);
  s.q.push_back(std::move(p));
  if (was_empty) {
    s.key = sched_key{s.q.front()->m.priority, s.q.front()->seq, s.q.front()->m.stream};
    order_insert(s.key);
  } else if (*s.priorities.rbegin() != s.key.priority) {
    rekey(s);
  }
}

void send_queue::rekey(stream_state& s) {
  auto n = order_.extract(s.key);
  s.key = sched_key{*s.priorities.rbegin(), s.q.front()->seq, s.q.front()->m.stream};
  n.value() = s.key;
  order_.insert(std::move(n));
}

namespace {
// Kept nodes per kind: enough for the streams a connection keeps busy at once.
constexpr std::size_t max_spare_nodes = 64;

template <class Node>
void keep(std::vector<Node>& spare, Node n) {
  if (spare.size() < max_spare_nodes) spare.push_back(std::move(n));
}
}  // namespace

send_queue::stream_state& send_queue::stream_of(std::uint64_t stream) {
  if (auto it = streams_.find(stream); it != streams_.end()) return it->second;
  if (spare_streams_.empty()) return streams_[stream];
  auto n = std::move(spare_streams_.back());
  spare_streams_.pop_back();
  n.key() = stream;
  return streams_.insert(std::move(n)).position->second;
}

void send_queue::retire_stream(std::uint64_t stream) {
  // Its deque is empty but keeps its blocks, so the next stream reuses those too.
  keep(spare_streams_, streams_.extract(stream));
}

void send_queue::add_priority(stream_state& s, std::int32_t priority) {
  if (spare_priorities_.empty()) {
    s.priorities.insert(priority);
    return;
  }
  auto n = std::move(spare_priorities_.back());
  spare_priorities_.pop_back();
  n.value() = priority;
  s.priorities.insert(std::move(n));
}

void send_queue::drop_priority(stream_state& s, std::int32_t priority) {
  keep(spare_priorities_, s.priorities.extract(s.priorities.find(priority)));
}

void send_queue::order_insert(const sched_key& k) {
  if (spare_keys_.empty()) {
    order_.insert(k);
    return;
  }
  auto n = std::move(spare_keys_.back());
  spare_keys_.pop_back();
  n.value() = k;
  order_.insert(std::move(n));
}

void send_queue::order_erase(const sched_key& k) {
  keep(spare_keys_, order_.extract(k));
}

bool send_queue::may_start(const pending& p) const {
  if (p.started || single_frame(p)) return true;
  return started_count_ < max_partial_ && started_bytes_ + p.m.payload_size <= max_buffered_ &&
         started_keys_.count(msg_key{p.m.type, p.m.id}) == 0;
}

send_queue::stream_state* send_queue::pick() {
  // Usually the first candidate; the others only while the reassembly caps hold one back.
  for (const auto& k : order_) {
    auto& s = streams_.find(k.stream)->second;
    if (may_start(*s.q.front())) return &s;
  }
  return nullptr;
}

void send_queue::fill(batch& b, std::size_t budget) {
  // Each frame adds at most two segments (staged header+meta, payload pointer).
  while (b.segments() + 2 <= batch::max_segments && b.bytes() + b.shm_bytes() < budget) {
    if (!control_.empty()) {
      auto p = std::move(control_.front());
      control_.pop_front();
      fr::frame_header h;
      h.type = p->m.type;
      h.flags = fr::frame_flags::first | fr::frame_flags::last;
      h.id = p->m.id;
      h.meta_size = static_cast<std::uint32_t>(p->m.meta.size());
      b.add_frame(h, &p->m.meta, nullptr, 0);
      b.finished.push_back(std::move(p));
      continue;
    }
    if (!application_) return;
    stream_state* s = pick();
    if (!s) return;
    pending_ptr p = s->q.front();
    auto& m = p->m;
    const bool first = !p->started;
    const std::uint64_t offset = p->sent;
    const auto slice =
        static_cast<std::uint32_t>(std::min<std::uint64_t>(max_slice_, m.payload_size - offset));
    const bool last = offset + slice == m.payload_size;
    fr::frame_header h;
    h.type = m.type;
    h.flags = static_cast<std::uint16_t>((m.flags & fr::frame_flags::application_mask) |
                                         (first ? fr::frame_flags::first : 0) |
                                         (last ? fr::frame_flags::last : 0));
    h.id = m.id;
    h.stream = m.stream;
    h.priority = m.priority;
    h.meta_size = first ? static_cast<std::uint32_t>(m.meta.size()) : 0;
    h.total_size = m.payload_size;
    h.offset = offset;
    h.slice_size = slice;
    const auto* bytes = slice ? static_cast<const std::uint8_t*>(m.payload) + offset : nullptr;
    std::uint32_t slot = 0;
    if (slice && shm_ && m.payload_size >= shm_min_ && shm_->place(bytes, slice, slot)) {
      h.shm_slot = slot + 1;
      b.add_frame(h, first ? &m.meta : nullptr, nullptr, 0);
      b.add_shm(slice);
      if (shm_counter_) *shm_counter_ += slice;
    } else {
      b.add_frame(h, first ? &m.meta : nullptr, bytes, slice);
    }
    const bool multi = !single_frame(*p);
    if (first && multi) {
      ++started_count_;
      started_bytes_ += m.payload_size;
      started_keys_.insert(msg_key{m.type, m.id});
    }
    p->started = true;
    p->sent = offset + slice;
    if (!last) {
      if (b.refs.empty() || b.refs.back() != p) b.refs.push_back(std::move(p));
      continue;
    }
    if (multi) {
      --started_count_;
      started_bytes_ -= m.payload_size;
      started_keys_.erase(msg_key{m.type, m.id});
    }
    drop_priority(*s, m.priority);
    s->q.pop_front();
    if (s->q.empty()) {
      order_erase(s->key);
      retire_stream(m.stream);
    } else {
      rekey(*s);
    }
    b.finished.push_back(std::move(p));
  }
}

std::vector<pending_ptr> send_queue::drain() {
  std::vector<pending_ptr> out(control_.begin(), control_.end());
  control_.clear();
  for (auto& [id, s] : streams_)
    for (auto& p : s.q)
      out.push_back(std::move(p));
  streams_.clear();
  order_.clear();
  started_count_ = 0;
  started_bytes_ = 0;
  started_keys_.clear();
  return out;
}

}  // namespace kvactor::net::detail
