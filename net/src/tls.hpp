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
// Thread-safety: a tls_context is immutable after make_tls_context and shared by the
// connections of one listener or connect; OpenSSL's callbacks only read it.
#pragma once

#include <boost/asio/ssl/context.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "kvactor/net/transport.hpp"
#include "kvactor/result.hpp"

namespace kvactor::net::detail {

inline constexpr std::size_t tls_psk_size = 32;
using tls_psk = std::array<std::uint8_t, tls_psk_size>;

struct tls_context {
  explicit tls_context(boost::asio::ssl::context::method m) : ctx(m) {}
  boost::asio::ssl::context ctx;
  tls_psk psk{};
};

/// The PSK above; internal if OpenSSL fails.
result<tls_psk> derive_tls_psk(const std::string& secret, const std::string& cluster_id);

/// A TLS 1.3-only context for one end (server: the acceptor), keyed from self's secret and
/// cluster id; internal if OpenSSL refuses the configuration.
result<std::shared_ptr<tls_context>> make_tls_context(const identity& self, bool server);

/// For an identity with tls set: its context; otherwise null.
result<std::shared_ptr<tls_context>> tls_context_for(const identity& self, bool server);

}  // namespace kvactor::net::detail
