// The shared-memory path of a connection (design in shm.hpp): the connector offers its
// segment right behind its HELLO; the acceptor maps it (or declines) and, when it accepted,
// offers its own behind the answer; the connector answers that. An answer switches the
// offering end's sending to its segment. Then the slices read out of the peer's slots and
// the slots given back. Only the connector starts, so a peer that never offers (another
// version, a test's raw socket) never sees a shared-memory frame; and every offer and answer
// is exchanged as the connection opens, none long after (a frame that reaches a socket after
// its owner closed it makes the kernel reset the connection). When one end has it off, no
// direction uses it. Strand only, except that the writer's segment (shm_out_) is touched
// under mu_.
//
// Every failure to set it up leaves the connection on TCP; only frames that break the
// protocol (an answer nobody asked for, a second offer, a slot outside the segment, a release
// of a slot not in use) close it, with protocol_error, like any other malformed frame.
#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <utility>

#include "connection.hpp"

namespace kvactor::net::detail {

namespace fr = serialization;

namespace {
// A SHM_RELEASE frame's meta stays within what a transport frame may carry.
constexpr std::size_t releases_per_frame = handshake::max_meta_size / 4;
}  // namespace

bool conn_impl::shm_enabled() const {
  return caps_.shared_memory && shm_allowed_by_environment();
}

void conn_impl::offer_shm() {
  if (!shm_enabled()) return;
  std::string host = shm_host_token(caps_.shm_host_salt);
  if (host.empty()) return;
  auto seg = shm_out::create(caps_.max_slice_bytes, caps_.shm_segment_bytes);
  if (!seg) return;  // the kernel said no (no memfd, a tiny segment): TCP, quietly
  const auto meta = encode((*seg)->offer(std::move(host)));
  {
    std::lock_guard<std::mutex> g(mu_);
    shm_out_ = std::move(*seg);
    queue_control_locked(fr::frame_type::shm_offer, meta);
  }
  ++rt_->shm_segments;
  shm_offered_ = true;
}

bool conn_impl::on_shm_offer() {
  auto o = decode_shm_offer(meta_.data(), meta_.size());
  if (!o) {
    fail(errc::protocol_error, o.error().message());
    return false;
  }
  if (shm_offer_seen_) {
    fail(errc::protocol_error, "a second shared-memory offer");
    return false;
  }
  shm_offer_seen_ = true;
  shm_answer a;
  if (!shm_enabled()) {
    a.reason = "shared memory is off at this end";
  } else if (const std::string host = shm_host_token(caps_.shm_host_salt);
             host.empty() || host != o->host) {
    a.reason = "another host";
  } else if (auto in = shm_in::map(*o); !in) {
    // Same host by the token, and yet no mapping: worth a line, never an error (unless the
    // descriptor is gone: the peer is closing already).
    a.reason = in.error().message();
    if (a.reason.find(std::strerror(ENOENT)) == std::string::npos)
      log_line("shared memory with " + name() + " not used: " + a.reason);
  } else {
    shm_in_ = std::move(*in);
    ++rt_->shm_segments;
    fcaps_.shm_refs = true;
    a.accepted = true;
  }
  {
    std::lock_guard<std::mutex> g(mu_);
    queue_control_locked(fr::frame_type::shm_answer, encode(a));
  }
  // The acceptor offers back only to a peer on this host (the connector offered already).
  if (a.accepted && side_ == side::acceptor) offer_shm();
  if (kick_after_read_) return true;  // with the WELCOME, at the end of this read
  kick();
  return !ended();
}

bool conn_impl::on_shm_answer() {
  auto a = decode_shm_answer(meta_.data(), meta_.size());
  if (!a) {
    fail(errc::protocol_error, a.error().message());
    return false;
  }
  if (!shm_offered_) {
    fail(errc::protocol_error, "a shared-memory answer without an offer");
    return false;
  }
  shm_offered_ = false;
  bool dropped = false;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!shm_out_) return true;  // closing
    if (a->accepted) {
      shm_out_->close_descriptor();  // the peer's mapping keeps the memory
      q_.set_shm(shm_out_.get(), caps_.shm_min_payload, &rt_->shm_bytes_sent);
    } else {
      shm_out_.reset();
      dropped = true;
    }
  }
  if (dropped) --rt_->shm_segments;
  return true;
}

