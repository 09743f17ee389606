// The handshake's and goodbye's metadata on the wire, and the MACs that prove the shared
// secret. The transport uses these; they are public so that tests and tools can play a peer
// byte by byte. Each struct's layout is its fields() schema (serialization/schema.hpp), which
// encodes it in cereal's portable binary layout and decodes it with every length checked
// before anything is allocated.
//
//   CHALLENGE (acceptor → connector): version u16, cluster_id, nonce_a[32]
//   HELLO     (connector → acceptor): cluster_id, role, rank i64, nonce_b[32], mac_b[32]
//   WELCOME   (acceptor → connector): role, rank i64, mac_a[32]
//   GOODBYE   (either, then close):   errc u8, message
//
//   mac_b = HMAC-SHA256(secret, "kvactor-hello-v1"   ‖ cluster_id ‖ role_b ‖ rank_b ‖ nonce_a ‖
//   nonce_b) mac_a = HMAC-SHA256(secret, "kvactor-welcome-v1" ‖ cluster_id ‖ role_a ‖ rank_a ‖
//   nonce_b ‖ nonce_a)
//
// In the MAC input a string is its length as u64 little-endian followed by its bytes (so that
// "ab"‖"c" and "a"‖"bc" differ) and a rank is i64 little-endian.
// Thread-safety: pure functions.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kvactor/error.hpp"
#include "kvactor/result.hpp"

namespace kvactor::net::handshake {

inline constexpr std::uint16_t protocol_version = 1;
inline constexpr std::size_t nonce_size = 32;
inline constexpr std::size_t mac_size = 32;
/// Before authentication no frame may carry more meta than this, nor any payload.
inline constexpr std::size_t max_meta_size = 512;
inline constexpr std::size_t max_cluster_id_size = 256;
inline constexpr std::size_t max_role_size = 32;
inline constexpr std::size_t max_goodbye_message_size = 400;

using nonce = std::array<std::uint8_t, nonce_size>;
using mac = std::array<std::uint8_t, mac_size>;

// Strings over their cap are cut when encoded (a goodbye's message may be anything).
struct challenge {
  std::uint16_t version = protocol_version;
  std::string cluster_id;
  nonce nonce_a{};
};
template <class Ar>
void fields(Ar& ar, challenge& c) {
  ar("version", c.version);
  ar.string("cluster id", c.cluster_id, max_cluster_id_size);
  ar.bytes("nonce", c.nonce_a);
}

struct hello {
  std::string cluster_id;
  std::string role;
  std::int64_t rank = -1;
  nonce nonce_b{};
  mac mac_b{};
};
template <class Ar>
void fields(Ar& ar, hello& h) {
  ar.string("cluster id", h.cluster_id, max_cluster_id_size);
  ar.string("role", h.role, max_role_size);
  ar("rank", h.rank);
  ar.bytes("nonce", h.nonce_b);
  ar.bytes("mac", h.mac_b);
}

struct welcome {
  std::string role;
  std::int64_t rank = -1;
  mac mac_a{};
};
template <class Ar>
void fields(Ar& ar, welcome& w) {
  ar.string("role", w.role, max_role_size);
  ar("rank", w.rank);
  ar.bytes("mac", w.mac_a);
}

struct goodbye {
  errc code = errc::ok;
  std::string message;  ///< truncated to max_goodbye_message_size when encoded
};
template <class Ar>
void fields(Ar& ar, goodbye& g) {
  ar.enumeration("error code", g.code, errc::internal);
  ar.string("message", g.message, max_goodbye_message_size);
}

std::vector<std::uint8_t> encode(const challenge& c);
std::vector<std::uint8_t> encode(const hello& h);
std::vector<std::uint8_t> encode(const welcome& w);
std::vector<std::uint8_t> encode(const goodbye& g);

/// protocol_error for anything truncated, oversized, trailing or out of range.
result<challenge> decode_challenge(const std::uint8_t* data, std::size_t size);
result<hello> decode_hello(const std::uint8_t* data, std::size_t size);
result<welcome> decode_welcome(const std::uint8_t* data, std::size_t size);
result<goodbye> decode_goodbye(const std::uint8_t* data, std::size_t size);

/// One line for logs: "hello{cluster_id=\"job\" role=\"worker\" rank=3 nonce=<32 bytes> ...}".
std::string to_string(const challenge& c);
std::string to_string(const hello& h);
std::string to_string(const welcome& w);
std::string to_string(const goodbye& g);

/// mac_b as above; internal if OpenSSL fails.
result<mac> hello_mac(const std::string& secret, const std::string& cluster_id,
                      const std::string& role, std::int64_t rank, const nonce& nonce_a,
                      const nonce& nonce_b);
/// mac_a as above (role and rank are the acceptor's).
result<mac> welcome_mac(const std::string& secret, const std::string& cluster_id,
                        const std::string& role, std::int64_t rank, const nonce& nonce_b,
                        const nonce& nonce_a);
/// Constant-time comparison.
bool equal(const mac& a, const mac& b) noexcept;
/// 32 bytes from OpenSSL's CSPRNG; internal if it is not seeded.
result<nonce> random_nonce();

}  // namespace kvactor::net::handshake
