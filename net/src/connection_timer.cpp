// The connection's one timer: connect deadline and retries, the handshake and frame
// timeouts, the peer timeout, partial-message timeouts and heartbeats. Strand only.
#include <boost/asio/bind_executor.hpp>

#include <algorithm>
#include <string>

#include "connection.hpp"

namespace kvactor::net::detail {

namespace asio = boost::asio;
using boost::system::error_code;
using std::chrono::milliseconds;

namespace {
// "3 s", or "300 ms" when not whole seconds.
std::string ms(milliseconds d) {
  return d.count() % 1000 == 0 ? std::to_string(d.count() / 1000) + " s"
                               : std::to_string(d.count()) + " ms";
}
}  // namespace

void conn_impl::arm_timer() {
  const auto now = clock::now();
  const auto frame_due = (in_frame_ ? frame_start_ : now) + caps_.frame_timeout;
  clock::time_point next = now + std::chrono::hours(1);
  switch (phase_.load()) {
    case phase::connecting:
      next = connect_in_flight_ ? deadline_ : std::min(deadline_, retry_at_);
      break;
    case phase::handshake:
      next = std::min(handshake_deadline_, frame_due);
      break;
    case phase::open: {
      clock::time_point beat;
      {
        std::lock_guard<std::mutex> g(mu_);
        // While a write is in flight the writer itself is the sign of life.
        beat = writing_ ? now + caps_.heartbeat_interval : last_send_ + caps_.heartbeat_interval;
      }
      next = std::min({frame_due, last_recv_ + caps_.peer_timeout, beat});
      if (const inbound* p = oldest_partial())
        next = std::min(next, p->started + caps_.partial_message_timeout);
      break;
    }
    default:
      return;
  }
  next = std::max(next, now + milliseconds(1));
  timer_.expires_at(next);
  const auto gen = ++timer_gen_;
  timer_.async_wait(
      asio::bind_executor(strand_, [self = shared_from_this(), gen](const error_code& ec) {
        // A stale wait (re-armed since) or a cancelled one is ignored.
        if (ec || gen != self->timer_gen_) return;
        self->on_timer();
      }));
}

// A read of a big slice waits until the slice is in (wire::wake_after), so a slow peer's bytes
// can be arriving, unread, for longer than the peer timeout: those are a sign of life too.
bool conn_impl::more_arrived_unread(clock::time_point now) {
  const std::size_t unread = wire_.unread_bytes();
  if (unread <= unread_seen_) return false;
  unread_seen_ = unread;
  last_recv_ = now;
  return true;
}

void conn_impl::on_timer() {
  const auto now = clock::now();
  switch (phase_.load()) {
    case phase::connecting:
      if (now >= deadline_) {
        do_close(status{errc::peer_lost,
                        "cannot connect to " + name() +
                            (last_connect_error_.empty() ? std::string{" before the deadline"}
                                                         : ": " + last_connect_error_)},
                 false, false);
        return;
      }
      if (!connect_in_flight_ && now >= retry_at_) try_connect();
      break;
    case phase::handshake:
      if (now >= handshake_deadline_) {
        fail(errc::timeout, "handshake not complete after " + ms(caps_.handshake_timeout));
        return;
      }
      if (in_frame_ && now - frame_start_ >= caps_.frame_timeout) {
        fail(errc::timeout, "frame incomplete after " + ms(caps_.frame_timeout));
        return;
      }
      break;
    case phase::open: {
      if (in_frame_ && now - frame_start_ >= caps_.frame_timeout) {
        fail(errc::timeout, "frame incomplete after " + ms(caps_.frame_timeout));
        return;
      }
      if (now - last_recv_ >= caps_.peer_timeout && !more_arrived_unread(now)) {
        fail(errc::timeout, "no heartbeat for " + ms(caps_.peer_timeout));
        return;
      }
      if (const inbound* p = oldest_partial();
          p && now - p->started >= caps_.partial_message_timeout) {
        fail(errc::timeout, "message type " + std::to_string(p->msg.type) + " id " +
                                std::to_string(p->msg.id) + " incomplete after " +
                                ms(caps_.partial_message_timeout) + " (" +
                                std::to_string(p->received) + " of " +
                                std::to_string(p->msg.payload_size) + " payload bytes arrived)");
        return;
      }
      bool beat = false;
      {
        std::lock_guard<std::mutex> g(mu_);
        if (!writing_ && !closed_ && now - last_send_ >= caps_.heartbeat_interval) {
          queue_control_locked(serialization::frame_type::heartbeat, {});
          beat = true;
        }
      }
      if (beat) kick();
      break;
    }
    case phase::closing:
      finish_close(false);  // the write in flight did not finish within the linger
      return;
    default:
      return;
  }
  if (!ended()) arm_timer();
}

}  // namespace kvactor::net::detail