bool conn_impl::on_shm_release() {
  if (meta_.empty() || meta_.size() % 4 != 0) {
    fail(errc::protocol_error,
         "SHM_RELEASE frame of " + std::to_string(meta_.size()) + " bytes (a multiple of 4)");
    return false;
  }
  std::string bad;
  {
    std::lock_guard<std::mutex> g(mu_);
    for (std::size_t i = 0; i < meta_.size() && bad.empty(); i += 4) {
      const std::uint32_t slot = std::uint32_t{meta_[i]} | std::uint32_t{meta_[i + 1]} << 8 |
                                 std::uint32_t{meta_[i + 2]} << 16 |
                                 std::uint32_t{meta_[i + 3]} << 24;
      if (!shm_out_ || !shm_out_->release(slot))
        bad = "the peer gave back shared-memory slot " + std::to_string(slot) +
              ", which is not in use";
    }
  }
  if (!bad.empty()) {
    fail(errc::protocol_error, bad);
    return false;
  }
  return true;
}

bool conn_impl::take_shm_slice() {
  const std::uint32_t slot = hdr_.shm_slot - 1;
  const std::uint8_t* src = shm_in_ ? shm_in_->slice(slot, dst_left_) : nullptr;
  if (!src) {
    fail(errc::protocol_error, "type " + std::to_string(hdr_.type) + " id " +
                                   std::to_string(hdr_.id) + ": shared-memory slot " +
                                   std::to_string(slot) + " of " + std::to_string(dst_left_) +
                                   " bytes lies outside the peer's segment");
    return false;
  }
  if (cur_->msg.sink) {
    // Taken straight from the slot; a declined slice keeps its slot until taken.
    const auto got = sink_slice(src);
    if (got == sink_answer::failed) return false;
    if (got == sink_answer::declined) return hold_for_sink();
  } else {
    std::memcpy(dst_, src, dst_left_);
    dst_ += dst_left_;
  }
  rt_->shm_bytes_received += dst_left_;
  shm_releases_.push_back(slot);
  dst_left_ = 0;
  return on_frame_done();
}

void conn_impl::flush_shm_releases() {
  if (shm_releases_.empty() || ended()) return;
  {
    std::lock_guard<std::mutex> g(mu_);
    for (std::size_t at = 0; at < shm_releases_.size(); at += releases_per_frame) {
      const std::size_t n = std::min(releases_per_frame, shm_releases_.size() - at);
      std::vector<std::uint8_t> meta(4 * n);
      for (std::size_t i = 0; i < n; ++i)
        for (std::size_t b = 0; b < 4; ++b)
          meta[4 * i + b] = static_cast<std::uint8_t>(shm_releases_[at + i] >> (8 * b));
      queue_control_locked(fr::frame_type::shm_release, std::move(meta));
    }
  }
  shm_releases_.clear();
  kick();
}

void conn_impl::drop_shm() {
  // The reader is done (the socket is closed): nothing reads the peer's segment any more.
  if (shm_in_) {
    shm_in_.reset();
    --rt_->shm_segments;
  }
  fcaps_.shm_refs = false;
  shm_releases_.clear();
  shm_offered_ = false;
  bool had_out = false;
  {
    std::lock_guard<std::mutex> g(mu_);
    q_.set_shm(nullptr, 0, nullptr);
    had_out = shm_out_ != nullptr;
    shm_out_.reset();
  }
  if (had_out) --rt_->shm_segments;
}

}  // namespace kvactor::net::detail
