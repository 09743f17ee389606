// Closing a connection: close() from any thread, then on the strand an orderly close that
// may linger for the write in flight and a GOODBYE, the socket's close, the failing of what
// was not sent, and on_close or the connect callback.
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <utility>

#include "connection.hpp"

namespace kvactor::net::detail {

namespace asio = boost::asio;
using boost::system::error_code;

void conn_impl::close(const status& why) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (send_closed_) return;
    send_closed_ = true;
    close_status_ = why;
  }
  close_requested_ = true;
  rt_->post_or_run(strand_, [self = shared_from_this(), why] { self->do_close(why, false, true); });
}

void conn_impl::write_goodbye_locked(const status& why) {
  const auto meta = handshake::encode(
      handshake::goodbye{why.code(), why.is_ok() ? std::string{"closed"} : why.message()});
  serialization::frame_header h;
  h.type = serialization::frame_type::goodbye;
  h.flags = serialization::frame_flags::first | serialization::frame_flags::last;
  h.meta_size = static_cast<std::uint32_t>(meta.size());
  std::vector<std::uint8_t> bytes(serialization::frame_header_size + meta.size());
  serialization::encode_frame_header(h, bytes.data());
  std::copy(meta.begin(), meta.end(), bytes.begin() + serialization::frame_header_size);
  // Best effort: the socket is non-blocking and almost always has room for a few hundred
  // bytes; if not, the peer sees a plain close.
  wire_.write_last(asio::buffer(bytes));
}

void conn_impl::discard_unread() noexcept {
  // A socket closed with unread bytes is reset (RST) instead of closed (FIN), and a reset can
  // overtake the GOODBYE and the last frames at the peer: a peer's heartbeat or shared-memory
  // answer that arrived while this end was closing must not turn an orderly close into
  // peer_lost there. Bounded: a peer still streaming at us gets the reset it asks for. The bound
  // covers what a read waiting for a whole slice (wire::wake_after, up to 1 MiB) can leave in
  // the socket, whose buffer the kernel grows to about twice that.
  if (!sock_.is_open()) return;
  constexpr std::size_t bound = 3 << 20;
  std::uint8_t scratch[16384];
  for (std::size_t taken = 0; taken < bound; taken += sizeof scratch)
    if (::recv(sock_.native_handle(), scratch, sizeof scratch, MSG_DONTWAIT) <= 0) return;
}

void conn_impl::do_close(const status& why, bool log, bool goodbye) {
  const phase prev = phase_.load();
  if (prev >= phase::closing) return;
  auto self = shared_from_this();
  if (log) {
    const std::string text = "closing " + name() + ": " + why.to_string();
    // Before authentication anyone can cause these lines: rate-limited per listener.
    if (refusals_ && prev < phase::open)
      refusals_->line(text);
    else
      log_line(text);
  }
  close_why_ = why;
  close_prev_ = prev;
  const bool talking = prev == phase::handshake || prev == phase::open;

  std::vector<pending_ptr> failed;
  status unsent;
  bool linger = false;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!send_closed_) {
      send_closed_ = true;
      close_status_ = why;
    }
    linger = goodbye && talking && writing_ && !closed_ && caps_.close_linger.count() > 0;
    if (linger) {
      lingering_ = true;
      // Everything not in the batch on the wire fails now; what the batch references stays
      // untouched (the kernel may still be reading it) until the batch is done.
      for (auto& p : q_.drain())
        if (std::find(batch_.refs.begin(), batch_.refs.end(), p) == batch_.refs.end())
          failed.push_back(std::move(p));
      unsent = unsent_status_locked();
    }
  }
  if (!linger) {
    finish_close(goodbye && talking);
    return;
  }
  phase_ = phase::closing;
  fail_all(failed, unsent);
  timer_.expires_after(std::min(caps_.close_linger, caps_.frame_timeout));
  const auto gen = ++timer_gen_;
  timer_.async_wait(asio::bind_executor(strand_, [self, gen](const error_code& ec) {
    if (ec || gen != self->timer_gen_) return;
    self->on_timer();
  }));
}

void conn_impl::fail_all(std::vector<pending_ptr>& failed, const status& why) {
  for (auto& p : failed) {
    if (auto f = std::exchange(p->m.on_sent, nullptr)) {
      try {
        f(why);
      } catch (...) {
        log_line("an on_sent callback threw");
      }
    }
  }
  failed.clear();
}

void conn_impl::finish_close(bool goodbye) {
  if (phase_.load() == phase::closed) return;
  phase_ = phase::closed;
  leave_pending();  // before the peer can see the close
  auto self = shared_from_this();
  const status why = close_why_;

  std::vector<pending_ptr> failed;
  status unsent;
  {
    std::lock_guard<std::mutex> g(mu_);
    failed = q_.drain();
    for (auto& p : batch_.finished)
      failed.push_back(std::move(p));
    for (auto& p : batch_.refs)
      failed.push_back(std::move(p));
    // The GOODBYE may follow only whole frames: the writer must be idle, or be the caller
    // (a lingering close whose batch just completed).
    if (goodbye && (!writing_ || (lingering_ && batch_.done()))) write_goodbye_locked(why);
    batch_.clear();
    closed_ = true;
    lingering_ = false;
    discard_unread();
    error_code ignored;
    sock_.close(ignored);
    wire_.stop();
    unsent = unsent_status_locked();
  }
  timer_.cancel();
  sink_timer_.cancel();
  resolver_.cancel();
  // After the close above no read or write touches message memory any more, so the
  // senders may reuse theirs and the receivers their payload destinations.
  fail_all(failed, unsent);
  drop_shm();
  abort_sinks(why);
  buffered_ = 0;
  sink_buf_.reset();
  set_read_buffer(0);
  rt_->remove(this);

  if (close_prev_ == phase::open) {
    if (h_.on_close) {
      try {
        h_.on_close(self, why);
      } catch (...) {
        log_line("on_close for " + name() + " threw");
      }
    }
  }
  if (done_) {  // never opened, or on_open threw before done could run
    auto done = std::move(done_);
    done_ = nullptr;
    try {
      done(why.is_ok()
               ? status{errc::shut_down, "shut down before the connection to " + name() + " opened"}
               : why);
    } catch (...) {
      log_line("a connect callback threw");
    }
  }
}

}  // namespace kvactor::net::detail
