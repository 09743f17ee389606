// The key partitioner (actors/src/dist/part_plan.*): where a worker sends each part of a key.
// Small keys go whole to server hash mod S; big keys are split by whole rows over every server;
// a key too big for one message is split further so that each part's messages fit; every
// part's ordering stream is part_hash(key hash, part), the rule the server's shard choice uses.
#include <gtest/gtest.h>

#include <set>

#include "dist/part_plan.hpp"

namespace kvactor::detail {
namespace {

key_info info_of(key k, kvactor::shape s, dtype t = dtype::float32) {
  key_info i;
  i.user_key = std::move(k);
  i.shape = std::move(s);
  i.dtype = t;
  return i;
}

// The parts cover the key's rows once, in order, each offset and count in whole rows.
void expect_whole_rows(const key_info& info, const part_list& parts) {
  const std::uint64_t row = row_size(info), rows = info.numel() / row;
  std::uint64_t next = 0;
  std::set<std::uint32_t> indices;
  for (const auto& p : parts) {
    EXPECT_EQ(p.row_begin, next);
    EXPECT_LT(p.row_begin, p.row_end);
    EXPECT_EQ(p.offset, p.row_begin * row);
    EXPECT_EQ(p.count, (p.row_end - p.row_begin) * row);
    EXPECT_EQ(p.stream, part_hash(info.user_key.hash(), p.index));
    EXPECT_LT(p.index, p.of);
    EXPECT_TRUE(indices.insert(p.index).second) << "part " << p.index << " twice";
    next = p.row_end;
  }
  EXPECT_EQ(next, rows);
}

TEST(PartPlan, PartHashIsTheKeysHashForPartZeroAndDiffersPerPart) {
  const std::size_t h = key{"embedding"}.hash();
  EXPECT_EQ(part_hash(h, 0), h);
  std::set<std::uint64_t> seen;
  for (std::uint32_t p = 0; p < 64; ++p)
    EXPECT_TRUE(seen.insert(part_hash(h, p)).second) << p;
}

TEST(PartPlan, SmallKeysGoWholeToOneServer) {
  for (std::int64_t k = 0; k < 20; ++k) {
    const auto info = info_of(key{k}, {10, 4});
    const auto parts = plan_parts(info, 3, 1000, 1 << 20);
    ASSERT_EQ(parts.size(), 1u);
    EXPECT_EQ(parts[0].server, info.user_key.hash() % 3);
    EXPECT_EQ(parts[0].of, 1u);
    expect_whole_rows(info, parts);
  }
}

TEST(PartPlan, BigKeysAreSplitByRowsOverEveryServer) {
  const auto info = info_of(key{"w"}, {600, 4});  // 2400 elements >= 1000
  const auto parts = plan_parts(info, 3, 1000, 1 << 20);
  ASSERT_EQ(parts.size(), 3u);
  for (const auto& p : parts)
    EXPECT_EQ(p.server, p.index % 3);
  expect_whole_rows(info, parts);
  // Fewer rows than servers: empty parts are not planned.
  const auto tall = info_of(key{"t"}, {2, 1000});
  const auto two = plan_parts(tall, 3, 1000, 1 << 20);
  EXPECT_EQ(two.size(), 2u);
  expect_whole_rows(tall, two);
}

TEST(PartPlan, KeysOverOneMessageAreSplitSoThatEachPartFits) {
  const std::uint64_t max_payload = 4096;
  for (std::uint32_t servers : {1u, 2u}) {
    const auto info = info_of(key{7}, {100, 16});  // 64-byte rows, 6400 bytes
    const auto parts = plan_parts(info, servers, 1000000, max_payload);
    ASSERT_GE(parts.size(), 2u) << servers;
    for (const auto& p : parts)
      EXPECT_LE((p.row_end - p.row_begin) * (64 + 8), max_payload) << "rows with their ids";
    expect_whole_rows(info, parts);
  }
}

TEST(PartPlan, ARowOverOneMessageIsRefusedNamingTheLimit) {
  const auto info = info_of(key{"wide"}, {2, 2000});  // 8000-byte rows
  EXPECT_TRUE(check_rows_fit(info, 1 << 20).is_ok());
  const status s = check_rows_fit(info, 4096);
  EXPECT_EQ(s.code(), errc::invalid_argument);
  EXPECT_NE(s.message().find("KVACTOR_MAX_MESSAGE_BYTES"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace kvactor::detail
