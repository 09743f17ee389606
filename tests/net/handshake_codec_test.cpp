// The handshake metas and MACs: round trips, bounds-checked decoding, MAC binding.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kvactor/net/handshake.hpp"

namespace kvactor::net::handshake {
namespace {

nonce filled(std::uint8_t v) {
  nonce n;
  n.fill(v);
  return n;
}

TEST(HandshakeCodec, RoundTrips) {
  const challenge c{protocol_version, "cluster-7", filled(1)};
  auto c2 = decode_challenge(encode(c).data(), encode(c).size());
  ASSERT_TRUE(c2) << c2.error().to_string();
  EXPECT_EQ(c2->version, c.version);
  EXPECT_EQ(c2->cluster_id, c.cluster_id);
  EXPECT_EQ(c2->nonce_a, c.nonce_a);

  hello h{"cluster-7", "worker", 42, filled(2), {}};
  h.mac_b.fill(3);
  const auto hb = encode(h);
  EXPECT_LE(hb.size(), max_meta_size);
  auto h2 = decode_hello(hb.data(), hb.size());
  ASSERT_TRUE(h2) << h2.error().to_string();
  EXPECT_EQ(h2->cluster_id, h.cluster_id);
  EXPECT_EQ(h2->role, h.role);
  EXPECT_EQ(h2->rank, 42);
  EXPECT_EQ(h2->nonce_b, h.nonce_b);
  EXPECT_EQ(h2->mac_b, h.mac_b);

  welcome w{"server", -1, {}};
  w.mac_a.fill(9);
  const auto wb = encode(w);
  auto w2 = decode_welcome(wb.data(), wb.size());
  ASSERT_TRUE(w2) << w2.error().to_string();
  EXPECT_EQ(w2->role, "server");
  EXPECT_EQ(w2->rank, -1);
  EXPECT_EQ(w2->mac_a, w.mac_a);

  const goodbye g{errc::timeout, "bye"};
  const auto gb = encode(g);
  auto g2 = decode_goodbye(gb.data(), gb.size());
  ASSERT_TRUE(g2) << g2.error().to_string();
  EXPECT_EQ(g2->code, errc::timeout);
  EXPECT_EQ(g2->message, "bye");
}

TEST(HandshakeCodec, LargestMetasFitTheCap) {
  const hello h{std::string(max_cluster_id_size, 'c'), std::string(max_role_size, 'r'), 1, {}, {}};
  EXPECT_LE(encode(h).size(), max_meta_size);
  const goodbye g{errc::internal, std::string(10000, 'x')};
  const auto gb = encode(g);
  EXPECT_LE(gb.size(), max_meta_size) << "the message is truncated";
  auto g2 = decode_goodbye(gb.data(), gb.size());
  ASSERT_TRUE(g2);
  EXPECT_EQ(g2->message.size(), max_goodbye_message_size);
}

TEST(HandshakeCodec, RejectsTruncationAtEveryLength) {
  hello h{"cluster", "worker", 3, filled(4), filled(5)};
  const auto b = encode(h);
  for (std::size_t n = 0; n < b.size(); ++n) {
    auto r = decode_hello(b.data(), n);
    ASSERT_FALSE(r) << "length " << n;
    EXPECT_EQ(r.error().code(), errc::protocol_error);
  }
}

TEST(HandshakeCodec, RejectsTrailingBytes) {
  auto b = encode(welcome{"server", 0, filled(1)});
  b.push_back(0);
  auto r = decode_welcome(b.data(), b.size());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("trailing"), std::string::npos);
}

TEST(HandshakeCodec, RejectsHugeLengthClaimsWithoutAllocating) {
  // endianness byte, then a role length of 2^62.
  std::vector<std::uint8_t> b{1};
  const std::uint64_t n = std::uint64_t{1} << 62;
  for (int i = 0; i < 8; ++i)
    b.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
  b.resize(100, 0);
  auto r = decode_welcome(b.data(), b.size());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::protocol_error);
  EXPECT_NE(r.error().message().find("exceeds the cap"), std::string::npos);
  // A role longer than 32 bytes, honestly encoded.
  welcome w{std::string(33, 'r'), 0, {}};
  std::vector<std::uint8_t> big{1};
  for (int i = 0; i < 8; ++i)
    big.push_back(i == 0 ? 33 : 0);
  big.insert(big.end(), 33, 'r');
  big.resize(big.size() + 8 + 32, 0);
  EXPECT_FALSE(decode_welcome(big.data(), big.size()));
  // Oversized input as a whole.
  std::vector<std::uint8_t> huge(max_meta_size + 1, 0);
  EXPECT_FALSE(decode_challenge(huge.data(), huge.size()));
}

TEST(HandshakeCodec, RejectsUnknownErrorCodes) {
  auto b = encode(goodbye{errc::ok, "x"});
  b[1] = 200;
  EXPECT_FALSE(decode_goodbye(b.data(), b.size()));
}

TEST(HandshakeMac, BindsEveryInput) {
  const auto a = filled(1), b = filled(2);
  auto base = hello_mac("secret", "cluster", "worker", 3, a, b);
  ASSERT_TRUE(base);
  EXPECT_TRUE(equal(*base, *hello_mac("secret", "cluster", "worker", 3, a, b)));
  EXPECT_FALSE(equal(*base, *hello_mac("secreT", "cluster", "worker", 3, a, b)));
  EXPECT_FALSE(equal(*base, *hello_mac("secret", "cluster2", "worker", 3, a, b)));
  EXPECT_FALSE(equal(*base, *hello_mac("secret", "cluster", "server", 3, a, b)));
  EXPECT_FALSE(equal(*base, *hello_mac("secret", "cluster", "worker", 4, a, b)));
  EXPECT_FALSE(equal(*base, *hello_mac("secret", "cluster", "worker", 3, b, a)));
  // Length prefixes: moving a byte between cluster id and role changes the MAC.
  EXPECT_FALSE(equal(*hello_mac("s", "ab", "c", 0, a, b), *hello_mac("s", "a", "bc", 0, a, b)));
  // The welcome MAC is a different function of the same inputs (no reflection).
  EXPECT_FALSE(equal(*base, *welcome_mac("secret", "cluster", "worker", 3, a, b)));
  // An empty secret still works (and differs from a non-empty one).
  auto empty = hello_mac("", "cluster", "worker", 3, a, b);
  ASSERT_TRUE(empty);
  EXPECT_FALSE(equal(*base, *empty));
}

TEST(HandshakeMac, NoncesAreRandom) {
  auto a = random_nonce(), b = random_nonce();
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_NE(*a, *b);
}

}  // namespace
}  // namespace kvactor::net::handshake
