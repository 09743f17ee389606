// libFuzzer target: the handshake's metas (net/handshake.hpp). The first input byte picks the
// decoder (CHALLENGE, HELLO, WELCOME, GOODBYE, modulo 4), the rest is the meta. An accepted
// meta must keep within the caps, survive encode/decode unchanged, and, when written in this
// host's byte order, re-encode to exactly the input.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_check.hpp"
#include "kvactor/net/handshake.hpp"

namespace {

namespace hs = kvactor::net::handshake;

bool same(const hs::challenge& a, const hs::challenge& b) {
  return a.version == b.version && a.cluster_id == b.cluster_id && a.nonce_a == b.nonce_a;
}
bool same(const hs::hello& a, const hs::hello& b) {
  return a.cluster_id == b.cluster_id && a.role == b.role && a.rank == b.rank &&
         a.nonce_b == b.nonce_b && a.mac_b == b.mac_b;
}
bool same(const hs::welcome& a, const hs::welcome& b) {
  return a.role == b.role && a.rank == b.rank && a.mac_a == b.mac_a;
}
bool same(const hs::goodbye& a, const hs::goodbye& b) {
  return a.code == b.code && a.message == b.message;
}

void check_caps(const hs::challenge& c) {
  KVACTOR_FUZZ_CHECK(c.cluster_id.size() <= hs::max_cluster_id_size, "cluster id over the cap");
}
void check_caps(const hs::hello& h) {
  KVACTOR_FUZZ_CHECK(h.cluster_id.size() <= hs::max_cluster_id_size, "cluster id over the cap");
  KVACTOR_FUZZ_CHECK(h.role.size() <= hs::max_role_size, "role over the cap");
}
void check_caps(const hs::welcome& w) {
  KVACTOR_FUZZ_CHECK(w.role.size() <= hs::max_role_size, "role over the cap");
}
void check_caps(const hs::goodbye& g) {
  KVACTOR_FUZZ_CHECK(g.code <= kvactor::errc::internal, "unknown error code accepted");
  KVACTOR_FUZZ_CHECK(g.message.size() <= hs::max_goodbye_message_size, "message over the cap");
}

template <class T, class Decode>
void run(const std::uint8_t* data, std::size_t size, Decode decode) {
  auto first = decode(data, size);
  if (!first) return;
  KVACTOR_FUZZ_CHECK(size <= hs::max_meta_size, "meta over max_meta_size accepted");
  check_caps(*first);
  const std::vector<std::uint8_t> bytes = hs::encode(*first);
  if (kvactor::fuzz::little_endian_archive(data, size))
    KVACTOR_FUZZ_CHECK(bytes == std::vector<std::uint8_t>(data, data + size),
                       "re-encoded meta differs from the input");
  auto second = decode(bytes.data(), bytes.size());
  KVACTOR_FUZZ_CHECK(second.has_value(), "re-encoded meta is rejected");
  KVACTOR_FUZZ_CHECK(same(*first, *second), "meta changed in a round trip");
  KVACTOR_FUZZ_CHECK(hs::encode(*second) == bytes, "encoding is not stable");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t* meta = data + 1;
  const std::size_t n = size - 1;
  switch (data[0] % 4) {
    case 0:
      run<hs::challenge>(meta, n, hs::decode_challenge);
      break;
    case 1:
      run<hs::hello>(meta, n, hs::decode_hello);
      break;
    case 2:
      run<hs::welcome>(meta, n, hs::decode_welcome);
      break;
    default:
      run<hs::goodbye>(meta, n, hs::decode_goodbye);
      break;
  }
  return 0;
}
