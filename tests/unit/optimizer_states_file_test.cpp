// The optimizer-state file codec: round trip, and every way a file can be bad is an error
// found before a large allocation.
#include <gtest/gtest.h>

#include "kvactor/serialization/optimizer_states.hpp"

using namespace kvactor;

namespace {
wire::states_file sample() {
  wire::states_file f;
  f.optimizer = sgd_config(0.1, 0.9);
  wire::key_state_record r;
  r.key = wire::wire_key::from(key{"w"});
  r.count = 7;
  r.slots.push_back(wire::slot_record{0, {2, 2}, std::vector<std::uint8_t>(16, 3)});
  r.master = wire::slot_record{0, {2, 2}, std::vector<std::uint8_t>(16, 5)};
  f.keys.push_back(r);
  wire::key_state_record p;
  p.key = wire::wire_key::from(key{std::int64_t{1} << 40});
  p.part = 1;
  p.num_parts = 2;
  f.keys.push_back(p);
  return f;
}
}  // namespace

TEST(OptimizerStatesFile, RoundTrip) {
  const auto bytes = wire::encode(sample());
  auto back = wire::decode_states(bytes.data(), bytes.size());
  ASSERT_TRUE(back) << back.error().to_string();
  ASSERT_EQ(back->keys.size(), 2u);
  EXPECT_EQ(*back->optimizer, sgd_config(0.1, 0.9));
  EXPECT_EQ(back->keys[0].key.name, "w");
  EXPECT_EQ(back->keys[0].count, 7u);
  EXPECT_EQ(back->keys[0].slots[0].bytes, std::vector<std::uint8_t>(16, 3));
  EXPECT_EQ(back->keys[0].master->bytes, std::vector<std::uint8_t>(16, 5));
  EXPECT_EQ(back->keys[1].key.id, std::int64_t{1} << 40);
  EXPECT_EQ(back->keys[1].part, 1u);
}

TEST(OptimizerStatesFile, EveryTruncationAndEveryFlippedByteIsRefused) {
  const auto bytes = wire::encode(sample());
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    auto r = wire::decode_states(bytes.data(), n);
    ASSERT_FALSE(r) << "prefix " << n;
    EXPECT_EQ(r.error().code(), errc::protocol_error);
  }
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    auto b = bytes;
    b[i] ^= 0x10;
    EXPECT_FALSE(wire::decode_states(b.data(), b.size())) << "byte " << i;
  }
}

TEST(OptimizerStatesFile, HugeClaimsFailWithoutAllocating) {
  // A valid header, then a key count of 2^60: refused against the bytes that remain (a
  // checksum over the forged bytes keeps the decoder reading up to the count).
  wire::states_file empty;
  auto bytes = wire::encode(empty);
  bytes.resize(bytes.size() - 8);  // drop the checksum
  for (int i = 0; i < 8; ++i)
    bytes[bytes.size() - 8 + i] = i == 7 ? 0x10 : 0;  // key count
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (auto c : bytes)
    h = (h ^ c) * 0x100000001b3ull;
  for (int i = 0; i < 8; ++i)
    bytes.push_back(static_cast<std::uint8_t>(h >> (8 * i)));
  auto r = wire::decode_states(bytes.data(), bytes.size());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("key count"), std::string::npos) << r.error().to_string();
}
