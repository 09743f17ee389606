// A server's answers to a fused batch (actors/src/dist/reply_batch.*), over a connection that
// records what it is given: answers given while the shards apply the batch leave together as
// one batch_reply (their values one after another) once the last shard has reported; an
// answer that comes later leaves alone, so no answer waits for another request's, unless it
// is given while another batch is applied (the one whose push closed its round): then it
// leaves with that batch's answers, one batch_reply per connection; the caps split a big batch
// reply; a batch whose shards never report still sends what it gathered.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "dist/reply_batch.hpp"
#include "kvactor/serialization/protocol.hpp"

namespace kvactor::detail {
namespace {

// A connection that keeps what is sent on it.
class recording_connection final : public net::connection {
 public:
  void send(net::outgoing m) override { sent.push_back(std::move(m)); }
  void close(const status& why) override { closed = why; }
  bool is_open() const override { return closed.is_ok(); }
  const net::identity& peer() const override { return id_; }
  std::string remote_address() const override { return "peer:1"; }
  std::string local_address() const override { return "self:2"; }

  std::vector<net::outgoing> sent;
  status closed;

 private:
  net::identity id_;
};

server_request answered(std::uint64_t id, std::int32_t priority = 0) {
  server_request r;
  r.id = id;
  r.priority = priority;
  return r;
}

std::string payload_of(const net::outgoing& m) {
  return std::string(static_cast<const char*>(m.payload), m.payload_size);
}

TEST(ReplyBatch, AnswersGivenWhileShardsApplyLeaveTogether) {
  auto c = std::make_shared<recording_connection>();
  auto rb = std::make_shared<reply_batch>(c, 77, 64 * 1024, 1 << 20);
  rb->expect(2, 3);
  auto v1 = tensor::from(std::vector<float>{1, 2}, shape{{2}});
  auto v2 = tensor::from(std::vector<float>{3}, shape{{1}});
  rb->reply(answered(1), status{}, &v1);
  rb->reply(answered(2, 4), status{errc::not_initialized, "key 9 is not initialized"}, nullptr);
  rb->shard_done();
  EXPECT_TRUE(c->sent.empty()) << "one shard has still to report";
  rb->reply(answered(3), status{}, &v2);
  rb->shard_done();
  ASSERT_EQ(c->sent.size(), 1u);
  const auto& m = c->sent[0];
  EXPECT_EQ(m.type, static_cast<std::uint8_t>(wire::msg::batch_reply));
  EXPECT_EQ(m.stream, 77u);
  EXPECT_EQ(m.priority, 4);
  auto meta = wire::decode<wire::batch_reply_meta>(m.meta);
  ASSERT_TRUE(meta.has_value());
  ASSERT_EQ(meta->entries.size(), 3u);
  EXPECT_EQ(meta->entries[0].id, 1u);
  EXPECT_EQ(meta->entries[0].bytes, 8u);
  EXPECT_EQ(meta->entries[1].code, static_cast<std::uint8_t>(errc::not_initialized));
  EXPECT_EQ(meta->entries[1].message, "key 9 is not initialized");
  EXPECT_EQ(meta->entries[1].bytes, 0u);
  EXPECT_EQ(meta->entries[2].bytes, 4u);
  std::vector<float> got(3);
  ASSERT_EQ(m.payload_size, 12u);
  std::memcpy(got.data(), m.payload, 12);
  EXPECT_EQ(got, (std::vector<float>{1, 2, 3}));

  // Later answers (a dist_sync push that waited for its round) leave alone.
  rb->reply(answered(4, 2), status{}, nullptr);
  ASSERT_EQ(c->sent.size(), 2u);
  EXPECT_EQ(c->sent[1].type, static_cast<std::uint8_t>(wire::msg::reply));
  EXPECT_EQ(c->sent[1].id, 4u);
  EXPECT_EQ(c->sent[1].stream, 77u);
  EXPECT_EQ(c->sent[1].priority, 2);
}

std::vector<std::uint64_t> ids_of(const net::outgoing& m) {
  std::vector<std::uint64_t> ids;
  auto meta = wire::decode<wire::batch_reply_meta>(m.meta);
  EXPECT_TRUE(meta.has_value());
  if (meta)
    for (const auto& e : meta->entries)
      ids.push_back(e.id);
  return ids;
}

TEST(ReplyBatch, LateAnswersGivenWhileAnotherBatchIsAppliedLeaveWithIt) {
  // Worker a's batch waits for its rounds; worker b's batch closes them.
  auto a = std::make_shared<recording_connection>();
  auto b = std::make_shared<recording_connection>();
  auto from_a = std::make_shared<reply_batch>(a, 5, 64 * 1024, 1 << 20);
  from_a->expect(1, 2);
  from_a->shard_done();  // a's pushes gave no answer yet
  auto from_b = std::make_shared<reply_batch>(b, 6, 64 * 1024, 1 << 20);
  from_b->expect(2, 2);
  auto v = tensor::from(std::vector<float>{7}, shape{{1}});
  {
    reply_batch::applying scope(*from_b);
    from_a->reply(answered(1), status{}, &v);
    from_b->reply(answered(10), status{}, &v);
    from_a->reply(answered(2, 3), status{errc::invalid_argument, "bad push"}, nullptr);
  }
  from_b->shard_done();
  EXPECT_TRUE(a->sent.empty()) << "late answers wait for the applied batch's last shard";
  EXPECT_TRUE(b->sent.empty());
  {
    reply_batch::applying scope(*from_b);
    from_b->reply(answered(11), status{}, nullptr);
  }
  from_b->shard_done();
  ASSERT_EQ(b->sent.size(), 1u);
  EXPECT_EQ(ids_of(b->sent[0]), (std::vector<std::uint64_t>{10, 11}));
  ASSERT_EQ(a->sent.size(), 1u);
  const auto& m = a->sent[0];
  EXPECT_EQ(m.type, static_cast<std::uint8_t>(wire::msg::batch_reply));
  EXPECT_EQ(m.stream, 5u) << "on the stream of the batch the answers belong to";
  EXPECT_EQ(m.priority, 3);
  EXPECT_EQ(ids_of(m), (std::vector<std::uint64_t>{1, 2}));
  auto meta = wire::decode<wire::batch_reply_meta>(m.meta);
  ASSERT_TRUE(meta.has_value());
  EXPECT_EQ(meta->entries[1].code, static_cast<std::uint8_t>(errc::invalid_argument));
  ASSERT_EQ(m.payload_size, 4u);
  float got = 0;
  std::memcpy(&got, m.payload, 4);
  EXPECT_EQ(got, 7.0f);

  // Outside any scope a late answer leaves alone. (In the scope of a batch that has left,
  // which is not how shards use it, it still leaves, when the scope closes.)
  from_a->reply(answered(3), status{}, nullptr);
  ASSERT_EQ(a->sent.size(), 2u);
  EXPECT_EQ(a->sent[1].type, static_cast<std::uint8_t>(wire::msg::reply));
  EXPECT_EQ(a->sent[1].id, 3u);
  {
    reply_batch::applying scope(*from_b);
    from_a->reply(answered(4), status{}, nullptr);
  }
  ASSERT_EQ(a->sent.size(), 3u);
  EXPECT_EQ(ids_of(a->sent[2]), (std::vector<std::uint64_t>{4}));
}

TEST(ReplyBatch, ScopesNestAndEachGathersForItsOwnBatch) {
  auto a = std::make_shared<recording_connection>();
  auto b = std::make_shared<recording_connection>();
  auto outer = std::make_shared<reply_batch>(a, 1, 64 * 1024, 1 << 20);
  outer->expect(1, 1);
  auto inner = std::make_shared<reply_batch>(b, 2, 64 * 1024, 1 << 20);
  inner->expect(2, 2);
  {
    reply_batch::applying s1(*outer);
    {
      reply_batch::applying s2(*inner);
      inner->reply(answered(1), status{}, nullptr);  // inner's own
      outer->reply(answered(7), status{}, nullptr);  // outer is still open: its own too
    }
    inner->shard_done();  // one of two shares
    EXPECT_TRUE(b->sent.empty());
    inner->shard_done();  // inner leaves with its answer
    ASSERT_EQ(b->sent.size(), 1u);
    EXPECT_EQ(ids_of(b->sent[0]), (std::vector<std::uint64_t>{1}));
    inner->reply(answered(2), status{}, nullptr);  // late, in outer's scope again: joins it
    EXPECT_EQ(b->sent.size(), 1u);
  }
  outer->shard_done();
  ASSERT_EQ(a->sent.size(), 1u);
  EXPECT_EQ(ids_of(a->sent[0]), (std::vector<std::uint64_t>{7}));
  ASSERT_EQ(b->sent.size(), 2u);
  EXPECT_EQ(b->sent[1].type, static_cast<std::uint8_t>(wire::msg::batch_reply));
  EXPECT_EQ(b->sent[1].stream, 2u);
  EXPECT_EQ(ids_of(b->sent[1]), (std::vector<std::uint64_t>{2}));
}

TEST(ReplyBatch, SharesOfOneBatchOnTwoThreadsLeaveAsOneReply) {
  auto c = std::make_shared<recording_connection>();
  auto rb = std::make_shared<reply_batch>(c, 3, 64 * 1024, 1 << 20);
  rb->expect(2, 200);
  auto share = [&](std::uint64_t first) {
    {
      reply_batch::applying scope(*rb);
      for (std::uint64_t i = first; i < first + 100; ++i)
        rb->reply(answered(i), status{}, nullptr);
    }
    rb->shard_done();
  };
  std::thread t1(share, 0);
  std::thread t2(share, 100);
  t1.join();
  t2.join();
  ASSERT_EQ(c->sent.size(), 1u);
  auto ids = ids_of(c->sent[0]);
  std::sort(ids.begin(), ids.end());
  ASSERT_EQ(ids.size(), 200u);
  for (std::uint64_t i = 0; i < 200; ++i)
    EXPECT_EQ(ids[i], i);
}

TEST(ReplyBatch, CapsSplitABigBatchReply) {
  auto c = std::make_shared<recording_connection>();
  auto rb = std::make_shared<reply_batch>(c, 1, 64 * 1024, 10);  // at most 10 payload bytes
  rb->expect(1, 1);
  std::vector<tensor> values;
  for (int i = 0; i < 5; ++i)
    values.push_back(tensor::from(std::vector<float>{float(i)}, shape{{1}}));
  for (std::uint64_t i = 0; i < 5; ++i)
    rb->reply(answered(i), status{}, &values[i]);
  rb->shard_done();
  ASSERT_EQ(c->sent.size(), 3u);  // 2 + 2 + 1 values of 4 bytes
  std::vector<std::uint64_t> ids;
  std::string all;
  for (const auto& m : c->sent) {
    auto meta = wire::decode<wire::batch_reply_meta>(m.meta);
    ASSERT_TRUE(meta.has_value());
    EXPECT_LE(m.payload_size, 10u);
    for (const auto& e : meta->entries)
      ids.push_back(e.id);
    all += payload_of(m);
  }
  EXPECT_EQ(ids, (std::vector<std::uint64_t>{0, 1, 2, 3, 4}));
  std::vector<float> got(5);
  std::memcpy(got.data(), all.data(), 20);
  EXPECT_EQ(got, (std::vector<float>{0, 1, 2, 3, 4}));
}

TEST(ReplyBatch, ABatchWhoseShardsNeverReportStillAnswers) {
  auto c = std::make_shared<recording_connection>();
  {
    auto rb = std::make_shared<reply_batch>(c, 1, 64 * 1024, 1 << 20);
    rb->expect(3, 3);
    rb->reply(answered(5), status{errc::shut_down, "server stopping"}, nullptr);
    rb->shard_done();
  }
  ASSERT_EQ(c->sent.size(), 1u);
  auto meta = wire::decode<wire::batch_reply_meta>(c->sent[0].meta);
  ASSERT_TRUE(meta.has_value());
  ASSERT_EQ(meta->entries.size(), 1u);
  EXPECT_EQ(meta->entries[0].code, static_cast<std::uint8_t>(errc::shut_down));
}

}  // namespace
}  // namespace kvactor::detail
