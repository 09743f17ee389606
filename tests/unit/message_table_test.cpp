// The message table (serialization/protocol.hpp) and the one schema per message
// (serialization/schema.hpp): every type named once, every meta through its schema and back,
// the bytes earlier versions wrote, the one-line text, and refusals of unknown types and of
// truncated, overlong or inconsistent input (always protocol_error, naming what is wrong).
#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "kvactor/net/handshake.hpp"
#include "kvactor/serialization/protocol.hpp"

namespace kvactor {
namespace {

using bytes = std::vector<std::uint8_t>;

std::string hex(const bytes& b) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  for (auto c : b) {
    s += digits[c >> 4];
    s += digits[c & 15];
  }
  return s;
}

// A value of each meta with every field away from its default.
template <class T>
T sample();
template <>
wire::register_meta sample() {
  return {"server", "10.0.0.7", 9091, -1};
}
template <>
wire::node_table_meta sample() {
  return {1, 2, 2, {{"h0", 7000}, {"h1", 7001}}, "0123456789abcdef"};
}
template <>
wire::barrier_meta sample() {
  return {0x0102030405060708ull};
}
template <>
wire::node_lost_meta sample() {
  return {"worker", 3, "heartbeat timeout"};
}
template <>
wire::node_done_meta sample() {
  return {"server", 0};
}
template <>
wire::data_meta sample() {
  wire::data_meta d;
  d.key = wire::wire_key::from(key{std::int64_t{-5}});
  d.part = 1;
  d.num_parts = 3;
  d.numel = 12;
  d.dtype = 2;
  d.row = 4;
  d.rows = 2;
  return d;
}
template <>
wire::command_meta sample() {
  return {4, std::string("type=2bit\0x", 11)};
}
template <>
wire::reply_meta sample() {
  return {9, "bad"};
}
template <>
wire::batch_meta sample() {
  wire::batch_meta b;
  b.entries.push_back(
      {static_cast<std::uint8_t>(wire::msg::push), 2, 41, -3, 48, sample<wire::data_meta>()});
  wire::data_meta s;
  s.key = wire::wire_key::from(key{std::string{"bias"}});
  s.numel = 8;
  b.entries.push_back({static_cast<std::uint8_t>(wire::msg::pull), 0, 42, 7, 0, s});
  return b;
}
template <>
wire::batch_reply_meta sample() {
  return {{{41, 0, "", 0}, {42, 9, "bad", 32}}};
}

template <class T>
result<T> decode_hex(const std::string& h) {
  bytes b;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2)
    b.push_back(static_cast<std::uint8_t>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return wire::decode<T>(b);
}

template <class T>
void expect_refused(const result<T>& r, const std::string& want, const std::string& context) {
  ASSERT_FALSE(r.has_value()) << context << ": accepted";
  EXPECT_EQ(r.error().code(), errc::protocol_error) << context;
  EXPECT_NE(r.error().message().find(want), std::string::npos)
      << context << ": " << r.error().message() << " does not say " << want;
}

TEST(MessageTable, EveryTypeHasOneUniqueName) {
  std::set<std::string> names;
  std::set<int> numbers;
  wire::for_each_message([&](auto tag) {
    const wire::msg m = decltype(tag)::value;
    const auto n = static_cast<std::uint8_t>(m);
    EXPECT_TRUE(names.insert(wire::to_string(m)).second) << wire::to_string(m);
    EXPECT_TRUE(numbers.insert(n).second) << int{n};
    EXPECT_TRUE(wire::known_message(n)) << wire::to_string(m);
    EXPECT_NE(std::string{wire::to_string(m)}, "unknown");
    EXPECT_GE(n, 16) << "types 0-15 belong to the transport";
  });
  EXPECT_EQ(names.size(), 15u);
  EXPECT_EQ(std::string{wire::to_string(wire::msg::push)}, "push");
  EXPECT_EQ(std::string{wire::to_string(wire::msg::register_node)}, "register_node");
  EXPECT_EQ(static_cast<int>(wire::msg::pull_rows), 28) << "numbers on the wire never move";
  // The command table likewise.
  std::set<std::string> commands;
  for (int c = 0; c < 256; ++c) {
    const std::string name = wire::to_string(static_cast<wire::command>(c));
    if (name != "unknown_command") {
      EXPECT_TRUE(commands.insert(name).second) << name;
    }
    EXPECT_EQ(wire::mxnet_command(c), c <= 5) << c;
  }
  EXPECT_EQ(commands.size(), 10u);
  EXPECT_FALSE(wire::mxnet_command(-1));
}

TEST(MessageTable, UnknownAndReservedTypesAreRefused) {
  int known = 0;
  for (int t = 0; t < 256; ++t) {
    const auto type = static_cast<std::uint8_t>(t);
    const bool in_table = std::string{wire::to_string(static_cast<wire::msg>(type))} != "unknown";
    EXPECT_EQ(wire::known_message(type), in_table) << t;
    if (t < 16) {
      EXPECT_FALSE(wire::known_message(type)) << "transport type " << t;
    }
    known += wire::known_message(type);
  }
  EXPECT_EQ(known, 15);
  EXPECT_EQ(wire::describe(99, wire::encode(sample<wire::reply_meta>())),
            "unknown message type 99");
  EXPECT_EQ(wire::describe(5, {}), "unknown message type 5");
}

TEST(MessageTable, EveryMetaRoundTripsThroughItsSchema) {
  int visited = 0;
  wire::for_each_message([&](auto tag) {
    using meta = typename wire::meta_of<decltype(tag)::value>::type;
    const meta m = sample<meta>();
    const bytes b = wire::encode(m);
    auto back = wire::decode<meta>(b);
    ASSERT_TRUE(back.has_value()) << wire::to_string(decltype(tag)::value) << ": "
                                  << back.error().to_string();
    // Every field is in the bytes, so equal bytes mean equal fields.
    EXPECT_EQ(wire::encode(*back), b) << wire::to_string(decltype(tag)::value);
    // Encoding into a vector that held other bytes (one given back after a send) writes the
    // same bytes, none of the old ones.
    bytes reused(300, 0xee);
    wire::encode_into(m, reused);
    EXPECT_EQ(reused, b) << wire::to_string(decltype(tag)::value);
    EXPECT_EQ(wire::to_string(*back), wire::to_string(m));
    // describe() finds the same struct through the table.
    EXPECT_EQ(wire::describe(static_cast<std::uint8_t>(decltype(tag)::value), b),
              std::string{wire::to_string(decltype(tag)::value)} + " " + wire::to_string(m));
    ++visited;
  });
  EXPECT_EQ(visited, 15);
  // Spot checks that the fields land where they belong.
  auto t = wire::decode<wire::node_table_meta>(wire::encode(sample<wire::node_table_meta>()));
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->servers.at(1).host, "h1");
  EXPECT_EQ(t->servers.at(1).port, 7001);
  EXPECT_EQ(t->rank_key, "0123456789abcdef");
  auto d = wire::decode<wire::data_meta>(wire::encode(sample<wire::data_meta>()));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->key.to_key(), key{std::int64_t{-5}});
  EXPECT_EQ(d->rows, 2u);
  wire::data_meta s;
  s.key = wire::wire_key::from(key{std::string{"weight"}});
  auto ds = wire::decode<wire::data_meta>(wire::encode(s));
  ASSERT_TRUE(ds.has_value());
  EXPECT_EQ(ds->key.to_key(), key{std::string{"weight"}});
}

