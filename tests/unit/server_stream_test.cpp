// The server's dispatcher choosing a payload sink for a push (actors/src/dist/server_dispatch.cpp,
// dispatcher::sink_for), with a shard actor that runs a real server_core behind its gate and
// recording connections, no sockets: which pushes stream into their round (big, dense,
// uncompressed, from a bound worker, matching their part), the pushes streamed through the
// sinks summing exactly and being answered, a busy gate holding a push back instead of
// receiving it whole, and a push for the next round waiting for it. And the gate letting an I/O
// thread serve a big request only while the shard has no updater.
#include <gtest/gtest.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>

#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "../support/recording_connection.hpp"
#include "dist/push_intake.hpp"
#include "dist/rank_binding.hpp"
#include "dist/server_dispatch.hpp"
#include "dist/server_messages.hpp"

namespace kvactor::detail {
namespace {

using namespace std::chrono_literals;
using testing::recording_connection;

constexpr std::size_t n = 100000;  // 400 KB of float32: above what an I/O thread serves itself
constexpr char rank_key[] = "0123456789abcdef0123456789abcdef";

struct fixture {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::shared_ptr<server_gate> gate = std::make_shared<server_gate>();
  std::shared_ptr<dispatcher> disp;
  std::vector<std::shared_ptr<recording_connection>> conns;
  std::shared_ptr<rank_binding> binding = std::make_shared<rank_binding>("job");

  fixture() {
    sys = std::make_unique<caf::actor_system>(cfg);
    gate->core = std::make_unique<server_core>(2);
    gate->note_modes();
    // The shard as server.cpp runs it: the gate held, the message taken off its counts.
    // (The unused int: CAF 0.17 dereferences a null argument tuple for an actor function
    // without arguments, which UBSan reports.)
    auto shard = sys->spawn(
        [g = gate](caf::event_based_actor*, int) -> caf::behavior {
          return {[g](const server_request_ptr& r) {
            std::lock_guard<std::mutex> held(g->mu);
            g->taken(server_gate::count_for(r->worker, r->route));
            g->core->handle(r);
          }};
        },
        0);
    binding->set_key(rank_key);
    for (std::int64_t w = 0; w < 2; ++w) {
      conns.push_back(std::make_shared<recording_connection>(w));
      auto token = rank_token(rank_key, "job", w);
      EXPECT_TRUE(token.has_value());
      status bound{errc::internal, "not answered"};
      binding->claim(conns.back().get(), w, *token, [&](const status& s) { bound = s; });
      EXPECT_TRUE(bound.is_ok()) << bound.to_string();
    }
    disp = std::make_shared<dispatcher>(
        std::vector<caf::actor>{shard}, std::vector<std::shared_ptr<server_gate>>{gate},
        caf::actor{}, std::make_shared<std::atomic<std::int64_t>>(0), server_file_dirs{}, binding,
        net::caps{});
    init(std::vector<float>(n, 0));
  }
  ~fixture() {
    disp.reset();
    sys.reset();
  }

  static wire::data_meta meta_of(std::size_t numel, dtype t = dtype::float32) {
    wire::data_meta d;
    d.key = wire::wire_key::from(key{std::int64_t{1}});
    d.numel = numel;
    d.dtype = static_cast<std::uint8_t>(t);
    return d;
  }

  void init(std::vector<float> v) {
    net::message m;
    m.type = static_cast<std::uint8_t>(wire::msg::init);
    m.id = 1;
    m.meta = wire::encode(meta_of(v.size()));
    m.payload_data = v.data();
    m.payload_size = v.size() * 4;
    disp->on_message(conns[0], std::move(m));
    EXPECT_TRUE(wait_reply(0, 1).is_ok());
  }

  // The sink the dispatcher gives worker w's push (id) of `bytes` payload bytes, or null.
  net::payload_sink_ptr sink(std::int64_t w, std::uint64_t id, std::uint64_t bytes,
                             const wire::data_meta& d, std::uint16_t flags = 0,
                             wire::msg type = wire::msg::push) {
    const auto meta = wire::encode(d);
    const net::message_head h{static_cast<std::uint8_t>(type), flags, id, 5, &meta, bytes, 0};
    return disp->sink_for(conns[static_cast<std::size_t>(w)], h);
  }

