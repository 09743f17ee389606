// The send path: send() checks a message and queues it, then writes directly from the
// caller's thread when no write is in flight; the async chain on the strand writes the rest
// and runs the on_sent callbacks. Threading: see connection.hpp (the writer, under mu_).
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <utility>

#include "connection.hpp"
#include "kvactor/detail/recycling_allocator.hpp"

namespace kvactor::net::detail {

namespace asio = boost::asio;
using boost::system::error_code;

void conn_impl::queue_control_locked(std::uint8_t type, std::vector<std::uint8_t> meta) {
  auto p = std::make_shared<pending>();
  p->m.type = type;
  p->m.meta = std::move(meta);
  p->seq = next_seq_++;
  q_.push_control(std::move(p));
}

void conn_impl::prepare_buffers_locked() {
  batch_.remaining(spans_);
  wbufs_.clear();
  for (const auto& s : spans_)
    wbufs_.emplace_back(s.data, s.size);
}

bool conn_impl::write_direct_locked(sent_list& done) {
  if (closed_) return false;
  if (batch_.empty()) q_.fill(batch_, caps_.max_slice_bytes);
  if (batch_.empty()) return false;
  prepare_buffers_locked();
  error_code ec;
  const std::size_t n = wire_.write_now(wbufs_, ec);
  if (n) {
    batch_.consume(n);
    last_send_ = clock::now();
  }
  // would_block: the async chain waits for room. Any other error: the chain's write fails
  // the same way and closes the connection on the strand.
  if (ec || !batch_.done()) {
    writing_ = true;
    return true;
  }
  for (auto& p : batch_.finished)
    done.push_back(std::move(p));
  batch_.clear();
  if (q_.has_work()) {
    writing_ = true;
    return true;
  }
  return false;
}

void conn_impl::kick() {
  sent_list done;
  bool chain = false;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!writing_) chain = write_direct_locked(done);
  }
  if (chain) asio::post(strand_, [self = shared_from_this()] { self->write_async(); });
  run_sent(done);
}

void conn_impl::write_async() {
  bool finish = false;
  bool start = false;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (closed_) return;
    if (batch_.empty()) q_.fill(batch_, caps_.max_slice_bytes);
    if (batch_.empty()) {
      writing_ = false;
      finish = lingering_;  // nothing was in flight after all: the GOODBYE can go now
    } else {
      prepare_buffers_locked();
      start = true;
    }
  }
  if (finish) finish_close(true);
  // No lock needed for the write: writing_ keeps direct writers out, and close runs on
  // this strand.
  if (start) async_write_batch();
}

void conn_impl::async_write_batch() {
  wire_.async_write(wbufs_, asio::bind_executor(strand_, [self = shared_from_this()](
                                                             const error_code& ec, std::size_t n) {
                      self->on_written(ec, n);
                    }));
}

void conn_impl::on_written(const error_code& ec, std::size_t n) {
  sent_list done;
  bool more = false;
  bool lingering = false;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (closed_) return;
    lingering = lingering_;
    if (!ec) {
      batch_.consume(n);
      last_send_ = clock::now();
      for (auto& p : batch_.finished)
        done.push_back(std::move(p));
      batch_.finished.clear();
      if (lingering) {
        // Messages cut short (batch_.refs) are failed by finish_close.
      } else {
        batch_.clear();
        q_.fill(batch_, caps_.max_slice_bytes);
        wbufs_.clear();
        if (batch_.empty()) {
          writing_ = false;
        } else {
          prepare_buffers_locked();
          more = true;
        }
      }
    }
  }
  if (ec) {
    if (lingering)
      finish_close(false);
    else
      fail(errc::peer_lost, "write failed: " + ec.message());
    return;
  }
  if (more) async_write_batch();
  run_sent(done);
  if (lingering) finish_close(true);
}

void conn_impl::run_sent(sent_list& done) {
  for (auto& p : done) {
    if (auto f = std::exchange(p->m.on_sent, nullptr)) {
      try {
        f(status::ok());
      } catch (const std::exception& e) {
        log_line("on_sent for " + name() + " threw: " + e.what());
      } catch (...) {
        log_line("on_sent for " + name() + " threw");
      }
    }
    p.reset();  // releases the keepalive after on_sent, as promised
  }
  done.clear();
}

void conn_impl::finish_later(std::function<void(const status&)> f,
                             std::shared_ptr<const void> keepalive, status st) {
  if (!f && !keepalive) return;
  // Like every on_sent, on the strand; the keepalive goes after it.
  rt_->post_or_run(strand_, [f = std::move(f), k = std::move(keepalive), st = std::move(st)] {
    if (!f) return;
    try {
      f(st);
    } catch (...) {
      log_line("an on_sent callback threw");
    }
  });
}

status conn_impl::unsent_status_locked() const {
  if (close_status_.is_ok())
    return status{errc::shut_down,
                  "connection to " + name() + " closed before the message was sent"};
  return status{close_status_.code(),
                "connection to " + name() +
                    " closed before the message was sent: " + close_status_.message()};
}

void conn_impl::send(outgoing m) {
  auto invalid = [&](std::string why) {
    finish_later(std::move(m.on_sent), std::move(m.keepalive),
                 status{errc::invalid_argument, std::move(why)});
  };
  if (m.type < serialization::frame_type::first_application)
    return invalid("message type " + std::to_string(m.type) +
                   " is reserved for the transport (use 16 or more)");
  if (m.flags & ~serialization::frame_flags::application_mask)
    return invalid("message flags use the transport's two high bits");
  if (m.meta.size() > caps_.max_meta_bytes)
    return invalid("meta of " + std::to_string(m.meta.size()) + " bytes exceeds the cap of " +
                   std::to_string(caps_.max_meta_bytes));
  if (m.payload_size > caps_.max_message_bytes ||
      (m.payload_size > caps_.max_slice_bytes && m.payload_size > caps_.max_buffered_bytes))
    return invalid("payload of " + std::to_string(m.payload_size) + " bytes exceeds the caps");
  if (m.payload_size && !m.payload) return invalid("null payload");

  // A message's record, often released by another thread (the I/O thread that wrote it).
  auto p = std::allocate_shared<pending>(kvactor::detail::recycling_allocator<pending>{});
  p->m = std::move(m);
  sent_list done;
  bool chain = false;
  status refused;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (send_closed_) {
      refused = unsent_status_locked();
    } else {
      p->seq = next_seq_++;
      q_.push(p);
      if (!writing_) chain = write_direct_locked(done);
    }
  }
  if (!refused.is_ok()) {
    finish_later(std::move(p->m.on_sent), std::move(p->m.keepalive), std::move(refused));
    return;
  }
  if (chain) rt_->post_or_run(strand_, [self = shared_from_this()] { self->write_async(); });
  // on_sent never runs inside send(), nor does a keepalive's deleter unless the sender said
  // it may: the caller may hold locks they want.
  for (auto& d : done)
    if (!d->m.on_sent && d->m.release_inline) d->m.keepalive.reset();
  const bool callbacks = std::any_of(done.begin(), done.end(), [](const pending_ptr& p) {
    return p->m.on_sent || p->m.keepalive;
  });
  if (callbacks)
    // The inline list's move may throw (boost does not declare it noexcept), as the send
    // itself may; run_sent catches what the callbacks throw.
    // NOLINTNEXTLINE(bugprone-exception-escape)
    rt_->post_or_run(strand_, [self = shared_from_this(), done = std::move(done)]() mutable {
      self->run_sent(done);
    });
}

}  // namespace kvactor::net::detail