// Bytes written by the hand-written encoders that the schemas replaced (commit 01f7d08): peers
// of earlier versions, fuzz corpora and seeds stay valid.
TEST(MessageTable, BytesAreWhatEarlierVersionsWrote) {
  EXPECT_EQ(hex(wire::encode(sample<wire::register_meta>())),
            "01010600000000000000736572766572080000000000000031302e302e302e378323ffffffffffffffff");
  EXPECT_EQ(hex(wire::encode(sample<wire::node_table_meta>())),
            "0101010000000000000002000000020000000200000000000000020000000000000068305"
            "81b02000000000000006831591b100000000000000030313233343536373839616263646566");
  EXPECT_EQ(hex(wire::encode(sample<wire::barrier_meta>())), "01010807060504030201");
  EXPECT_EQ(hex(wire::encode(sample<wire::node_lost_meta>())),
            "01010600000000000000776f726b657203000000000000001100000000000000686561727462"
            "6561742074696d656f7574");
  EXPECT_EQ(hex(wire::encode(sample<wire::node_done_meta>())),
            "010106000000000000007365727665720000000000000000");
  EXPECT_EQ(hex(wire::encode(sample<wire::data_meta>())),
            "010100fbffffffffffffff000000000000000001000000030000000c00000000000000020400"
            "0000000000000200000000000000");
  wire::data_meta s;
  s.key = wire::wire_key::from(key{std::string{"weight"}});
  s.numel = 7;
  EXPECT_EQ(hex(wire::encode(s)),
            "010101000000000000000006000000000000007765696768740000000001000000070000000000"
            "00000001000000000000000000000000000000");
  EXPECT_EQ(hex(wire::encode(sample<wire::command_meta>())),
            "0101040b00000000000000747970653d326269740078");
  EXPECT_EQ(hex(wire::encode(sample<wire::reply_meta>())), "0101090300000000000000626164");

  namespace hs = net::handshake;
  hs::challenge c;
  c.cluster_id = "job-42";
  hs::hello h;
  h.cluster_id = "job-42";
  h.role = "worker";
  h.rank = 3;
  hs::welcome w;
  w.role = "scheduler";
  w.rank = -1;
  for (int i = 0; i < 32; ++i) {
    c.nonce_a[i] = static_cast<std::uint8_t>(i);
    h.nonce_b[i] = static_cast<std::uint8_t>(100 + i);
    h.mac_b[i] = static_cast<std::uint8_t>(200 + i);
    w.mac_a[i] = static_cast<std::uint8_t>(255 - i);
  }
  EXPECT_EQ(hex(hs::encode(c)),
            "01010006000000000000006a6f622d3432000102030405060708090a0b0c0d0e0f1011121314"
            "15161718191a1b1c1d1e1f");
  EXPECT_EQ(hex(hs::encode(h)),
            "0106000000000000006a6f622d34320600000000000000776f726b657203000000000000006465"
            "666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f80818283c8c9cacbcccdcecfd0"
            "d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7");
  EXPECT_EQ(hex(hs::encode(w)),
            "0109000000000000007363686564756c6572fffffffffffffffffffefdfcfbfaf9f8f7f6f5f4f3"
            "f2f1f0efeeedecebeae9e8e7e6e5e4e3e2e1e0");
  EXPECT_EQ(hex(hs::encode(hs::goodbye{errc::timeout, "no heartbeat"})),
            "01080c000000000000006e6f20686561727462656174");
  // A goodbye's message is cut to its cap, as before.
  std::string cut = "01099001000000000000";
  for (int i = 0; i < 400; ++i)
    cut += "78";
  EXPECT_EQ(hex(hs::encode(hs::goodbye{errc::protocol_error, std::string(500, 'x')})), cut);
}

