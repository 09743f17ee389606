// TLS 1.3 between nodes, keyed from the job secret: no certificates. Both ends derive the same
// 32-byte external PSK,
//
//   psk = HKDF-SHA256(salt "kvactor-tls-psk-v1", ikm = len(secret) ‖ secret ‖ len(cluster_id)
//                     ‖ cluster_id, info "kvactor-tls-psk-v1")   (lengths u64 little-endian)
//
// and offer/accept it under the fixed identity "kvactor-psk-v1" with TLS_AES_128_GCM_SHA256 and
// an (EC)DHE exchange (psk_dhe_ke: forward secrecy). A peer holding another secret fails the
// PSK binder check, so the TLS handshake itself fails (unauthenticated). The label differs
// from the HMAC handshake's ("kvactor-hello-v1", ...), so neither key can stand in for the other.
//
// On the wire: a TLS acceptor first sends one plaintext transport frame of type
// frame_type::tls; the connector reads exactly that frame header and then starts the TLS
// handshake. So a plaintext connector meets a TLS frame where it expects CHALLENGE, and a TLS
// connector meets CHALLENGE where it expects the TLS frame: both refuse at once with a reason
// that names the setting, instead of waiting for each other until the handshake timeout.
// Inside TLS, the CHALLENGE/HELLO/WELCOME handshake runs unchanged (it binds role and rank).
//
// With certificates (identity::tls_cert_file, tls_key_file, tls_ca_file) no PSK is offered:
// both ends present their certificate and verify the peer's against the CA (mutual TLS), with
// the same cipher suite and the same plaintext TLS frame first.
//
// Thread-safety: a tls_context is immutable after make_tls_context and shared by the
// connections of one listener or connect; OpenSSL's callbacks only read it.
#pragma once

#include <openssl/ssl.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/strand.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kvactor/net/transport.hpp"
#include "kvactor/result.hpp"

namespace kvactor::net::detail {

inline constexpr std::size_t tls_psk_size = 32;
using tls_psk = std::array<std::uint8_t, tls_psk_size>;

struct tls_context {
  explicit tls_context(boost::asio::ssl::context::method m) : ctx(m) {}
  boost::asio::ssl::context ctx;
  tls_psk psk{};              // unused with certificates
  bool certificates = false;  // identity's certificates instead of the PSK
};

/// One connection's TLS: OpenSSL over memory BIOs, driven by the socket's asynchronous
/// operations. Records are batched: a write encrypts 256 KiB at a time and hands the kernel
/// each chunk's records in one write (the peer decrypts one chunk while this end encrypts the
/// next); a read takes up to 256 KiB from the kernel and decrypts as many records as fit the
/// caller's buffers (straight into them). Asio's ssl::stream, tried first,
/// made a system call and a handler per 16 KiB record and ran at a quarter of plaintext speed.
/// Thread-safety: strand only (the connection's), like the socket under it. At most one
/// handshake, one read and one write in flight; handlers run on the strand, never inside the
/// call that started them.
class tls_engine {
 public:
  using socket = boost::asio::ip::tcp::socket;
  using strand = boost::asio::strand<boost::asio::io_context::executor_type>;
  using io_handler = std::function<void(const boost::system::error_code&, std::size_t)>;

  /// internal (as an exception-free status) if OpenSSL cannot make the connection's state.
  tls_engine(socket& s, strand st, tls_context& ctx, bool server);
  ~tls_engine();
  tls_engine(const tls_engine&) = delete;
  tls_engine& operator=(const tls_engine&) = delete;

  void async_handshake(io_handler h);
  /// Fills the buffers in order with what decrypts; n = the bytes placed.
  void async_read_some(const std::array<boost::asio::mutable_buffer, 2>& b, io_handler h);
  /// Encrypts and writes all of b, a chunk at a time: b (the vector and what it points to)
  /// must stay valid and unchanged until h runs.
  void async_write(const std::vector<boost::asio::const_buffer>& b, io_handler h);
  /// Best effort, non-blocking, only while no write is in flight: one last small message.
  void write_last(boost::asio::const_buffer b);
  /// The connection closed its socket: operations in flight end with operation_aborted and
  /// touch neither the caller's buffers nor the messages under a write any more (their
  /// socket operation may have completed before the close, its handler not yet run).
  void stop() noexcept { stopped_ = true; }

  // The BIO's methods (see tls.cpp).
  static int bio_write(BIO* b, const char* data, int n);
  static int bio_read(BIO* b, char* out, int n);
  static long bio_ctrl(BIO* b, int cmd, long num, void* ptr);

 private:
  boost::system::error_code take_error(int ret);
  void handshake_step();
  void flush_then(std::function<void(const boost::system::error_code&)> f);
  void fill_then(std::function<void(const boost::system::error_code&)> f);
  void read_step(bool from_io);
  void write_step(bool from_io);
  bool drain_output(std::vector<std::uint8_t>& into);

  socket& sock_;
  strand strand_;
  SSL* ssl_ = nullptr;
  std::vector<std::uint8_t> rbuf_;  // ciphertext from the peer: [rpos_, rend_) not yet taken
  std::size_t rpos_ = 0;
  std::size_t rend_ = 0;
  std::vector<std::uint8_t> outq_;   // ciphertext for the peer, not yet on its way
  std::vector<std::uint8_t> wbuf_;   // the write in flight
  std::vector<std::uint8_t> hsbuf_;  // the handshake's flight in flight
  std::array<boost::asio::mutable_buffer, 2> rd_{};
  io_handler read_h_;
  io_handler write_h_;
  const std::vector<boost::asio::const_buffer>* wr_ = nullptr;  // the write in progress
  std::size_t wr_index_ = 0;
  std::size_t wr_offset_ = 0;
  std::size_t wr_total_ = 0;
  boost::system::error_code read_failed_;
  io_handler hs_h_;
  bool stopped_ = false;
};

/// The PSK above; internal if OpenSSL fails.
result<tls_psk> derive_tls_psk(const std::string& secret, const std::string& cluster_id);

/// A TLS 1.3-only context for one end (server: the acceptor), keyed from self's secret and
/// cluster id, or from self's certificate files when they are given (invalid_argument naming
/// the file that cannot be used); internal if OpenSSL refuses the configuration.
result<std::shared_ptr<tls_context>> make_tls_context(const identity& self, bool server);

/// For an identity with tls set: its context; otherwise null.
result<std::shared_ptr<tls_context>> tls_context_for(const identity& self, bool server);

}  // namespace kvactor::net::detail
