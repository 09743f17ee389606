// The TLS context (PSK from the secret) and the connection's TLS start: the plaintext TLS
// frame, then the TLS handshake, then the usual handshake inside it. See tls.hpp.
#include "tls.hpp"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>

#include <cstring>
#include <vector>

#include "connection.hpp"

namespace kvactor::net::detail {

namespace asio = boost::asio;
namespace fr = serialization;
using boost::system::error_code;

namespace {

constexpr char psk_label[] = "kvactor-tls-psk-v1";
constexpr char psk_identity[] = "kvactor-psk-v1";
// TLS_AES_128_GCM_SHA256: the cheapest AEAD with AES-NI, and the suite every TLS 1.3 stack has.
constexpr unsigned char cipher_id[2] = {0x13, 0x01};
constexpr char cipher_name[] = "TLS_AES_128_GCM_SHA256";

void append_string(std::vector<std::uint8_t>& out, const std::string& s) {
  const std::uint64_t n = s.size();
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
  out.insert(out.end(), s.begin(), s.end());
}

// Our slot in SSL_CTX's ex data (Asio owns the app data slot: its verify callback).
int context_slot() {
  static const int slot = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return slot;
}

const tls_context* context_of(SSL* ssl) {
  return static_cast<const tls_context*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), context_slot()));
}

// A session that carries only the PSK: what TLS 1.3 external PSKs are made of in OpenSSL.
// Ownership passes to OpenSSL with the callback's result.
SSL_SESSION* psk_session(SSL* ssl) {
  const tls_context* t = context_of(ssl);
  const SSL_CIPHER* cipher = SSL_CIPHER_find(ssl, cipher_id);
  if (!t || !cipher) return nullptr;
  SSL_SESSION* s = SSL_SESSION_new();
  if (!s) return nullptr;
  if (!SSL_SESSION_set1_master_key(s, t->psk.data(), t->psk.size()) ||
      !SSL_SESSION_set_cipher(s, cipher) || !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION)) {
    SSL_SESSION_free(s);
    return nullptr;
  }
  return s;
}

int use_psk(SSL* ssl, const EVP_MD* md, const unsigned char** id, std::size_t* id_len,
            SSL_SESSION** sess) {
  *sess = nullptr;
  const SSL_CIPHER* cipher = SSL_CIPHER_find(ssl, cipher_id);
  // After a HelloRetryRequest OpenSSL asks again with the chosen hash; ours is SHA-256.
  if (md && cipher && md != SSL_CIPHER_get_handshake_digest(cipher)) return 1;
  *sess = psk_session(ssl);
  if (!*sess) return 0;
  *id = reinterpret_cast<const unsigned char*>(psk_identity);
  *id_len = sizeof psk_identity - 1;
  return 1;
}

int find_psk(SSL* ssl, const unsigned char* id, std::size_t id_len, SSL_SESSION** sess) {
  *sess = nullptr;
  if (id_len != sizeof psk_identity - 1 || std::memcmp(id, psk_identity, id_len) != 0)
    return 1;  // not ours: no PSK, and without certificates the handshake fails
  *sess = psk_session(ssl);
  return *sess ? 1 : 0;
}

}  // namespace

result<tls_psk> derive_tls_psk(const std::string& secret, const std::string& cluster_id) {
  OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr);  // as handshake.cpp explains
  std::vector<std::uint8_t> ikm;
  append_string(ikm, secret);
  append_string(ikm, cluster_id);
  tls_psk out{};
  std::size_t len = out.size();
  EVP_PKEY_CTX* p = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr);
  const auto* label = reinterpret_cast<const unsigned char*>(psk_label);
  const int label_len = static_cast<int>(sizeof psk_label - 1);
  const bool ok = p && EVP_PKEY_derive_init(p) > 0 &&
                  EVP_PKEY_CTX_set_hkdf_md(p, EVP_sha256()) > 0 &&
                  EVP_PKEY_CTX_set1_hkdf_salt(p, label, label_len) > 0 &&
                  EVP_PKEY_CTX_set1_hkdf_key(p, ikm.data(), static_cast<int>(ikm.size())) > 0 &&
                  EVP_PKEY_CTX_add1_hkdf_info(p, label, label_len) > 0 &&
                  EVP_PKEY_derive(p, out.data(), &len) > 0 && len == out.size();
  EVP_PKEY_CTX_free(p);
  OPENSSL_cleanse(ikm.data(), ikm.size());
  if (!ok) return status{errc::internal, "HKDF-SHA256 for the TLS key failed"};
  return out;
}

