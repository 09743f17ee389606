// The round intake and the push sink (push_intake.hpp), and server_core's members that
// register a streamed push in its round and count it when it ended.
#include "push_intake.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include "kvactor/detail/kernels.hpp"
#include "server_core.hpp"

namespace kvactor::detail {

// ---- server_core's side: a push registered in its round, and its end (server_core.hpp)

server_core::intake_answer server_core::open_intake(const server_request_ptr& r) {
  if (!streams() || !r->rejected.is_ok() || r->worker < 0 ||
      r->worker >= static_cast<std::int64_t>(num_workers_) ||
      (r->kind != wire::msg::push && r->kind != wire::msg::pushpull))
    return intake_answer::refused;
  const auto it = parts_.find(part_id{r->meta.key.to_key(), r->meta.part});
  if (it == parts_.end()) return intake_answer::refused;
  part& p = it->second;
  if (!p.stored.defined() || r->meta.numel != p.stored.size() ||
      r->meta.dtype != static_cast<std::uint8_t>(p.stored.dtype()))
    return intake_answer::refused;
  // A round that holds row-sparse pushes only, or that will fail, may need this very push to
  // close: it must not wait for that round.
  if (!p.refused.empty() || (p.round_count > 0 && (p.merge_rows_only || !p.merge.defined())))
    return intake_answer::refused;
  if (worker_waits(p, *r)) return intake_answer::after_round;
  if (!p.intake) {
    // A round without pushes gets a fresh buffer (the first push to reach an element copies
    // it); one that adopted a push received whole is summed into.
    if (p.round_count == 0) p.merge = tensor::empty(p.stored.shape(), p.stored.dtype());
    p.intake = std::make_shared<round_intake>(p.merge, p.round_count == 0 ? 0 : p.merge.size());
  }
  ++p.streaming;
  p.contributed[static_cast<std::size_t>(r->worker)] = 1;
  p.round.push_back(r);
  r->intake = p.intake;
  return intake_answer::opened;
}

// A streamed push ended: it counts in its round now (refused if it was cut off), and what
// waited for the round's streams may go on.
void server_core::end_intake(part& p, const part_id& id, const server_request_ptr& r) {
  auto intake = std::move(r->intake);
  // Its round failed while it streamed (worker_left, fail_all): answered then.
  if (!p.intake || p.intake != intake) return;
  --p.streaming;
  ++p.round_count;
  if (!r->rejected.is_ok())
    p.refused.push_back("worker " + std::to_string(r->worker) + "'s push was cut off (" +
                        r->rejected.to_string() + ")");
  const auto round = p.intake;
  settle_round(p, id);
  if (p.intake == round && p.streaming == 0) replay_deferred(p, id);
}

// ---- the round's merge buffer

void round_intake::add(std::size_t at, const void* src, std::size_t n) {
  const dtype t = merge_.dtype();
  const std::size_t es = size_of(t);
  std::lock_guard<std::mutex> g(mu_);
  if (at > ready_ || at + n > merge_.size() || at + n < at)
    throw std::logic_error("a push's elements [" + std::to_string(at) + ", " +
                           std::to_string(at + n) + ") do not continue the round's sum (" +
                           std::to_string(ready_) + " of " + std::to_string(merge_.size()) +
                           " elements started)");
  auto* dst = static_cast<char*>(merge_.data_unchecked()) + at * es;
  const auto* s = static_cast<const char*>(src);
  const std::size_t summed = std::min(at + n, ready_) - at;
  if (summed) kernels::accumulate(t, dst, s, 0, summed);
  if (n > summed) std::memcpy(dst + summed * es, s + summed * es, (n - summed) * es);
  ready_ = std::max(ready_, at + n);
}

std::size_t round_intake::ready() const {
  std::lock_guard<std::mutex> g(mu_);
  return ready_;
}

push_sink::push_sink(server_request_ptr r, deliver_fn deliver, open_fn open)
    : r_(std::move(r)),
      deliver_(std::move(deliver)),
      open_(std::move(open)),
      mode_(r_->intake ? mode::streaming : mode::pending),
      intake_(r_->intake),
      esize_(size_of(static_cast<dtype>(r_->meta.dtype))),
      total_(r_->meta.numel * esize_) {}

// Pending: asks the round again; true once the sink knows where the bytes go.
bool push_sink::settle_mode() {
  if (mode_ != mode::pending) return true;
  const auto now = std::chrono::steady_clock::now();
  if (asked_since_ == std::chrono::steady_clock::time_point{}) asked_since_ = now;
  const open_result o = open_ ? open_(r_) : open_result::refused;
  if (o == open_result::opened) {
    mode_ = mode::streaming;
    intake_ = r_->intake;
    return true;
  }
  if (o == open_result::busy && now - asked_since_ < patience) return false;
  mode_ = mode::whole;
  whole_ = buffer_pool::global().acquire(static_cast<std::size_t>(total_));
  return true;
}

bool push_sink::consume(std::uint64_t offset, const void* data, std::size_t size) {
  if (offset != got_ || size > total_ - got_)
    throw std::logic_error("payload slice at " + std::to_string(offset) + " of " +
                           std::to_string(size) + " bytes; expected one at " +
                           std::to_string(got_) + " within " + std::to_string(total_));
  if (!settle_mode()) return false;
  got_ += size;
  if (mode_ == mode::whole) {
    std::memcpy(static_cast<std::uint8_t*>(whole_->data()) + offset, data, size);
    return true;
  }
  const auto* p = static_cast<const std::uint8_t*>(data);
  if (carry_n_) {
    const std::size_t k = std::min(esize_ - carry_n_, size);
    std::memcpy(carry_ + carry_n_, p, k);
    carry_n_ += k;
    p += k;
    size -= k;
    if (carry_n_ < esize_) return true;
    intake_->add(at_++, carry_, 1);
    carry_n_ = 0;
  }
  const std::size_t whole = size / esize_ * esize_;
  write(p, whole);
  carry_n_ = size - whole;
  std::memcpy(carry_, p + whole, carry_n_);
  return true;
}

// Whole elements, from where the transport has them, or through an aligned bounce buffer when
// a peer's odd slice sizes left them misaligned (the kernels read elements, not bytes).
void push_sink::write(const std::uint8_t* p, std::size_t n) {
  if (n == 0) return;
  if (reinterpret_cast<std::uintptr_t>(p) % esize_ == 0) {
    intake_->add(at_, p, n / esize_);
    at_ += n / esize_;
    return;
  }
  alignas(8) std::uint8_t bounce[4096];
  const std::size_t chunk = sizeof bounce / esize_ * esize_;
  for (std::size_t done = 0; done < n; done += chunk) {
    const std::size_t k = std::min(chunk, n - done);
    std::memcpy(bounce, p + done, k);
    intake_->add(at_, bounce, k / esize_);
    at_ += k / esize_;
  }
}

void push_sink::abort(const status& why) noexcept {
  if (done_) return;
  done_ = true;
  // Only a push in its round must be answered there; one not yet registered, or gathered
  // whole, never arrived (as a push whose connection died before its last byte).
  if (mode_ != mode::streaming) return;
  r_->rejected = status{why.code(), "the push was cut off after " + std::to_string(got_) + " of " +
                                        std::to_string(total_) + " bytes: " + why.message()};
  try {
    deliver_(std::move(r_));
  } catch (...) {
    // No memory for the message: its shard fails the round when the node's loss is known.
  }
}

void push_sink::finish() {
  if (done_) return;
  done_ = true;
  if (mode_ == mode::whole && got_ == total_) {
    r_->payload =
        tensor::from_buffer(std::move(whole_), shape{static_cast<std::int64_t>(r_->meta.numel)},
                            static_cast<dtype>(r_->meta.dtype));
  } else if (mode_ != mode::streaming || got_ != total_ || carry_n_ != 0 || at_ != r_->meta.numel) {
    r_->rejected =
        status{errc::protocol_error, "the push's payload ended after " + std::to_string(got_) +
                                         " of " + std::to_string(total_) + " bytes"};
  }
  deliver_(std::move(r_));
}

}  // namespace kvactor::detail
