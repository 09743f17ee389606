// The decoder bugs the fuzz targets found, one test each, so that they stay fixed. The same
// inputs sit in regressions/<target>/, which every fuzz smoke run replays.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kvactor/serialization/optimizer_states.hpp"
#include "kvactor/serialization/protocol.hpp"
#include "options.hpp"

namespace {

using namespace kvactor;

// A slot of shape (2^32, 2^32): each dim is under the 2^40 cap, and the element count was
// multiplied before it was checked, so it wrapped around 2^64 to 0 and the file was accepted
// with no bytes for a shape of 2^64 elements.
TEST(FuzzRegressions, StateShapeWhoseElementCountWrapsIsRejected) {
  wire::states_file f;
  wire::key_state_record k;
  k.key = wire::wire_key::from(key{7});
  wire::slot_record s;
  s.dtype = 0;  // float32
  s.dims = {std::int64_t{1} << 32, std::int64_t{1} << 32};
  k.slots.push_back(s);
  f.keys.push_back(k);
  const auto bytes = wire::encode(f);
  auto r = wire::decode_states(bytes.data(), bytes.size());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), errc::protocol_error);
  EXPECT_NE(r.error().message().find("too many elements"), std::string::npos)
      << r.error().message();

  // Also when the wrapped count is small and matches the bytes given: 2^40 * (2^24 + 1) is
  // 2^64 + 2^40 elements, which wrapped to 2^40, the cap itself.
  s.dims = {std::int64_t{1} << 40, (std::int64_t{1} << 24) + 1};
  f.keys[0].slots[0] = s;
  const auto bytes2 = wire::encode(f);
  EXPECT_FALSE(wire::decode_states(bytes2.data(), bytes2.size()).has_value());

  // A shape whose bytes are there still decodes.
  s.dims = {3, 2};
  s.bytes.assign(3 * 2 * 4, 0);
  f.keys[0].slots[0] = s;
  const auto bytes3 = wire::encode(f);
  EXPECT_TRUE(wire::decode_states(bytes3.data(), bytes3.size()).has_value());
}

// The worker indexes the node table's server list up to num_servers, and nodes use their rank
// as an index: a table that disagreed with itself was accepted.
TEST(FuzzRegressions, NodeTableThatDisagreesWithItselfIsRejected) {
  wire::node_table_meta ok{1, 4, 2, {{"10.0.0.2", 9000}, {"10.0.0.3", 9000}}};
  EXPECT_TRUE(wire::decode<wire::node_table_meta>(wire::encode(ok)).has_value());

  auto short_list = ok;
  short_list.num_servers = 3;
  EXPECT_FALSE(wire::decode<wire::node_table_meta>(wire::encode(short_list)).has_value());
  auto long_list = ok;
  long_list.num_servers = 1;
  EXPECT_FALSE(wire::decode<wire::node_table_meta>(wire::encode(long_list)).has_value());
  auto negative = ok;
  negative.rank = -1;
  EXPECT_FALSE(wire::decode<wire::node_table_meta>(wire::encode(negative)).has_value());
  auto beyond = ok;
  beyond.rank = 4;
  EXPECT_FALSE(wire::decode<wire::node_table_meta>(wire::encode(beyond)).has_value());
  auto server_rank = ok;  // a server's rank may exceed the worker count
  server_rank.num_workers = 1;
  server_rank.rank = 1;
  EXPECT_TRUE(wire::decode<wire::node_table_meta>(wire::encode(server_rank)).has_value());
}

// The hostfile parser trimmed "\r" from a line's ends but split words on spaces and tabs
// only, so "10.0\r.0.1 slots=8" gave the host "10.0\r.0.1"; control bytes were kept too.
TEST(FuzzRegressions, HostfileHostsHoldNoBlanksOrControlBytes) {
  using launch::parse_hostfile_text;
  EXPECT_EQ(parse_hostfile_text("10.0\r.0.1 slots=8\n", "h"), std::vector<std::string>{"10.0"});
  EXPECT_EQ(parse_hostfile_text("a\vb\nc\fd\n", "h"), (std::vector<std::string>{"a", "c"}));
  EXPECT_THROW(parse_hostfile_text("no\x01"
                                   "de\n",
                                   "h"),
               launch::usage_error);
  EXPECT_THROW(parse_hostfile_text("node\x7f\n", "h"), launch::usage_error);
  EXPECT_EQ(parse_hostfile_text("hostA\r\nhostB:4\r\n", "h"),
            (std::vector<std::string>{"hostA", "hostB"}));
}

}  // namespace
