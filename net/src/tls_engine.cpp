// tls_engine (see tls.hpp): OpenSSL over a BIO on the engine's own buffers, driven by the
// socket's asynchronous operations on the connection's strand.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cstring>
#include <utility>

#include "tls.hpp"

namespace kvactor::net::detail {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {
constexpr std::size_t read_chunk = 256 * 1024;
// Until the handshake is done: its flights are small, and a connection that never
// authenticates must stay cheap (caps::max_pending_connections of them per listener).
constexpr std::size_t handshake_read_chunk = 4096;
// Plaintext per SSL_write (its records go straight into outq_).
constexpr std::size_t write_chunk = 256 * 1024;
}  // namespace

// One BIO for both directions, over the engine's own buffers: OpenSSL's records go straight
// into outq_ and come straight out of rbuf_, without a memory BIO's extra copy and zeroing.
int tls_engine::bio_write(BIO* b, const char* data, int n) {
  auto* e = static_cast<tls_engine*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  const auto* p = reinterpret_cast<const std::uint8_t*>(data);
  try {
    e->outq_.insert(e->outq_.end(), p, p + n);
  } catch (...) {  // nothing may unwind through OpenSSL: it sees a failed write
    return -1;
  }
  return n;
}

int tls_engine::bio_read(BIO* b, char* out, int n) {
  auto* e = static_cast<tls_engine*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  const std::size_t have = e->rend_ - e->rpos_;
  if (!have) {
    BIO_set_retry_read(b);  // wait for the socket, not end of stream
    return -1;
  }
  const std::size_t k = std::min(have, static_cast<std::size_t>(n));
  std::memcpy(out, e->rbuf_.data() + e->rpos_, k);
  e->rpos_ += k;
  return static_cast<int>(k);
}

long tls_engine::bio_ctrl(BIO*, int cmd, long, void*) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

namespace {
BIO_METHOD* engine_bio_method() {
  static BIO_METHOD* const m = [] {
    BIO_METHOD* b = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "kvactor-tls");
    if (b) {
      BIO_meth_set_write(b, &tls_engine::bio_write);
      BIO_meth_set_read(b, &tls_engine::bio_read);
      BIO_meth_set_ctrl(b, &tls_engine::bio_ctrl);
    }
    return b;
  }();
  return m;
}
}  // namespace

tls_engine::tls_engine(socket& s, strand st, tls_context& ctx, bool server)
    : sock_(s), strand_(std::move(st)) {
  ssl_ = SSL_new(ctx.ctx.native_handle());
  BIO* bio = engine_bio_method() ? BIO_new(engine_bio_method()) : nullptr;
  if (!ssl_ || !bio) {
    BIO_free(bio);
    SSL_free(ssl_);
    ssl_ = nullptr;
    return;
  }
  BIO_set_data(bio, this);
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl_, bio, bio);  // one reference, taken by ssl_
  SSL_set_read_ahead(ssl_, 1);
  if (server)
    SSL_set_accept_state(ssl_);
  else
    SSL_set_connect_state(ssl_);
}

tls_engine::~tls_engine() {
  if (ssl_) SSL_free(ssl_);  // frees both BIOs
}

error_code tls_engine::take_error(int ret) {
  const int e = SSL_get_error(ssl_, ret);
  if (e == SSL_ERROR_ZERO_RETURN) return asio::error::eof;
  const unsigned long code = ERR_get_error();  // this thread's queue: read it now
  ERR_clear_error();
  if (code) return error_code(static_cast<int>(code), asio::error::get_ssl_category());
  if (e == SSL_ERROR_SYSCALL) return asio::error::eof;
  return asio::ssl::error::unspecified_system_error;
}

bool tls_engine::drain_output(std::vector<std::uint8_t>& into) {
  // Swapped, not copied: output that OpenSSL makes meanwhile (an alert while a read fails)
  // goes to the other buffer, never into the one on the wire.
  into.clear();
  into.swap(outq_);
  return !into.empty();
}

void tls_engine::flush_then(std::function<void(const error_code&)> f) {
  if (!drain_output(hsbuf_)) {
    f(error_code{});
    return;
  }
  asio::async_write(
      sock_, asio::buffer(hsbuf_),
      asio::bind_executor(strand_, [this, f = std::move(f)](const error_code& ec, std::size_t) {
        f(stopped_ ? asio::error::operation_aborted : ec);
      }));
}

void tls_engine::fill_then(std::function<void(const error_code&)> f) {
  // Called only when OpenSSL has taken every byte (it asked for more).
  rbuf_.resize(hs_h_ ? handshake_read_chunk : read_chunk);
  rpos_ = rend_ = 0;
  sock_.async_read_some(
      asio::buffer(rbuf_),
      asio::bind_executor(strand_, [this, f = std::move(f)](const error_code& ec, std::size_t n) {
        // A read that completed just before stop() must not decrypt into buffers the
        // connection has released since.
        if (stopped_) return f(asio::error::operation_aborted);
        if (!ec) rend_ = n;
        f(ec);
      }));
}

