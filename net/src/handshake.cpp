#include "kvactor/net/handshake.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <cereal/archives/portable_binary.hpp>

#include <sstream>

#include "kvactor/serialization/bounded_archive.hpp"

namespace kvactor::net::handshake {

namespace {

using serialization::bounded_input;
using serialization::decode_failure;

class writer {
 public:
  writer() : ar_(out_) {}
  template <class T>
  void value(T v) {
    ar_(v);
  }
  void string(const std::string& s, std::size_t cap) {
    const std::size_t n = s.size() < cap ? s.size() : cap;
    ar_(static_cast<std::uint64_t>(n));
    ar_(cereal::binary_data(s.data(), n));
  }
  template <std::size_t N>
  void bytes(const std::array<std::uint8_t, N>& a) {
    ar_(cereal::binary_data(a.data(), N));
  }
  std::vector<std::uint8_t> take() {
    const std::string s = out_.str();
    return {s.begin(), s.end()};
  }

 private:
  std::ostringstream out_;
  cereal::PortableBinaryOutputArchive ar_;
};

template <std::size_t N>
void read_bytes(bounded_input& in, std::array<std::uint8_t, N>& a, const char* what) {
  if (in.remaining() < N) throw decode_failure{std::string{what} + ": truncated"};
  in.archive()(cereal::binary_data(a.data(), N));
}

// Runs a decoder over (data, size) and turns every failure into protocol_error.
template <class T, class F>
result<T> decode_with(const char* what, const std::uint8_t* data, std::size_t size, F&& body) {
  if (size > max_meta_size)
    return status{errc::protocol_error, std::string{what} + ": " + std::to_string(size) +
                                            " bytes exceed the cap of " +
                                            std::to_string(max_meta_size)};
  if (!data || size == 0) return status{errc::protocol_error, std::string{what} + ": empty"};
  return serialization::decode_whole<T>(what, data, size, std::forward<F>(body));
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
  writer w;
  w.value(c.version);
  w.string(c.cluster_id, max_cluster_id_size);
  w.bytes(c.nonce_a);
  return w.take();
}

std::vector<std::uint8_t> encode(const hello& h) {
  writer w;
  w.string(h.cluster_id, max_cluster_id_size);
  w.string(h.role, max_role_size);
  w.value(h.rank);
  w.bytes(h.nonce_b);
  w.bytes(h.mac_b);
  return w.take();
}

std::vector<std::uint8_t> encode(const welcome& m) {
  writer w;
  w.string(m.role, max_role_size);
  w.value(m.rank);
  w.bytes(m.mac_a);
  return w.take();
}

std::vector<std::uint8_t> encode(const goodbye& g) {
  writer w;
  w.value(static_cast<std::uint8_t>(g.code));
  w.string(g.message, max_goodbye_message_size);
  return w.take();
}

result<challenge> decode_challenge(const std::uint8_t* data, std::size_t size) {
  return decode_with<challenge>("challenge", data, size, [](bounded_input& in, challenge& c) {
    in.read(c.version);
    in.read_string(c.cluster_id, max_cluster_id_size, "cluster id");
    read_bytes(in, c.nonce_a, "nonce");
  });
}

result<hello> decode_hello(const std::uint8_t* data, std::size_t size) {
  return decode_with<hello>("hello", data, size, [](bounded_input& in, hello& h) {
    in.read_string(h.cluster_id, max_cluster_id_size, "cluster id");
    in.read_string(h.role, max_role_size, "role");
    in.read(h.rank);
    read_bytes(in, h.nonce_b, "nonce");
    read_bytes(in, h.mac_b, "mac");
  });
}

result<welcome> decode_welcome(const std::uint8_t* data, std::size_t size) {
  return decode_with<welcome>("welcome", data, size, [](bounded_input& in, welcome& m) {
    in.read_string(m.role, max_role_size, "role");
    in.read(m.rank);
    read_bytes(in, m.mac_a, "mac");
  });
}

result<goodbye> decode_goodbye(const std::uint8_t* data, std::size_t size) {
  return decode_with<goodbye>("goodbye", data, size, [](bounded_input& in, goodbye& g) {
    std::uint8_t code = 0;
    in.read(code);
    if (code > static_cast<std::uint8_t>(errc::internal))
      throw decode_failure{"unknown error code " + std::to_string(code)};
    g.code = static_cast<errc>(code);
    in.read_string(g.message, max_goodbye_message_size, "message");
  });
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
