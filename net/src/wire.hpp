// How a connection's frames travel: straight over its TCP socket, or through TLS 1.3 (see
// tls.hpp). Chosen once, when the connection is made; the connection reads and writes through
// the wire alike either way, and only the wire knows which it is.
//
// The TLS engine is driven from the connection's strand only (OpenSSL's state is not
// thread-safe), so write_now() (the connection's direct write from a sender's thread) takes
// nothing over TLS and leaves every byte to async_write() on the strand. Small buffers of one
// write (frame headers, metas) are gathered into one TLS record instead of one each.
//
// Thread-safety: write_now() from any thread (under the connection's writer role); everything
// else on the connection's strand, like the socket operations it stands for.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>

#include <sys/ioctl.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "tls.hpp"

namespace kvactor::net::detail {

class wire {
 public:
  using socket = boost::asio::ip::tcp::socket;
  using strand = tls_engine::strand;

  /// tls null: plaintext.
  wire(socket& s, strand st, std::shared_ptr<tls_context> tls)
      : sock_(s), strand_(std::move(st)), tls_(std::move(tls)) {}

  /// TLS is required on this connection.
  bool secure() const noexcept { return tls_ != nullptr; }
  /// ... and authenticated by certificates rather than the PSK.
  bool certificates() const noexcept { return tls_ && tls_->certificates; }
  /// Frames travel through TLS from now on (secure, and the TLS handshake succeeded).
  bool established() const noexcept { return established_; }

  /// Starts the TLS handshake (server: the acceptor's side); h(error_code).
  template <class H>
  void async_handshake(bool server, H&& h) {
    engine_ = std::make_unique<tls_engine>(sock_, strand_, *tls_, server);
    engine_->async_handshake([h = std::forward<H>(h)](const boost::system::error_code& ec,
                                                      std::size_t) mutable { h(ec); });
  }
  void set_established() noexcept { established_ = true; }

  template <class H>
  void async_read_some(const std::array<boost::asio::mutable_buffer, 2>& b, H&& h) {
    if (engine_)
      engine_->async_read_some(b, std::forward<H>(h));
    else
      sock_.async_read_some(b, std::forward<H>(h));
  }

  /// Asks the kernel to wake this end's reads only once n bytes (at least 1) have arrived, on
  /// plaintext TCP (over TLS the socket carries records, not the frames' bytes). n must be
  /// bytes the peer has committed to send (the rest of a frame's slice), or a read could wait
  /// for bytes that never come; a closed connection wakes it regardless.
  void wake_after(std::size_t n) {
    if (tls_ || n == lowat_) return;
    const int v = static_cast<int>(n);
    if (::setsockopt(sock_.native_handle(), SOL_SOCKET, SO_RCVLOWAT, &v, sizeof v) == 0) lowat_ = n;
  }

  /// Bytes that arrived on the socket and were not read yet (0 if the kernel does not say).
  std::size_t unread_bytes() const {
    int n = 0;
    return ::ioctl(sock_.native_handle(), FIONREAD, &n) == 0 && n > 0 ? static_cast<std::size_t>(n)
                                                                      : 0;
  }

  /// Non-blocking; the bytes taken. Over TLS none (would_block): the strand writes them.
  template <class Buffers>
  std::size_t write_now(const Buffers& b, boost::system::error_code& ec) {
    if (tls_) {
      ec = boost::asio::error::would_block;
      return 0;
    }
    return sock_.write_some(b, ec);
  }

  /// Writes all of b (kept valid by the caller until h(error_code, bytes of b written)).
  template <class H>
  void async_write(const std::vector<boost::asio::const_buffer>& b, H&& h) {
    if (!engine_) {
      boost::asio::async_write(sock_, b, std::forward<H>(h));
      return;
    }
    gather(b);
    engine_->async_write(out_, std::forward<H>(h));
  }

  /// Best effort, non-blocking: a GOODBYE. Before TLS is established it goes in plaintext, which
  /// a plaintext peer can read (it says why this end refuses).
  void write_last(boost::asio::const_buffer b) {
    if (established_) {
      engine_->write_last(b);
      return;
    }
    boost::system::error_code ignored;
    sock_.write_some(b, ignored);
  }

  /// The socket is closed: see tls_engine::stop.
  void stop() noexcept {
    if (engine_) engine_->stop();
  }

  /// The peer closed: EOF (over TLS also a close_notify; GOODBYE is the orderly close here).
  static bool is_eof(const boost::system::error_code& ec) noexcept {
    return ec == boost::asio::error::eof || ec == boost::asio::ssl::error::stream_truncated;
  }
  /// TLS refused what arrived: a record failed authentication, or was no TLS at all.
  static bool is_tls_failure(const boost::system::error_code& ec) noexcept {
    return ec.category() == boost::asio::error::get_ssl_category() ||
           ec.category() == boost::asio::ssl::error::get_stream_category();
  }

 private:
  // Buffers below this size are copied together so that they share a record.
  static constexpr std::size_t small = 4096;

  void gather(const std::vector<boost::asio::const_buffer>& b) {
    std::size_t staged = 0;
    for (const auto& x : b)
      if (x.size() < small) staged += x.size();
    staging_.resize(staged);
    out_.clear();
    std::uint8_t* at = staging_.data();
    const std::uint8_t* run = at;  // the start of the small run being gathered
    for (const auto& x : b) {
      if (x.size() < small) {
        if (x.size()) std::memcpy(at, x.data(), x.size());
        at += x.size();
        continue;
      }
      if (at != run) out_.emplace_back(run, static_cast<std::size_t>(at - run));
      run = at;
      out_.push_back(x);
    }
    if (at != run) out_.emplace_back(run, static_cast<std::size_t>(at - run));
  }

  socket& sock_;
  strand strand_;
  const std::shared_ptr<tls_context> tls_;
  std::unique_ptr<tls_engine> engine_;
  bool established_ = false;
  std::size_t lowat_ = 1;  // SO_RCVLOWAT as last set (the kernel's default is 1)
  std::vector<std::uint8_t> staging_;
  std::vector<boost::asio::const_buffer> out_;
};

}  // namespace kvactor::net::detail