result<std::shared_ptr<tls_context>> make_tls_context(const identity& self, bool server) {
  auto psk = derive_tls_psk(self.secret, self.cluster_id);
  if (!psk) return psk.error();
  std::shared_ptr<tls_context> t;
  try {
    t = std::make_shared<tls_context>(server ? asio::ssl::context::tls_server
                                             : asio::ssl::context::tls_client);
  } catch (const std::exception& e) {
    return status{errc::internal, std::string{"cannot make a TLS context: "} + e.what()};
  }
  t->psk = *psk;
  SSL_CTX* c = t->ctx.native_handle();
  // Tickets would only serve resumption, which connections never use. The context outlives
  // every SSL made from it, so the pointer in the ex data does too.
  if (context_slot() < 0 || !SSL_CTX_set_ex_data(c, context_slot(), t.get()) ||
      !SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) ||
      !SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION) ||
      !SSL_CTX_set_ciphersuites(c, cipher_name) || !SSL_CTX_set_num_tickets(c, 0))
    return status{errc::internal, "OpenSSL refused the TLS 1.3 configuration"};
  SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
  if (server)
    SSL_CTX_set_psk_find_session_callback(c, find_psk);
  else
    SSL_CTX_set_psk_use_session_callback(c, use_psk);
  return t;
}

result<std::shared_ptr<tls_context>> tls_context_for(const identity& self, bool server) {
  if (!self.tls) return std::shared_ptr<tls_context>{};
  return make_tls_context(self, server);
}

// ---------------------------------------------------------------- the engine

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
  asio::async_write(sock_, asio::buffer(hsbuf_),
                    asio::bind_executor(
                        strand_, [f = std::move(f)](const error_code& ec, std::size_t) { f(ec); }));
}

void tls_engine::fill_then(std::function<void(const error_code&)> f) {
  // Called only when OpenSSL has taken every byte (it asked for more).
  rbuf_.resize(hs_h_ ? handshake_read_chunk : read_chunk);
  rpos_ = rend_ = 0;
  sock_.async_read_some(
      asio::buffer(rbuf_),
      asio::bind_executor(strand_, [this, f = std::move(f)](const error_code& ec, std::size_t n) {
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
                      if (ec) {
                        std::exchange(write_h_, nullptr)(ec, 0);
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

// ---------------------------------------------------------------- the connection's TLS start

void conn_impl::start_tls() {
  if (side_ == side::acceptor) {
    fr::frame_header h;
    h.type = fr::frame_type::tls;
    h.flags = fr::frame_flags::first | fr::frame_flags::last;
    const auto bytes = fr::encode_frame_header(h);
    error_code ec;
    // A fresh socket's send buffer always has room for 56 bytes; anything else is a failure.
    const std::size_t n = sock_.write_some(asio::buffer(bytes), ec);
    if (ec || n != bytes.size()) {
      fail(errc::peer_lost,
           "cannot send the TLS frame: " + (ec ? ec.message() : std::string{"short write"}));
      return;
    }
    wire_.async_handshake(
        true, asio::bind_executor(strand_, [self = shared_from_this()](const error_code& ec) {
          self->on_tls_handshake(ec);
        }));
    return;
  }
  // Exactly the frame header: whatever follows belongs to TLS, or to a plaintext handshake.
  asio::async_read(
      sock_, asio::buffer(rbuf_.data(), fr::frame_header_size),
      asio::bind_executor(strand_, [self = shared_from_this()](const error_code& ec, std::size_t) {
        self->on_tls_frame(ec);
      }));
}

void conn_impl::on_tls_frame(const error_code& ec) {
  if (ended()) return;
  if (ec) {
    if (ec == asio::error::operation_aborted) return;
    do_close(status{errc::peer_lost, "connection closed before the TLS frame: " + ec.message()},
             true, false);
    return;
  }
  auto h = fr::decode_frame_header(rbuf_.data(), fr::frame_header_size, fcaps_);
  if (!h) {
    fail(errc::protocol_error, "waiting for the TLS frame: " + h.error().message());
    return;
  }
  if (h->type == fr::frame_type::challenge) {
    fail(errc::protocol_error,
         "the peer does not use TLS and this end requires it: set KVACTOR_TLS the same on "
         "every node (identity::tls)");
    return;
  }
  if (h->type != fr::frame_type::tls || h->meta_size != 0 || h->total_size != 0) {
    fail(errc::protocol_error,
         "expected the TLS frame, got a frame of type " + std::to_string(h->type));
    return;
  }
  wire_.async_handshake(
      false, asio::bind_executor(strand_, [self = shared_from_this()](const error_code& ec) {
        self->on_tls_handshake(ec);
      }));
}

void conn_impl::on_tls_handshake(const error_code& ec) {
  if (ended()) return;
  if (ec) {
    if (ec == asio::error::operation_aborted) return;
    if (wire::is_eof(ec) || ec == asio::error::connection_reset) {
      // The peer refused us first (its own log says why, e.g. our PSK binder did not verify).
      do_close(status{errc::unauthenticated,
                      "TLS handshake failed: the peer closed the connection (a different secret "
                      "or cluster id?)"},
               true, false);
      return;
    }
    fail(errc::unauthenticated, "TLS handshake failed: " + ec.message() +
                                    " (a different secret or cluster id, or not a TLS peer)");
    return;
  }
  wire_.set_established();
  begin_handshake();
}

}  // namespace kvactor::net::detail