TEST(MessageTable, ToStringIsOneCompactLine) {
  EXPECT_EQ(wire::to_string(sample<wire::register_meta>()),
            "register{role=\"server\" host=\"10.0.0.7\" port=9091 rank_hint=-1}");
  EXPECT_EQ(wire::to_string(sample<wire::data_meta>()),
            "data{key_kind=false key_id=-5 key_name=\"\" part=1 num_parts=3 numel=12 dtype=2 row=4 "
            "rows=2}");
  EXPECT_EQ(wire::to_string(sample<wire::barrier_meta>()), "barrier{seq=72623859790382856}");
  // Secrets and encoded bodies show as their length only.
  const std::string table = wire::to_string(sample<wire::node_table_meta>());
  EXPECT_EQ(table,
            "node table{rank=1 num_workers=2 num_servers=2 server_count=[server_host=\"h0\" "
            "port=7000, server_host=\"h1\" port=7001] rank_key=<16 bytes>}");
  EXPECT_EQ(wire::to_string(sample<wire::command_meta>()),
            "command{cmd=4 command_body=<11 bytes>}");
  // Long strings are cut, control bytes escaped; a long server list is cut.
  const std::string lost =
      wire::to_string(wire::node_lost_meta{"worker", 2, std::string(5000, 'r')});
  EXPECT_LT(lost.size(), 200u) << lost;
  EXPECT_NE(lost.find("...(5000 bytes)"), std::string::npos) << lost;
  EXPECT_EQ(wire::to_string(wire::reply_meta{1, "a\nb\"c"}),
            "reply{code=1 reply_message=\"a\\x0ab\\\"c\"}");
  wire::node_table_meta big;
  big.num_servers = 100;
  big.servers.resize(100);
  const std::string many = wire::to_string(big);
  EXPECT_NE(many.find("... 92 more]"), std::string::npos) << many;
  wire::for_each_message([&](auto tag) {
    using meta = typename wire::meta_of<decltype(tag)::value>::type;
    const std::string s = wire::to_string(sample<meta>());
    EXPECT_EQ(s.find('\n'), std::string::npos) << s;
    EXPECT_EQ(s.back(), '}') << s;
  });
  namespace hs = net::handshake;
  EXPECT_EQ(hs::to_string(hs::goodbye{errc::timeout, "late"}),
            "goodbye{error_code=timeout message=\"late\"}");
  hs::hello h;
  h.cluster_id = "job";
  h.role = "worker";
  h.rank = 3;
  EXPECT_EQ(hs::to_string(h),
            "hello{cluster_id=\"job\" role=\"worker\" rank=3 nonce=<32 bytes> mac=<32 bytes>}");
}