  // Feeds `values` to the sink in slices of `slice` bytes as the transport would (offering a
  // declined slice again), then delivers the message.
  void stream(std::int64_t w, std::uint64_t id, const net::payload_sink_ptr& s,
              const std::vector<float>& values, std::size_t slice = 64 * 1024) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(values.data());
    const std::size_t total = values.size() * 4;
    for (std::size_t at = 0; at < total;) {
      const std::size_t k = std::min(slice, total - at);
      if (s->consume(at, p + at, k)) at += k;
    }
    net::message m;
    m.type = static_cast<std::uint8_t>(wire::msg::push);
    m.id = id;
    m.stream = 5;
    m.meta = wire::encode(meta_of(values.size()));
    m.payload_size = total;
    m.sink = s;
    disp->on_message(conns[static_cast<std::size_t>(w)], std::move(m));
  }

  // The answer to worker w's request `id` (waits for it, boundedly).
  status wait_reply(std::int64_t w, std::uint64_t id) {
    auto& c = *conns[static_cast<std::size_t>(w)];
    std::unique_lock<std::mutex> lk(c.mu);
    const net::outgoing* found = nullptr;
    c.cv.wait_for(lk, 10s, [&] {
      for (const auto& m : c.sent)
        if (m.id == id) found = &m;
      return found != nullptr;
    });
    if (!found) return status{errc::timeout, "no reply to " + std::to_string(id)};
    auto r = wire::decode<wire::reply_meta>(found->meta);
    if (!r) return r.error();
    return status{static_cast<errc>(r->code), r->message};
  }

  // Waits until the shard has taken and handled everything sent to it (nothing else sends
  // meanwhile), so that the gate is free for the next sink_for.
  void quiet() {
    for (;;) {
      std::lock_guard<std::mutex> held(gate->mu);
      if (gate->in_flight.load() == 0) return;
    }
  }

  // The stored value, read under the gate (as a pull would see it).
  std::vector<float> value() {
    std::vector<float> out;
    auto r = std::make_shared<server_request>();
    r->kind = wire::msg::pull;
    r->meta = meta_of(n);
    r->worker = 1;
    r->reply = [&out](const status&, const tensor* v) {
      if (v) out.assign(v->cdata<float>(), v->cdata<float>() + v->size());
    };
    std::lock_guard<std::mutex> held(gate->mu);
    gate->core->handle(r);
    return out;
  }
};

std::vector<float> ramp(float scale, float offset) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i)
    v[i] = scale * static_cast<float>(i % 50) + offset;
  return v;
}

TEST(ServerStream, OnlyBigDensePushesOfBoundWorkersThatMatchTheirPartGetASink) {
  fixture f;
  f.quiet();  // (with the gate busy, a push the round cannot take gets a pending sink too)
  const auto d = fixture::meta_of(n);
  EXPECT_FALSE(f.sink(0, 10, 64 * 1024, fixture::meta_of(16 * 1024)))
      << "at most what an I/O thread serves itself";
  EXPECT_FALSE(f.sink(0, 11, n * 4, d, wire::flag_compressed)) << "compressed";
  EXPECT_FALSE(f.sink(0, 12, n * 4 + 4, d)) << "payload size and meta disagree";
  EXPECT_FALSE(f.sink(0, 13, n * 8, fixture::meta_of(n, dtype::float64))) << "another type";
  EXPECT_FALSE(f.sink(0, 14, n * 4, d, 0, wire::msg::pull)) << "not a push";
  auto stranger = std::make_shared<recording_connection>(1);  // never bound its rank
  const auto meta = wire::encode(d);
  const net::message_head h{static_cast<std::uint8_t>(wire::msg::push), 0, 15, 5, &meta, n * 4, 0};
  EXPECT_FALSE(f.disp->sink_for(stranger, h)) << "an unbound connection";
  auto bad = d;
  bad.numel = n + 1;
  EXPECT_FALSE(f.sink(0, 16, (n + 1) * 4, bad)) << "another shape than the part";
  EXPECT_TRUE(f.sink(0, 17, n * 4, d, 0, wire::msg::pushpull));
}

TEST(ServerStream, PushesStreamedThroughTheDispatcherSumExactly) {
  fixture f;
  const auto a = ramp(1, 1), b = ramp(-2, 7);
  const auto d = fixture::meta_of(n);
  auto s0 = f.sink(0, 20, n * 4, d);
  auto s1 = f.sink(1, 21, n * 4, d);
  ASSERT_TRUE(s0 && s1);
  f.stream(0, 20, s0, a, 100003);  // slices that cut elements
  f.stream(1, 21, s1, b);
  EXPECT_TRUE(f.wait_reply(0, 20).is_ok());
  EXPECT_TRUE(f.wait_reply(1, 21).is_ok());
  const auto v = f.value();
  ASSERT_EQ(v.size(), n);
  for (std::size_t i = 0; i < n; ++i)
    ASSERT_EQ(v[i], a[i] + b[i]) << i;
}