void tls_engine::async_handshake(io_handler h) {
  hs_h_ = std::move(h);
  if (!ssl_) {
    asio::post(strand_, [this] { std::exchange(hs_h_, nullptr)(asio::error::no_memory, 0); });
    return;
  }
  // The first step sends the ClientHello or waits for one: nothing completes inline.
  handshake_step();
}

void tls_engine::handshake_step() {
  ERR_clear_error();  // SSL_get_error reads this thread's queue: no other connection's errors
  const int r = SSL_do_handshake(ssl_);
  const int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
  error_code failed;
  if (r != 1 && e != SSL_ERROR_WANT_READ) failed = take_error(r);
  // Whatever OpenSSL produced goes out first: the next flight, or the alert of a failure.
  flush_then([this, done = r == 1, failed](const error_code& ec) {
    if (ec || failed || done) {
      std::exchange(hs_h_, nullptr)(failed ? failed : ec, 0);
      return;
    }
    fill_then([this](const error_code& ec) {
      if (ec) {
        std::exchange(hs_h_, nullptr)(ec, 0);
        return;
      }
      handshake_step();
    });
  });
}

void tls_engine::async_read_some(const std::array<asio::mutable_buffer, 2>& b, io_handler h) {
  rd_ = b;
  read_h_ = std::move(h);
  read_step(false);
}

void tls_engine::read_step(bool from_io) {
  if (read_failed_) {  // found after the bytes of the previous read
    asio::post(strand_, [this] { std::exchange(read_h_, nullptr)(read_failed_, 0); });
    return;
  }
  ERR_clear_error();
  std::size_t total = 0;
  error_code failed;
  bool want_read = false;
  for (auto& buf : rd_) {
    while (buf.size() && !failed && !want_read) {
      std::size_t got = 0;
      const int r = SSL_read_ex(ssl_, buf.data(), buf.size(), &got);
      if (r == 1) {
        buf += got;
        total += got;
      } else if (SSL_get_error(ssl_, r) == SSL_ERROR_WANT_READ) {
        want_read = true;
      } else {
        failed = take_error(r);
      }
    }
    if (failed || want_read) break;
  }
  if (!total && !failed) {
    fill_then([this](const error_code& ec) {
      if (ec) {
        std::exchange(read_h_, nullptr)(ec, 0);
        return;
      }
      read_step(true);
    });
    return;
  }
  // Bytes first; a failure after them is the next read's result.
  if (total) read_failed_ = failed;
  const error_code ec = total ? error_code{} : failed;
  if (from_io) {
    std::exchange(read_h_, nullptr)(ec, total);
  } else {
    asio::post(strand_, [this, ec, total] { std::exchange(read_h_, nullptr)(ec, total); });
  }
}

void tls_engine::async_write(const std::vector<asio::const_buffer>& b, io_handler h) {
  wr_ = &b;
  wr_index_ = 0;
  wr_offset_ = 0;
  wr_total_ = 0;
  write_h_ = std::move(h);
  write_step(false);
}

// Encrypts up to write_chunk bytes and writes them; the next chunk is encrypted when that
// write completes, so the peer decrypts one chunk while this end encrypts the next.
void tls_engine::write_step(bool from_io) {
  ERR_clear_error();
  std::size_t taken = 0;
  error_code failed;
  while (wr_index_ < wr_->size() && taken < write_chunk) {
    const auto& x = (*wr_)[wr_index_];
    const std::size_t n = std::min(x.size() - wr_offset_, write_chunk - taken);
    std::size_t put = 0;
    if (n &&
        SSL_write_ex(ssl_, static_cast<const std::uint8_t*>(x.data()) + wr_offset_, n, &put) != 1) {
      failed = take_error(0);
      break;
    }
    wr_offset_ += put;
    taken += put;
    if (wr_offset_ == x.size()) {
      ++wr_index_;
      wr_offset_ = 0;
    }
  }
  wr_total_ += taken;
  const bool last = wr_index_ == wr_->size();
  if (failed || !drain_output(wbuf_)) {
    const error_code ec = failed;
    const std::size_t total = failed ? 0 : wr_total_;
    if (from_io)
      std::exchange(write_h_, nullptr)(ec, total);
    else
      asio::post(strand_, [this, ec, total] { std::exchange(write_h_, nullptr)(ec, total); });
    return;
  }
  asio::async_write(sock_, asio::buffer(wbuf_),
                    asio::bind_executor(strand_, [this, last](const error_code& ec, std::size_t) {
                      // After stop() the messages under wr_ may be gone: encrypt no more.
                      if (ec || stopped_) {
                        std::exchange(write_h_, nullptr)(
                            stopped_ ? asio::error::operation_aborted : ec, 0);
                        return;
                      }
                      if (last) {
                        std::exchange(write_h_, nullptr)(ec, wr_total_);
                        return;
                      }
                      write_step(true);
                    }));
}

void tls_engine::write_last(asio::const_buffer b) {
  std::size_t put = 0;
  if (SSL_write_ex(ssl_, b.data(), b.size(), &put) != 1) {
    ERR_clear_error();
    return;
  }
  std::vector<std::uint8_t> bytes;
  drain_output(bytes);
  error_code ignored;
  sock_.write_some(asio::buffer(bytes), ignored);
}

}  // namespace kvactor::net::detail
