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

namespace {

// OpenSSL's reason for the last failure on this thread (its queue is cleared).
std::string openssl_reason() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (!code) return "unknown reason";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  return buf;
}

// Both ends present a certificate and verify the other's against the CA: mutual TLS.
status use_certificates(SSL_CTX* c, const identity& self) {
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(c, self.tls_cert_file.c_str()) != 1)
    return status{errc::invalid_argument,
                  "TLS certificate " + self.tls_cert_file + " cannot be used: " + openssl_reason()};
  if (SSL_CTX_use_PrivateKey_file(c, self.tls_key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    return status{errc::invalid_argument,
                  "TLS private key " + self.tls_key_file + " cannot be used: " + openssl_reason()};
  if (SSL_CTX_check_private_key(c) != 1)
    return status{errc::invalid_argument, "TLS private key " + self.tls_key_file +
                                              " does not match the certificate " +
                                              self.tls_cert_file};
  if (SSL_CTX_load_verify_locations(c, self.tls_ca_file.c_str(), nullptr) != 1)
    return status{errc::invalid_argument,
                  "TLS CA file " + self.tls_ca_file + " cannot be used: " + openssl_reason()};
  SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  return status{};
}

}  // namespace

result<std::shared_ptr<tls_context>> make_tls_context(const identity& self, bool server) {
  const int given =
      !self.tls_cert_file.empty() + !self.tls_key_file.empty() + !self.tls_ca_file.empty();
  if (given != 0 && given != 3)
    return status{errc::invalid_argument,
                  "TLS with certificates needs a certificate, its private key and a CA file "
                  "(identity::tls_cert_file, tls_key_file, tls_ca_file): " +
                      std::to_string(given) + " of 3 given"};
  const bool certificates = given == 3;
  tls_psk key{};
  if (!certificates) {
    auto psk = derive_tls_psk(self.secret, self.cluster_id);
    if (!psk) return psk.error();
    key = *psk;
  }
  std::shared_ptr<tls_context> t;
  try {
    t = std::make_shared<tls_context>(server ? asio::ssl::context::tls_server
                                             : asio::ssl::context::tls_client);
  } catch (const std::exception& e) {
    return status{errc::internal, std::string{"cannot make a TLS context: "} + e.what()};
  }
  t->psk = key;
  t->certificates = certificates;
  SSL_CTX* c = t->ctx.native_handle();
  // Tickets would only serve resumption, which connections never use. The context outlives
  // every SSL made from it, so the pointer in the ex data does too.
  if (context_slot() < 0 || !SSL_CTX_set_ex_data(c, context_slot(), t.get()) ||
      !SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) ||
      !SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION) ||
      !SSL_CTX_set_ciphersuites(c, cipher_name) || !SSL_CTX_set_num_tickets(c, 0))
    return status{errc::internal, "OpenSSL refused the TLS 1.3 configuration"};
  SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
  if (certificates) {
    if (auto st = use_certificates(c, self); !st.is_ok()) return st;
  } else if (server)
    SSL_CTX_set_psk_find_session_callback(c, find_psk);
  else
    SSL_CTX_set_psk_use_session_callback(c, use_psk);
  return t;
}

result<std::shared_ptr<tls_context>> tls_context_for(const identity& self, bool server) {
  if (!self.tls) return std::shared_ptr<tls_context>{};
  return make_tls_context(self, server);
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
                      wire_.certificates()
                          ? "TLS handshake failed: the peer closed the connection (did it not "
                            "accept this end's certificate?)"
                          : "TLS handshake failed: the peer closed the connection (a different "
                            "secret or cluster id?)"},
               true, false);
      return;
    }
    fail(errc::unauthenticated,
         "TLS handshake failed: " + ec.message() +
             (wire_.certificates()
                  ? " (a certificate that does not verify against this end's CA, or none)"
                  : " (a different secret or cluster id, or not a TLS peer)"));
    return;
  }
  wire_.set_established();
  begin_handshake();
}

}  // namespace kvactor::net::detail