TEST(ServerStream, ABusyGateHoldsThePushBackInsteadOfReceivingItWhole) {
  fixture f;
  const auto a = ramp(1, 1), b = ramp(3, 0);
  const auto d = fixture::meta_of(n);
  net::payload_sink_ptr s0;
  {
    std::lock_guard<std::mutex> busy(f.gate->mu);  // the shard is working
    s0 = f.sink(0, 30, n * 4, d);
    ASSERT_TRUE(s0) << "a pending sink, not the whole path";
    const auto* p = reinterpret_cast<const std::uint8_t*>(a.data());
    EXPECT_FALSE(s0->consume(0, p, 4096)) << "declined while the gate is held";
  }
  auto s1 = f.sink(1, 31, n * 4, d);
  ASSERT_TRUE(s1);
  f.stream(0, 30, s0, a);  // asks again: the gate is free now
  f.stream(1, 31, s1, b);
  EXPECT_TRUE(f.wait_reply(0, 30).is_ok());
  EXPECT_TRUE(f.wait_reply(1, 31).is_ok());
  const auto v = f.value();
  ASSERT_EQ(v.size(), n);
  for (std::size_t i = 0; i < n; ++i)
    ASSERT_EQ(v[i], a[i] + b[i]) << i;
}

TEST(ServerStream, APushForTheNextRoundIsHeldUntilItsRoundOpens) {
  fixture f;
  const auto a = ramp(1, 1), b = ramp(3, 0), a2 = ramp(2, 2), b2 = ramp(1, 0);
  const auto d = fixture::meta_of(n);
  auto s0 = f.sink(0, 40, n * 4, d);
  ASSERT_TRUE(s0);
  f.stream(0, 40, s0, a);
  auto next = f.sink(0, 41, n * 4, d);  // worker 0 is in round 1 already
  ASSERT_TRUE(next);
  const auto* p = reinterpret_cast<const std::uint8_t*>(a2.data());
  EXPECT_FALSE(next->consume(0, p, 4096)) << "held: round 1 is open";
  auto s1 = f.sink(1, 42, n * 4, d);
  ASSERT_TRUE(s1);
  f.stream(1, 42, s1, b);  // round 1 closes (on the shard's thread)
  EXPECT_TRUE(f.wait_reply(0, 40).is_ok());
  f.stream(0, 41, next, a2);  // offered again until round 2 takes it
  auto t1 = f.sink(1, 43, n * 4, d);
  ASSERT_TRUE(t1);
  f.stream(1, 43, t1, b2);
  EXPECT_TRUE(f.wait_reply(0, 41).is_ok());
  EXPECT_TRUE(f.wait_reply(1, 43).is_ok());
  const auto v = f.value();
  ASSERT_EQ(v.size(), n);
  for (std::size_t i = 0; i < n; ++i)
    ASSERT_EQ(v[i], a2[i] + b2[i]) << i;
}

// Without an updater a round's close takes its sum as the value, so an I/O thread may serve a
// request of any size; with one, an update could hold it for milliseconds: big requests go
// to the shard actor, small ones still run where they were decoded.
TEST(ServerStream, ABigRequestRunsOnTheIOThreadOnlyWhileNoUpdaterIsSet) {
  server_gate g;
  g.core = std::make_unique<server_core>(2);
  g.note_modes();
  server_request big, small;
  big.meta = fixture::meta_of(n);
  small.meta = fixture::meta_of(4);
  EXPECT_TRUE(g.try_here(big)) << "no updater";
  EXPECT_TRUE(g.try_here(small));
  g.core->set_updater(
      make_updater([](const key&, const tensor& merged, tensor& stored) { stored = merged; }));
  g.note_modes();
  EXPECT_FALSE(g.try_here(big)) << "an updater is set";
  EXPECT_TRUE(g.try_here(small));
  g.core->set_updater(nullptr);
  g.note_modes();
  EXPECT_TRUE(g.try_here(big)) << "the updater is gone again";
  g.sent(server_gate::count_for(0, 0));  // a message to the actor in flight: its order first
  EXPECT_FALSE(g.try_here(big));
  EXPECT_FALSE(g.try_here(small));
}

}  // namespace
}  // namespace kvactor::detail
