#include "kvactor/net/handshake.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "kvactor/serialization/schema.hpp"

namespace kvactor::net::handshake {

namespace {

namespace sz = serialization;

// Before authentication a peer may send at most max_meta_size bytes of meta.
template <class T>
result<T> decode_meta(const char* name, const std::uint8_t* data, std::size_t size) {
  return sz::decode_schema<T>(data, size, {name, 0, max_meta_size});
}

template <class T>
std::vector<std::uint8_t> encode_meta(const T& m) {
  return sz::encode_schema(m, {}, sz::schema_writer::overlong::cut);
}

void append_string(std::vector<std::uint8_t>& out, const std::string& s) {
  std::uint64_t n = s.size();
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
  out.insert(out.end(), s.begin(), s.end());
}

// By default OpenSSL frees its state in an atexit handler, and with it the key whose
// destructor frees each thread's state (DRBGs, HMAC fetches): an I/O thread that did a
// handshake and ends after that handler (one still running while the process exits) leaks
// 7678 bytes, which LeakSanitizer reports. Without the handler, thread state is freed when the
// thread ends and the global state stays reachable. Only the first initialisation in a
// process decides; called before every use, so that ours is first unless the program's is.
void init_openssl() {
  static const bool done = OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr) == 1;
  (void)done;
}

result<mac> compute(const char* label, const std::string& secret, const std::string& cluster_id,
                    const std::string& role, std::int64_t rank, const nonce& first,
                    const nonce& second) {
  init_openssl();
  std::vector<std::uint8_t> in(label, label + std::char_traits<char>::length(label));
  append_string(in, cluster_id);
  append_string(in, role);
  const auto r = static_cast<std::uint64_t>(rank);
  for (int i = 0; i < 8; ++i)
    in.push_back(static_cast<std::uint8_t>(r >> (8 * i)));
  in.insert(in.end(), first.begin(), first.end());
  in.insert(in.end(), second.begin(), second.end());
  // OpenSSL wants a non-null key pointer even for an empty key.
  static const unsigned char empty_key = 0;
  const auto* key =
      secret.empty() ? &empty_key : reinterpret_cast<const unsigned char*>(secret.data());
  mac out{};
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key, static_cast<int>(secret.size()), in.data(), in.size(), out.data(),
            &len) ||
      len != mac_size)
    return status{errc::internal, "HMAC-SHA256 failed"};
  return out;
}

}  // namespace

std::vector<std::uint8_t> encode(const challenge& c) {
  return encode_meta(c);
}
std::vector<std::uint8_t> encode(const hello& h) {
  return encode_meta(h);
}
std::vector<std::uint8_t> encode(const welcome& w) {
  return encode_meta(w);
}
std::vector<std::uint8_t> encode(const goodbye& g) {
  return encode_meta(g);
}

result<challenge> decode_challenge(const std::uint8_t* data, std::size_t size) {
  return decode_meta<challenge>("challenge", data, size);
}
result<hello> decode_hello(const std::uint8_t* data, std::size_t size) {
  return decode_meta<hello>("hello", data, size);
}
result<welcome> decode_welcome(const std::uint8_t* data, std::size_t size) {
  return decode_meta<welcome>("welcome", data, size);
}
result<goodbye> decode_goodbye(const std::uint8_t* data, std::size_t size) {
  return decode_meta<goodbye>("goodbye", data, size);
}

std::string to_string(const challenge& c) {
  return sz::print_schema(c, "challenge");
}
std::string to_string(const hello& h) {
  return sz::print_schema(h, "hello");
}
std::string to_string(const welcome& w) {
  return sz::print_schema(w, "welcome");
}
std::string to_string(const goodbye& g) {
  return sz::print_schema(g, "goodbye");
}

result<mac> hello_mac(const std::string& secret, const std::string& cluster_id,
                      const std::string& role, std::int64_t rank, const nonce& nonce_a,
                      const nonce& nonce_b) {
  return compute("kvactor-hello-v1", secret, cluster_id, role, rank, nonce_a, nonce_b);
}

result<mac> welcome_mac(const std::string& secret, const std::string& cluster_id,
                        const std::string& role, std::int64_t rank, const nonce& nonce_b,
                        const nonce& nonce_a) {
  return compute("kvactor-welcome-v1", secret, cluster_id, role, rank, nonce_b, nonce_a);
}

bool equal(const mac& a, const mac& b) noexcept {
  return CRYPTO_memcmp(a.data(), b.data(), mac_size) == 0;
}

result<nonce> random_nonce() {
  init_openssl();
  nonce n{};
  if (RAND_bytes(n.data(), static_cast<int>(n.size())) != 1)
    return status{errc::internal, "RAND_bytes failed (no entropy?)"};
  return n;
}

}  // namespace kvactor::net::handshake
