// A server's handling of a fused batch (actors/src/dist/server_dispatch.cpp, dispatcher::batch)
// with a recording shard actor and a recording connection, no sockets: each entry becomes the
// request it stands for, in the batch's order, one message per shard; an entry whose payload
// does not match its meta is refused alone (its batch-mates go on); the answers given while the
// shard applies its share leave as one batch_reply; a batch whose meta does not decode or whose
// entries do not add up to its payload closes the connection with protocol_error, and no
// request of it reaches a shard. And an idle shard's share applied on the thread that decoded
// the batch.
#include <gtest/gtest.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "../support/recording_connection.hpp"
#include "dist/rank_binding.hpp"
#include "dist/server_dispatch.hpp"
#include "dist/server_messages.hpp"
#include "kvactor/dtype.hpp"

namespace kvactor::detail {
namespace {

using namespace std::chrono_literals;
using testing::recording_connection;

// What the shard saw: each request's kind, id and whether the dispatcher refused it.
struct shard_log {
  std::mutex mu;
  std::vector<std::string> seen;
};

struct fixture {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::shared_ptr<shard_log> log = std::make_shared<shard_log>();
  std::shared_ptr<server_gate> gate = std::make_shared<server_gate>();  // no core: by message
  std::shared_ptr<dispatcher> disp;
  std::shared_ptr<recording_connection> conn = std::make_shared<recording_connection>();