TEST(MessageTable, TruncatedOrTrailingInputIsRefused) {
  wire::for_each_message([&](auto tag) {
    using meta = typename wire::meta_of<decltype(tag)::value>::type;
    const bytes b = wire::encode(sample<meta>());
    const std::string name = wire::to_string(decltype(tag)::value);
    for (std::size_t n = 0; n < b.size(); ++n)
      expect_refused(wire::decode<meta>(bytes(b.begin(), b.begin() + static_cast<long>(n))), "",
                     name + " cut to " + std::to_string(n) + " bytes");
    bytes longer = b;
    longer.push_back(0);
    expect_refused(wire::decode<meta>(longer), "trailing bytes", name);
    bytes version = b;
    version.at(1) = 2;
    expect_refused(wire::decode<meta>(version), "metadata version 2 is not supported", name);
  });
  expect_refused(wire::decode<wire::reply_meta>({}), "reply: empty", "empty");
  expect_refused(wire::decode<wire::barrier_meta>(bytes{1, 1, 2}), "barrier: truncated input",
                 "short integer");
}

TEST(MessageTable, OverlongOrInconsistentInputIsRefused) {
  // A length over its cap is refused before anything is allocated.
  expect_refused(
      wire::decode<wire::reply_meta>(wire::encode(wire::reply_meta{1, std::string(5000, 'm')})),
      "reply: reply message: length 5000 exceeds the cap 4096", "long reply");
  expect_refused(wire::decode<wire::register_meta>(
                     wire::encode(wire::register_meta{std::string(33, 'r'), "", 1, 0})),
                 "register: role: length 33 exceeds the cap 32", "long role");
  // A count claiming more servers than the bytes could hold, and one over the cap.
  bytes t = wire::encode(sample<wire::node_table_meta>());
  t[18] = 0xff;  // the low byte of the server count (after flag, version, rank, two u32)
  expect_refused(wire::decode<wire::node_table_meta>(t),
                 "server count: length 255 exceeds the bytes left", "servers");
  t[18] = 0;
  t[21] = 1;  // 65536 + ...: over max_servers
  expect_refused(wire::decode<wire::node_table_meta>(t), "exceeds the cap 65536", "many servers");
  // Rules across fields.
  auto table = sample<wire::node_table_meta>();
  table.num_servers = 3;
  expect_refused(wire::decode<wire::node_table_meta>(wire::encode(table)),
                 "lists 2 servers but says 3", "table");
  table = sample<wire::node_table_meta>();
  table.rank = 2;
  expect_refused(wire::decode<wire::node_table_meta>(wire::encode(table)),
                 "rank 2 outside the cluster", "rank");
  auto d = sample<wire::data_meta>();
  d.part = 3;
  expect_refused(wire::decode<wire::data_meta>(wire::encode(d)), "data: bad part index", "part");
  d = sample<wire::data_meta>();
  d.row = 0;
  expect_refused(wire::decode<wire::data_meta>(wire::encode(d)), "data: bad row size", "row");
  d = sample<wire::data_meta>();
  d.rows = 4;
  expect_refused(wire::decode<wire::data_meta>(wire::encode(d)), "data: more row ids than rows",
                 "rows");
  // A batch entry is a data request, and its count fits the bytes that follow.
  auto b = sample<wire::batch_meta>();
  b.entries[1].type = static_cast<std::uint8_t>(wire::msg::command);
  expect_refused(wire::decode<wire::batch_meta>(wire::encode(b)), "a batch entry of type 25",
                 "batch entry type");
  b = sample<wire::batch_meta>();
  b.entries[0].data.part = 5;
  expect_refused(wire::decode<wire::batch_meta>(wire::encode(b)), "batch: bad part index",
                 "batch entry part");
  bytes bc = wire::encode(sample<wire::batch_meta>());
  bc[2] = 3;  // the low byte of the entry count (after flag and version)
  expect_refused(wire::decode<wire::batch_meta>(bc), "entry count: length 3 exceeds the bytes left",
                 "batch count");
  bc[2] = 0;
  bc[4] = 1;  // 65536 entries
  expect_refused(wire::decode<wire::batch_meta>(bc), "exceeds the cap 8192", "many entries");
  auto br = sample<wire::batch_reply_meta>();
  br.entries[0].bytes = (std::uint64_t{1} << 40) + 1;
  expect_refused(wire::decode<wire::batch_reply_meta>(wire::encode(br)),
                 "batch reply entry too big", "batch reply bytes");
  bytes k = wire::encode(sample<wire::data_meta>());
  k[2] = 2;  // the key kind flag
  expect_refused(wire::decode<wire::data_meta>(k), "data: bad key kind", "key kind");
  // The handshake's metas go through the same decoder, with their own cap.
  namespace hs = net::handshake;
  bytes g = hs::encode(hs::goodbye{errc::timeout, "x"});
  g[1] = 200;
  auto bad_code = hs::decode_goodbye(g.data(), g.size());
  expect_refused(bad_code, "goodbye: unknown error code 200", "goodbye code");
  bytes big(hs::max_meta_size + 1, 0);
  expect_refused(hs::decode_hello(big.data(), big.size()), "hello: 513 bytes exceed the cap of 512",
                 "big hello");
  expect_refused(hs::decode_welcome(nullptr, 0), "welcome: empty", "empty welcome");
  bytes w = hs::encode(hs::welcome{});
  expect_refused(hs::decode_welcome(w.data(), w.size() - 1), "welcome: mac: truncated", "welcome");
}

}  // namespace
}  // namespace kvactor
