// Connection setup, the writer, timers and close. The read side and the handshake are in
// connection_read.cpp.
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cstdio>
#include <utility>

#include "connection.hpp"

namespace kvactor::net::detail {

namespace asio = boost::asio;
using boost::system::error_code;
using std::chrono::milliseconds;

namespace {
constexpr milliseconds connect_retry{50};

// "3 s", or "300 ms" when not whole seconds.
std::string ms(milliseconds d) {
  return d.count() % 1000 == 0 ? std::to_string(d.count() / 1000) + " s"
                               : std::to_string(d.count()) + " ms";
}
}  // namespace

void log_line(const std::string& text) {
  const std::string line = "kvactor.net: " + text + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

std::string to_string(const asio::ip::tcp::endpoint& ep) {
  const auto a = ep.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(ep.port());
}

status check_config(const identity& self, const caps& c) {
  auto bad = [](std::string what) { return status{errc::invalid_argument, std::move(what)}; };
  if (self.role.size() > handshake::max_role_size)
    return bad("role '" + self.role + "' is longer than " +
               std::to_string(handshake::max_role_size) + " bytes");
  if (self.cluster_id.size() > handshake::max_cluster_id_size)
    return bad("cluster id is longer than " + std::to_string(handshake::max_cluster_id_size) +
               " bytes");
  if (c.max_slice_bytes == 0) return bad("caps.max_slice_bytes must be positive");
  if (c.max_partial_messages == 0) return bad("caps.max_partial_messages must be positive");
  if (c.handshake_timeout.count() <= 0 || c.frame_timeout.count() <= 0 ||
      c.heartbeat_interval.count() <= 0 || c.peer_timeout.count() <= 0)
    return bad("caps timeouts must be positive");
  if (c.close_linger.count() < 0) return bad("caps.close_linger must not be negative");
  if (c.partial_message_timeout.count() <= 0 || c.refusal_log_interval.count() <= 0)
    return bad("caps timeouts must be positive");
  if (c.max_pending_connections == 0) return bad("caps.max_pending_connections must be positive");
  return status::ok();
}

conn_impl::conn_impl(std::shared_ptr<core> rt, side s, identity self, caps c, handlers h,
                     std::shared_ptr<tls_context> tls)
    : rt_(std::move(rt)),
      strand_(asio::make_strand(rt_->io)),
      sock_(rt_->io),
      wire_(sock_, strand_, std::move(tls)),
      timer_(rt_->io),
      resolver_(rt_->io),
      side_(s),
      self_(std::move(self)),
      caps_(c),
      h_(std::move(h)),
      fcaps_{c.max_meta_bytes, c.max_message_bytes, c.max_slice_bytes},
      q_(c.max_slice_bytes, c.max_partial_messages, c.max_buffered_bytes) {
  set_read_buffer(handshake_buffer_size);
}

conn_impl::~conn_impl() {
  set_read_buffer(0);
}

void conn_impl::set_read_buffer(std::size_t size) {
  rt_->read_buffer_bytes += size;
  rt_->read_buffer_bytes -= rbuf_.size();
  if (size == 0) {
    std::vector<std::uint8_t>{}.swap(rbuf_);
    rpos_ = rend_ = 0;
  } else {
    rbuf_.resize(size);  // keeps the unread bytes at [rpos_, rend_)
  }
}

void conn_impl::leave_pending() {
  if (!counted_pending_) return;
  counted_pending_ = false;
  --rt_->pending;
}

std::string conn_impl::name() const {
  if (!remote_.empty()) return remote_;
  return host_ + ":" + std::to_string(port_);
}

bool conn_impl::is_open() const {
  return phase_.load() == phase::open && !close_requested_.load();
}

// ---------------------------------------------------------------- starting

void conn_impl::evict(status why) {
  asio::post(strand_, [self = shared_from_this(), why = std::move(why)] {
    if (self->phase_.load() <= phase::handshake) self->do_close(why, true, true);
  });
}

void conn_impl::start_accepted() {
  asio::post(strand_, [self = shared_from_this()] {
    if (self->phase_.load() != phase::idle) return;  // closed before it started
    self->on_tcp_ready();
  });
}

void conn_impl::set_target(std::string host, std::uint16_t port, clock::time_point deadline,
                           done_fn done) {
  host_ = std::move(host);
  port_ = port;
  deadline_ = deadline;
  done_ = std::move(done);
}

void conn_impl::start_connect() {
  asio::post(strand_, [self = shared_from_this()] {
    if (self->phase_.load() != phase::idle) return;
    self->phase_ = phase::connecting;
    error_code ec;
    const auto addr = asio::ip::make_address(self->host_, ec);
    if (!ec) {
      self->endpoints_.emplace_back(addr, self->port_);
      self->try_connect();
    } else {
      self->connect_in_flight_ = true;  // resolving
      self->resolver_.async_resolve(
          self->host_, std::to_string(self->port_),
          asio::bind_executor(self->strand_, [self](const error_code& ec,
                                                    asio::ip::tcp::resolver::results_type rs) {
            if (self->phase_.load() != phase::connecting) return;
            if (ec) {
              self->do_close(
                  status{errc::peer_lost, "cannot resolve " + self->host_ + ": " + ec.message()},
                  false, false);
              return;
            }
            for (const auto& r : rs)
              self->endpoints_.push_back(r.endpoint());
            self->try_connect();
            self->arm_timer();
          }));
    }
    self->arm_timer();
  });
}

void conn_impl::try_connect() {
  connect_in_flight_ = true;
  asio::async_connect(
      sock_, endpoints_,
      asio::bind_executor(strand_, [self = shared_from_this()](const error_code& ec,
                                                               const asio::ip::tcp::endpoint&) {
        if (self->phase_.load() != phase::connecting) return;
        self->connect_in_flight_ = false;
        if (!ec) {
          self->on_tcp_ready();
          return;
        }
        // A peer that is still starting refuses; try again until the deadline.
        self->last_connect_error_ = ec.message();
        error_code ignored;
        self->sock_.close(ignored);
        self->retry_at_ = clock::now() + connect_retry;
        self->arm_timer();
      }));
}

void conn_impl::on_tcp_ready() {
  error_code ec;
  sock_.set_option(asio::ip::tcp::no_delay(true), ec);
  if (!ec) sock_.set_option(asio::socket_base::keep_alive(true), ec);
  // Non-blocking from here on: send() writes directly from its caller's thread and must
  // never block there.
  if (!ec) sock_.non_blocking(true, ec);
  const auto remote = sock_.remote_endpoint(ec);
  if (!ec) remote_ = to_string(remote);
  const auto local = sock_.local_endpoint(ec);
  if (!ec) local_ = to_string(local);
  if (ec) {
    do_close(status{errc::peer_lost, "socket setup failed: " + ec.message()}, true, false);
    return;
  }
  const auto now = clock::now();
  phase_ = phase::handshake;
  handshake_deadline_ = now + caps_.handshake_timeout;
  last_recv_ = now;
  {
    std::lock_guard<std::mutex> g(mu_);
    last_send_ = now;
  }
  if (side_ == side::acceptor) {
    counted_pending_ = true;
    ++rt_->pending;
  }
  arm_timer();  // the handshake timeout covers TLS too
  if (wire_.secure())
    start_tls();
  else
    begin_handshake();
}

void conn_impl::begin_handshake() {
  if (side_ == side::acceptor) {
    auto n = handshake::random_nonce();
    if (!n) {
      fail(errc::internal, n.error().message());
      return;
    }
    nonce_a_ = *n;
    {
      std::lock_guard<std::mutex> g(mu_);
      queue_control_locked(serialization::frame_type::challenge,
                           handshake::encode(handshake::challenge{handshake::protocol_version,
                                                                  self_.cluster_id, nonce_a_}));
    }
    kick();
    if (ended()) return;
  }
  read_more();
  arm_timer();
}

// ---------------------------------------------------------------- timers

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
      if (now - last_recv_ >= caps_.peer_timeout) {
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

// ---------------------------------------------------------------- writer

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

  auto p = std::make_shared<pending>();
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
    rt_->post_or_run(strand_, [self = shared_from_this(), done = std::move(done)]() mutable {
      self->run_sent(done);
    });
}

// ---------------------------------------------------------------- close

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

void conn_impl::do_close(status why, bool log, bool goodbye) {
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
    error_code ignored;
    sock_.close(ignored);
    wire_.stop();
    unsent = unsent_status_locked();
  }
  timer_.cancel();
  resolver_.cancel();
  // After the close above no read or write touches message memory any more, so the
  // senders may reuse theirs and the receivers their payload destinations.
  fail_all(failed, unsent);
  partials_.clear();
  single_ = inbound{};
  cur_ = nullptr;
  buffered_ = 0;
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