  fixture() {
    sys = std::make_unique<caf::actor_system>(cfg);
    // The shard answers each request as a server_core would answer a pull of a 1-float
    // key, or with the dispatcher's refusal.
    // (The unused int: CAF 0.17 dereferences a null argument tuple for an actor function
    // without arguments, which UBSan reports.)
    auto shard = sys->spawn(
        [l = log](caf::event_based_actor*, int) -> caf::behavior {
          return {[l](const shard_batch& b) {
                    for (const auto& r : b.requests) {
                      {
                        std::lock_guard<std::mutex> g(l->mu);
                        l->seen.push_back(std::string{wire::to_string(r->kind)} + " " +
                                          std::to_string(r->id) + " " +
                                          to_string(r->rejected.code()));
                      }
                      const tensor v = tensor::full(shape{{1}}, static_cast<double>(r->id));
                      r->reply(r->rejected, r->rejected.is_ok() ? &v : nullptr);
                    }
                    b.replies->shard_done();
                  },
                  [](const server_request_ptr&) {}};
        },
        0);
    auto binding = std::make_shared<rank_binding>("job");
    binding->set_key("0123456789abcdef0123456789abcdef");
    auto token = rank_token("0123456789abcdef0123456789abcdef", "job", 0);
    EXPECT_TRUE(token.has_value());
    status bound{errc::internal, "not answered"};
    binding->claim(conn.get(), 0, *token, [&](const status& s) { bound = s; });
    EXPECT_TRUE(bound.is_ok()) << bound.to_string();
    disp = std::make_shared<dispatcher>(
        std::vector<caf::actor>{shard}, std::vector<std::shared_ptr<server_gate>>{gate},
        caf::actor{}, std::make_shared<std::atomic<std::int64_t>>(0), server_file_dirs{}, binding,
        net::caps{});
  }
  ~fixture() {
    disp.reset();
    sys.reset();
  }
};

wire::batch_entry entry(wire::msg type, std::uint64_t id, std::uint64_t bytes,
                        std::uint64_t numel = 1) {
  wire::batch_entry e;
  e.type = static_cast<std::uint8_t>(type);
  e.id = id;
  e.bytes = bytes;
  e.data.key = wire::wire_key::from(key{std::int64_t(id)});
  e.data.numel = numel;
  e.data.dtype = static_cast<std::uint8_t>(dtype::float32);
  return e;
}

net::message batch_of(const wire::batch_meta& meta, std::string& payload) {
  net::message m;
  m.type = static_cast<std::uint8_t>(wire::msg::batch);
  m.stream = 9;
  m.meta = wire::encode(meta);
  m.payload_data = payload.empty() ? nullptr : payload.data();
  m.payload_size = payload.size();
  return m;
}

TEST(ServerBatch, EntriesBecomeRequestsInOrderAndAnswerTogether) {
  fixture f;
  wire::batch_meta meta;
  meta.entries = {entry(wire::msg::push, 1, 4), entry(wire::msg::push, 2, 4, 3),
                  entry(wire::msg::pull, 3, 0)};
  std::string payload(8, '\0');
  const float one = 1;
  std::memcpy(payload.data(), &one, 4);
  f.disp->on_message(f.conn, batch_of(meta, payload));
  std::unique_lock<std::mutex> lk(f.conn->mu);
  ASSERT_TRUE(f.conn->cv.wait_for(lk, 10s, [&] { return !f.conn->sent.empty(); }));
  EXPECT_TRUE(f.conn->closed.is_ok());
  {
    std::lock_guard<std::mutex> g(f.log->mu);
    // Entry 2 says 3 floats but carries 4 bytes: refused alone, still in its place.
    EXPECT_EQ(f.log->seen,
              (std::vector<std::string>{"push 1 ok", "push 2 protocol_error", "pull 3 ok"}));
  }
  ASSERT_EQ(f.conn->sent.size(), 1u);
  const auto& m = f.conn->sent[0];
  EXPECT_EQ(m.type, static_cast<std::uint8_t>(wire::msg::batch_reply));
  EXPECT_EQ(m.stream, 9u);
  auto answers = wire::decode<wire::batch_reply_meta>(m.meta);
  ASSERT_TRUE(answers.has_value());
  ASSERT_EQ(answers->entries.size(), 3u);
  EXPECT_EQ(answers->entries[0].code, 0);
  EXPECT_EQ(answers->entries[1].id, 2u);
  EXPECT_EQ(answers->entries[1].code, static_cast<std::uint8_t>(errc::protocol_error));
  EXPECT_EQ(answers->entries[2].bytes, 4u);
  ASSERT_EQ(m.payload_size, 8u);
  float values[2];
  std::memcpy(values, m.payload, 8);
  EXPECT_EQ(values[0], 1.0f);
  EXPECT_EQ(values[1], 3.0f);
}

TEST(ServerBatch, ABatchThatDoesNotAddUpClosesTheConnection) {
  fixture f;
  wire::batch_meta meta;
  meta.entries = {entry(wire::msg::push, 1, 4), entry(wire::msg::push, 2, 4)};
  std::string payload(12, '\0');  // 8 named, 12 sent
  f.disp->on_message(f.conn, batch_of(meta, payload));
  EXPECT_EQ(f.conn->closed.code(), errc::protocol_error);
  EXPECT_NE(f.conn->closed.message().find("name 8 bytes, its payload has 12"), std::string::npos)
      << f.conn->closed.message();

  fixture g;
  std::string none;
  net::message bad = batch_of(meta, none);
  bad.meta.resize(bad.meta.size() - 3);  // cut: does not decode
  g.disp->on_message(g.conn, std::move(bad));
  EXPECT_EQ(g.conn->closed.code(), errc::protocol_error);
  EXPECT_TRUE(g.conn->sent.empty());
  std::lock_guard<std::mutex> l(f.log->mu);
  EXPECT_TRUE(f.log->seen.empty()) << "no request of a refused batch reaches a shard";
}

// With a core behind an idle gate and no updater, the share runs where the batch was decoded
// (server_gate.hpp): its answers have left when on_message returns and the shard actor saw
// nothing. With an updater, a share of more than 64 KiB of values goes to the actor.
TEST(ServerBatch, AnIdleShardAppliesItsShareWhereTheBatchWasDecoded) {
  fixture f;
  {
    std::lock_guard<std::mutex> held(f.gate->mu);
    f.gate->core = std::make_unique<server_core>(1);
    f.gate->note_modes();
  }
  wire::batch_meta meta;
  meta.entries = {entry(wire::msg::pull, 7, 0), entry(wire::msg::pull, 8, 0, 20000)};
  std::string none;
  f.disp->on_message(f.conn, batch_of(meta, none));
  {
    std::lock_guard<std::mutex> g(f.conn->mu);
    ASSERT_EQ(f.conn->sent.size(), 1u) << "answered before on_message returned";
    auto answers = wire::decode<wire::batch_reply_meta>(f.conn->sent[0].meta);
    ASSERT_TRUE(answers.has_value());
    ASSERT_EQ(answers->entries.size(), 2u);
    for (const auto& a : answers->entries)
      EXPECT_EQ(a.code, static_cast<std::uint8_t>(errc::not_initialized)) << a.id;
  }
  {
    std::lock_guard<std::mutex> g(f.log->mu);
    EXPECT_TRUE(f.log->seen.empty());
  }
  {
    std::lock_guard<std::mutex> held(f.gate->mu);
    f.gate->core->set_updater(
        make_updater([](const key&, const tensor& merged, tensor& stored) { stored = merged; }));
    f.gate->note_modes();
  }
  f.disp->on_message(f.conn, batch_of(meta, none));  // 80,004 bytes of values: by message
  std::unique_lock<std::mutex> lk(f.conn->mu);
  ASSERT_TRUE(f.conn->cv.wait_for(lk, 10s, [&] { return f.conn->sent.size() == 2; }));
  std::lock_guard<std::mutex> g(f.log->mu);
  EXPECT_EQ(f.log->seen, (std::vector<std::string>{"pull 7 ok", "pull 8 ok"}));
}

}  // namespace
}  // namespace kvactor::detail
