// A worker's fusion of small keys (actors/src/dist/fusion_outbox.*), without sockets: requests
// for one server leave as one batch message at the end of a call, when the budget or the
// metadata cap is reached, or when the window passes; the batch's meta names every request
// and its payload is theirs one after another; inside a batch, priority orders the requests
// only where each key part's own order is kept; a batch that cannot leave fails each request;
// a request alone leaves as its own message.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "dist/fusion_outbox.hpp"
#include "kvactor/dtype.hpp"

namespace kvactor::detail {
namespace {

using namespace std::chrono_literals;

// What left: each batch, decoded, with its server and payload bytes.
struct wire_log {
  struct sent {
    std::uint32_t server;
    wire::batch_meta meta;
    std::string payload;
    std::int32_t priority;
    bool fused;  // a batch message (else the one request's own)
  };
  std::mutex mu;
  std::condition_variable cv;
  std::vector<sent> batches;
  std::vector<std::uint64_t> streams;
  std::vector<std::pair<std::uint64_t, status>> failed;
  status refuse;  // not ok: send_fn refuses with it

  fusion_outbox::send_fn send() {
    return [this](std::uint32_t server, net::outgoing&& m) {
      std::lock_guard<std::mutex> g(mu);
      if (!refuse.is_ok()) return refuse;
      wire::batch_meta meta;
      const bool fused = m.type == static_cast<std::uint8_t>(wire::msg::batch);
      if (fused) {
        auto b = wire::decode<wire::batch_meta>(m.meta);
        EXPECT_TRUE(b.has_value());
        if (b) meta = *b;
      } else {  // a batch of one leaves as its request: recorded as a batch of one
        auto d = wire::decode<wire::data_meta>(m.meta);
        EXPECT_TRUE(d.has_value());
        meta.entries.push_back(wire::batch_entry{m.type, m.flags, m.id, m.priority, m.payload_size,
                                                 d ? *d : wire::data_meta{}});
      }
      batches.push_back(sent{server, meta,
                             std::string(static_cast<const char*>(m.payload), m.payload_size),
                             m.priority, fused});
      streams.push_back(m.stream);
      cv.notify_all();
      return status{};
    };
  }
  fusion_outbox::fail_fn fail() {
    return [this](std::uint64_t id, const status& why) {
      std::lock_guard<std::mutex> g(mu);
      failed.emplace_back(id, why);
    };
  }
};

fusion_settings settings(std::uint64_t budget = 1 << 20, std::chrono::microseconds window = 0us,
                         std::size_t meta = 64 * 1024) {
  fusion_settings s;
  s.key_bytes = 4096;
  s.budget = budget;
  s.window = window;
  s.max_meta_bytes = meta;
  return s;
}

// A push of key k with payload `text` (kept alive by the caller), as the router builds it.
void add_push(fusion_outbox& f, std::uint32_t server, std::int64_t k, std::uint64_t id,
              const std::string& text, std::int32_t priority = 0) {
  net::outgoing m;
  m.type = static_cast<std::uint8_t>(wire::msg::push);
  m.id = id;
  m.priority = priority;
  m.payload = text.data();
  m.payload_size = text.size();
  wire::data_meta d;
  d.key = wire::wire_key::from(key{k});
  d.numel = text.size();
  d.dtype = static_cast<std::uint8_t>(kvactor::dtype::uint8);
  f.add(server, std::move(m), std::move(d), text.size());
}

std::vector<std::uint64_t> ids_of(const wire::batch_meta& b) {
  std::vector<std::uint64_t> ids;
  for (const auto& e : b.entries)
    ids.push_back(e.id);
  return ids;
}

TEST(FusionOutbox, OneBatchPerServerAtTheEndOfACall) {
  wire_log log;
  fusion_outbox f(settings(), log.send(), log.fail());
  f.start(2);
  const std::string a = "aaaa", b = "bb", c = "cccccc";
  add_push(f, 0, 1, 11, a);
  add_push(f, 1, 2, 12, b);
  add_push(f, 0, 3, 13, c);
  EXPECT_TRUE(log.batches.empty()) << "nothing leaves before the call has issued its keys";
  f.end_call();
  ASSERT_EQ(log.batches.size(), 2u);
  EXPECT_EQ(log.batches[0].server, 0u);
  EXPECT_EQ(ids_of(log.batches[0].meta), (std::vector<std::uint64_t>{11, 13}));
  EXPECT_EQ(log.batches[0].payload, a + c);
  EXPECT_EQ(log.batches[0].meta.entries[1].bytes, c.size());
  EXPECT_EQ(log.batches[0].meta.entries[1].data.key.id, 3);
  EXPECT_TRUE(log.batches[0].fused);
  EXPECT_EQ(log.batches[1].server, 1u);
  EXPECT_EQ(log.batches[1].payload, b);
  EXPECT_FALSE(log.batches[1].fused) << "a request alone leaves as its own message";
  EXPECT_EQ(log.batches[1].meta.entries[0].id, 12u);
  EXPECT_EQ(log.batches[1].meta.entries[0].data.key.id, 2);
  EXPECT_EQ(log.streams[0], log.streams[1]) << "one stream: a key's order holds across messages";
  f.end_call();
  EXPECT_EQ(log.batches.size(), 2u) << "an empty batch never leaves";
  EXPECT_TRUE(log.failed.empty());
}

TEST(FusionOutbox, BudgetAndMetadataCapSplitBatches) {
  wire_log log;
  fusion_outbox f(settings(10), log.send(), log.fail());
  f.start(1);
  const std::string four = "0123";
  for (std::uint64_t i = 0; i < 5; ++i)
    add_push(f, 0, static_cast<std::int64_t>(i), 100 + i, four);
  // 4 + 4 fit in 10 bytes, a third would not: the batch leaves before it.
  ASSERT_EQ(log.batches.size(), 2u);
  EXPECT_EQ(ids_of(log.batches[0].meta), (std::vector<std::uint64_t>{100, 101}));
  EXPECT_EQ(ids_of(log.batches[1].meta), (std::vector<std::uint64_t>{102, 103}));
  f.flush();
  ASSERT_EQ(log.batches.size(), 3u);
  EXPECT_EQ(ids_of(log.batches[2].meta), (std::vector<std::uint64_t>{104}));

  // The metadata cap: long key names fill it before the bytes do.
  wire_log named;
  fusion_outbox g(settings(1 << 20, 0us, 400), named.send(), named.fail());
  g.start(1);
  for (std::uint64_t i = 0; i < 4; ++i) {
    net::outgoing m;
    m.type = static_cast<std::uint8_t>(wire::msg::pull);
    m.id = i;
    wire::data_meta d;
    d.key = wire::wire_key::from(key{std::string(100, static_cast<char>('a' + i))});
    d.numel = 1;
    g.add(0, std::move(m), std::move(d), 4);
  }
  g.flush();
  ASSERT_EQ(named.batches.size(), 2u);
  EXPECT_EQ(named.batches[0].meta.entries.size(), 2u);
  EXPECT_EQ(named.batches[1].meta.entries.size(), 2u);
  for (const auto& s : named.batches)
    EXPECT_TRUE(s.payload.empty());
}

TEST(FusionOutbox, PriorityOrdersABatchButNeverAKeysOwnRequests) {
  wire_log log;
  fusion_outbox f(settings(), log.send(), log.fail());
  f.start(1);
  const std::string x = "x";
  add_push(f, 0, 1, 1, x, 0);   // key 1, low
  add_push(f, 0, 2, 2, x, 5);   // key 2, high
  add_push(f, 0, 1, 3, x, 9);   // key 1 again, higher still: key 1's first must stay before it
  add_push(f, 0, 3, 4, x, -1);  // key 3, lowest
  f.end_call();
  ASSERT_EQ(log.batches.size(), 1u);
  EXPECT_EQ(ids_of(log.batches[0].meta), (std::vector<std::uint64_t>{1, 3, 2, 4}));
  EXPECT_EQ(log.batches[0].priority, 9) << "the batch goes at its most urgent request's";
  // The rule alone: equal priorities keep the order they came in.
  wire::data_meta k1, k2;
  k1.key = wire::wire_key::from(key{1});
  k2.key = wire::wire_key::from(key{2});
  EXPECT_EQ(fusion_order({3, 3, 3}, {&k1, &k2, &k1}), (std::vector<std::size_t>{0, 1, 2}));
  EXPECT_EQ(fusion_order({0, 7, 1}, {&k1, &k2, &k1}), (std::vector<std::size_t>{1, 0, 2}));
  // Parts of one key are apart: part 1 may overtake part 0.
  wire::data_meta k1p1 = k1;
  k1p1.part = 1;
  k1p1.num_parts = 2;
  EXPECT_EQ(fusion_order({0, 4}, {&k1, &k1p1}), (std::vector<std::size_t>{1, 0}));
}

TEST(FusionOutbox, WindowHoldsBatchesForLaterCallsThenSendsThem) {
  wire_log log;
  fusion_outbox f(settings(1 << 20, 200000us), log.send(), log.fail());
  f.start(1);
  const std::string a = "a", b = "b";
  add_push(f, 0, 1, 1, a);
  f.end_call();
  add_push(f, 0, 2, 2, b);
  f.end_call();
  // The window's thread sends both together once the window has passed.
  std::unique_lock<std::mutex> lk(log.mu);
  ASSERT_TRUE(log.cv.wait_for(lk, 10s, [&] { return !log.batches.empty(); }));
  ASSERT_EQ(log.batches.size(), 1u);
  EXPECT_EQ(ids_of(log.batches[0].meta), (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(log.batches[0].payload, "ab");
  lk.unlock();
  // stop() sends what is pending without waiting for the window.
  add_push(f, 0, 3, 3, a);
  f.stop();
  std::lock_guard<std::mutex> g(log.mu);
  ASSERT_EQ(log.batches.size(), 2u);
  EXPECT_EQ(ids_of(log.batches[1].meta), (std::vector<std::uint64_t>{3}));
}

TEST(FusionOutbox, ABatchThatCannotLeaveFailsEachOfItsRequests) {
  wire_log log;
  log.refuse = status{errc::invalid_argument, "over the cluster's limit"};
  fusion_outbox f(settings(), log.send(), log.fail());
  f.start(1);
  const std::string a = "a";
  add_push(f, 0, 1, 7, a);
  add_push(f, 0, 2, 8, a);
  f.end_call();
  EXPECT_TRUE(log.batches.empty());
  ASSERT_EQ(log.failed.size(), 2u);
  EXPECT_EQ(log.failed[0].first, 7u);
  EXPECT_EQ(log.failed[1].first, 8u);
  EXPECT_EQ(log.failed[1].second.code(), errc::invalid_argument);
}

TEST(FusionOutbox, OnlySmallWholeKeysAreFused) {
  wire_log log;
  fusion_outbox f(settings(), log.send(), log.fail());
  EXPECT_TRUE(f.fuses(4, 1));
  EXPECT_TRUE(f.fuses(4096, 1));
  EXPECT_FALSE(f.fuses(4097, 1));
  EXPECT_FALSE(f.fuses(64, 2)) << "a key split over servers travels in parts";
  auto off = settings();
  off.key_bytes = 0;
  fusion_outbox none(off, log.send(), log.fail());
  EXPECT_FALSE(none.fuses(4, 1));
}

}  // namespace
}  // namespace kvactor::detail
