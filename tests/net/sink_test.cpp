// Payload sinks (handlers::payload_sink_for): a message's payload handed to the receiver slice
// by slice as it arrives, over TCP and through shared memory. Every byte once and in order,
// then on_message with the sink; a connection that closes mid-payload aborts the sink (before
// on_close) and delivers nothing; a sink that throws closes its connection and is aborted.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <stdexcept>

#include "shm_util.hpp"

namespace kvactor::net {
namespace {

using namespace testing;

bool shm_possible() {
  return detail::shm_allowed_by_environment() && !detail::shm_host_token(0).empty();
}

// What a sink saw. Its calls come on one strand; `busy` catches any two at once.
class recording_sink final : public payload_sink {
 public:
  explicit recording_sink(std::uint64_t total, bool keep = true) : total_(total), keep_(keep) {}

  bool consume(std::uint64_t offset, const void* data, std::size_t size) override {
    if (busy_.exchange(true)) overlapped = true;
    if (decline && decline(offset)) {
      ++declined;
      if (offset != got) out_of_order = true;
      busy_ = false;
      return false;
    }
    if (offset != got) out_of_order = true;
    if (size == 0 || size > caps{}.max_slice_bytes) bad_size = true;
    if (keep_) {
      const auto* p = static_cast<const std::uint8_t*>(data);
      bytes_.insert(bytes_.end(), p, p + size);
    }
    got += size;
    ++slices;
    if (on_consume) on_consume(*this);
    busy_ = false;
    return true;
  }
  void abort(const status& why) noexcept override {
    if (on_abort) on_abort();
    std::lock_guard<std::mutex> g(mu_);
    ++aborts;
    aborted_with = why;
    cv_.notify_all();
  }
  bool wait_aborted(std::chrono::milliseconds timeout = long_wait) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, timeout, [&] { return aborts > 0; });
  }
  const bytes& received() const { return bytes_; }
  std::uint64_t total() const { return total_; }

  std::function<void(recording_sink&)> on_consume;
  std::function<void()> on_abort;
  /// Declines the slice at this offset (this time) when it says so.
  std::function<bool(std::uint64_t offset)> decline;
  std::size_t declined = 0;
  std::uint64_t got = 0;
  std::size_t slices = 0;
  bool out_of_order = false;
  bool bad_size = false;
  bool overlapped = false;
  int aborts = 0;  // guarded by mu_ once the test thread reads it
  status aborted_with;

 private:
  std::uint64_t total_;
  bool keep_;
  bytes bytes_;
  std::atomic<bool> busy_{false};
  std::mutex mu_;
  std::condition_variable cv_;
};

// A server whose sinks the test chooses per message (by `make`), that echoes 16-byte messages
// (for settle) and records the rest, and the order of aborts and closes it saw.
struct sink_server {
  std::mutex mu;
  std::map<std::uint64_t, std::shared_ptr<recording_sink>> sinks;  // by message id
  std::vector<std::string> order;                                  // "abort <id>", "close"
  std::function<std::shared_ptr<recording_sink>(const message_head&)> make;
  std::function<void(const message&)> on_plain;  // a message that came whole
  inbox box;
  event_log log;

  handlers make_handlers() {
    handlers h = recording(&log, nullptr);
    h.payload_sink_for = [this](const connection_ptr&,
                                const message_head& head) -> payload_sink_ptr {
      auto s = make && head.id < 1000 ? make(head) : nullptr;  // settle()'s go the usual way
      if (!s) return nullptr;
      s->on_abort = [this, id = head.id] {
        std::lock_guard<std::mutex> g(mu);
        order.push_back("abort " + std::to_string(id));
      };
      std::lock_guard<std::mutex> g(mu);
      sinks[head.id] = s;
      return s;
    };
    h.on_message = [this](const connection_ptr& c, message&& m) {
      if (m.payload_size == 16 && !m.sink) return c->send(echo_of(std::move(m)));
      if (!m.sink && on_plain) on_plain(m);
      box.push(std::move(m));
    };
    h.on_close = [this](const connection_ptr& c, const status& s) {
      {
        std::lock_guard<std::mutex> g(mu);
        order.push_back("close");
      }
      log.closed(c, s);
    };
    return h;
  }
};

class Sink : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam() && !shm_possible()) GTEST_SKIP() << "KVACTOR_SHM is off, or no host token";
  }
  caps the_caps() const {
    caps c = shm_caps();
    c.shared_memory = GetParam();
    return c;
  }
};

// A server listening with srv's handlers and one client connected to it and settled (shared
// memory offered and answered where the test's parameter allows it). The members go away in
// the reverse of their order: the client's runtime before its inbox, the server's last.
struct sink_link {
  runtime server_rt{2};
  std::shared_ptr<listener> l;
  event_log client_log;
  inbox client_box;
  runtime rt;
  connection_ptr conn;

  ::testing::AssertionResult open(sink_server& srv, const caps& c) {
    auto listening = server_rt.listen("127.0.0.1", 0, ident("server", 0), c, srv.make_handlers());
    if (!listening) return ::testing::AssertionFailure() << listening.error().to_string();
    l = *listening;
    auto connected =
        connect_sync(rt, l->port(), ident("worker", 1), c, recording(&client_log, &client_box));
    if (!connected) return ::testing::AssertionFailure() << connected.error().to_string();
    conn = *connected;
    return settle(conn, client_box);
  }
};

TEST_P(Sink, SlicesArriveInOrderAndComplete) {
  const std::vector<std::size_t> sizes{
      1, 4096, 65536, 65537, 1 << 20, (1 << 20) + 1, (3 << 20) - 5, 5 << 20, (5 << 20) + 123};
  std::vector<bytes> payloads;
  for (std::size_t i = 0; i < sizes.size(); ++i)
    payloads.push_back(pattern(sizes[i], i + 11));
  sink_server srv;
  // Odd ids go to a sink, even ones the ordinary way.
  srv.make = [](const message_head& h) -> std::shared_ptr<recording_sink> {
    return h.id % 2 ? std::make_shared<recording_sink>(h.payload_size) : nullptr;
  };
  sink_link link;
  ASSERT_TRUE(link.open(srv, the_caps()));
  for (std::size_t i = 0; i < sizes.size(); ++i)
    link.conn->send(shm_message(i, payloads[i], i % 3, static_cast<std::int32_t>(i % 2)));
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    auto m = srv.box.pop();
    ASSERT_TRUE(m) << "message " << k << " missing";
    const std::size_t i = m->id;
    SCOPED_TRACE(sizes[i]);
    ASSERT_EQ(m->payload_size, sizes[i]);
    EXPECT_EQ(to_string(m->meta), "m" + std::to_string(i));
    if (i % 2 == 0) {
      EXPECT_FALSE(m->sink);
      EXPECT_EQ(std::memcmp(m->payload_data, payloads[i].data(), sizes[i]), 0);
      continue;
    }
    std::shared_ptr<recording_sink> s;
    {
      std::lock_guard<std::mutex> g(srv.mu);
      s = srv.sinks.at(i);
    }
    EXPECT_EQ(m->sink, s) << "the message names the sink that took its payload";
    EXPECT_EQ(m->payload_data, nullptr);
    EXPECT_FALSE(m->payload_buffer);
    EXPECT_EQ(s->got, sizes[i]);
    EXPECT_EQ(s->received(), payloads[i]);
    EXPECT_FALSE(s->out_of_order);
    EXPECT_FALSE(s->bad_size);
    EXPECT_FALSE(s->overlapped);
    EXPECT_GE(s->slices, (sizes[i] + (1 << 20) - 1) >> 20);
    EXPECT_EQ(s->aborts, 0);
  }
  if (GetParam()) {
    EXPECT_GT(link.server_rt.get_stats().shm_bytes_received, 0u) << "slices came from the slots";
  } else {
    EXPECT_EQ(link.server_rt.get_stats().shm_bytes_received, 0u);
  }
}

TEST_P(Sink, ADeclinedSliceIsOfferedAgainAndNothingIsReadMeanwhile) {
  const std::vector<std::size_t> sizes{(5 << 20) + 123, 3 << 20};
  std::vector<bytes> payloads;
  for (std::size_t i = 0; i < sizes.size(); ++i)
    payloads.push_back(pattern(sizes[i], i + 21));
  const bytes small = pattern(70000, 3);
  sink_server srv;
  std::atomic<bool> holding{false};
  std::atomic<int> read_while_held{0};
  srv.make = [&](const message_head& h) -> std::shared_ptr<recording_sink> {
    if (h.payload_size == small.size()) return nullptr;
    auto s = std::make_shared<recording_sink>(h.payload_size);
    // Every slice is declined twice before it is taken.
    auto offers = std::make_shared<std::map<std::uint64_t, int>>();
    s->decline = [offers, &holding](std::uint64_t offset) {
      const bool no = ++(*offers)[offset] <= 2;
      holding = no;
      return no;
    };
    s->on_consume = [&holding](recording_sink&) { holding = false; };
    return s;
  };
  srv.on_plain = [&](const message&) {
    if (holding) ++read_while_held;
  };
  sink_link link;
  ASSERT_TRUE(link.open(srv, the_caps()));
  // The big ones on stream 0; small urgent ones on stream 1 go between their slices.
  for (std::size_t i = 0; i < sizes.size(); ++i)
    link.conn->send(shm_message(i, payloads[i]));
  for (std::uint64_t i = 10; i < 20; ++i)
    link.conn->send(shm_message(i, small, 1, 5));
  std::size_t bigs = 0;
  for (std::size_t k = 0; k < sizes.size() + 10; ++k) {
    auto m = srv.box.pop();
    ASSERT_TRUE(m) << "message " << k << " missing";
    if (m->id >= 10) {
      EXPECT_EQ(std::memcmp(m->payload_data, small.data(), small.size()), 0);
      continue;
    }
    ASSERT_EQ(m->id, bigs++) << "stream order";
    std::shared_ptr<recording_sink> s;
    {
      std::lock_guard<std::mutex> g(srv.mu);
      s = srv.sinks.at(m->id);
    }
    EXPECT_EQ(s->received(), payloads[m->id]);
    EXPECT_FALSE(s->out_of_order);
    EXPECT_EQ(s->declined, 2 * s->slices);
  }
  EXPECT_EQ(read_while_held.load(), 0) << "a message was delivered while a slice was held";
}

TEST_P(Sink, AConnectionThatClosesMidPayloadAbortsTheSink) {
  // The client closes while the server's sink holds its first slice: more than the segment and
  // the socket buffers can take stays unsent, so the message can never complete.
  const bytes big = pattern(96 << 20, 5);
  sink_server srv;
  std::mutex mu;
  std::condition_variable cv;
  bool first = false, closed = false;
  srv.make = [&](const message_head& h) {
    auto s = std::make_shared<recording_sink>(h.payload_size, false);
    s->on_consume = [&](recording_sink& me) {
      if (me.slices != 1) return;
      std::unique_lock<std::mutex> g(mu);
      first = true;
      cv.notify_all();
      cv.wait_for(g, long_wait, [&] { return closed; });
    };
    return s;
  };
  sink_link link;
  ASSERT_TRUE(link.open(srv, the_caps()));
  auto [o, sent] = tracked(shm_message(7, big));
  link.conn->send(std::move(o));
  {
    std::unique_lock<std::mutex> g(mu);
    ASSERT_TRUE(cv.wait_for(g, long_wait, [&] { return first; }));
  }
  link.conn->close(status{errc::peer_lost, "the test cuts it off"});
  ASSERT_EQ(sent.wait_for(long_wait), std::future_status::ready);
  EXPECT_FALSE(sent.get().is_ok()) << "the message was not sent whole";
  {
    std::lock_guard<std::mutex> g(mu);
    closed = true;
  }
  cv.notify_all();
  ASSERT_TRUE(srv.log.wait_closes(1));
  std::shared_ptr<recording_sink> s;
  {
    std::lock_guard<std::mutex> g(srv.mu);
    s = srv.sinks.at(7);
    EXPECT_EQ(srv.order, (std::vector<std::string>{"abort 7", "close"}));
  }
  ASSERT_TRUE(s->wait_aborted());
  EXPECT_EQ(s->aborts, 1);
  EXPECT_FALSE(s->aborted_with.is_ok());
  EXPECT_LT(s->got, big.size());
  EXPECT_FALSE(s->out_of_order);
  EXPECT_EQ(srv.box.size(), 0u) << "no on_message for a message cut off";
}

TEST_P(Sink, ASinkThatThrowsClosesItsConnectionAndIsAborted) {
  const bytes big = pattern(4 << 20, 9);
  sink_server srv;
  srv.make = [](const message_head& h) {
    auto s = std::make_shared<recording_sink>(h.payload_size, false);
    s->on_consume = [](recording_sink& me) {
      if (me.slices == 2) throw std::runtime_error("the sum does not fit");
    };
    return s;
  };
  sink_link link;
  ASSERT_TRUE(link.open(srv, the_caps()));
  link.conn->send(shm_message(3, big));
  ASSERT_TRUE(srv.log.wait_closes(1));
  EXPECT_EQ(srv.log.close_status(0).code(), errc::internal);
  EXPECT_NE(srv.log.close_status(0).message().find("the sum does not fit"), std::string::npos)
      << srv.log.close_status(0).to_string();
  std::shared_ptr<recording_sink> s;
  {
    std::lock_guard<std::mutex> g(srv.mu);
    s = srv.sinks.at(3);
  }
  ASSERT_TRUE(s->wait_aborted());
  EXPECT_EQ(s->aborts, 1);
  EXPECT_EQ(s->aborted_with.code(), errc::internal);
  EXPECT_EQ(srv.box.size(), 0u);
  ASSERT_TRUE(link.client_log.wait_closes(1));
  EXPECT_EQ(link.client_log.close_status(0).code(), errc::internal) << "the GOODBYE says why";
}

INSTANTIATE_TEST_SUITE_P(ShmOnOff, Sink, ::testing::Values(true, false),
                         [](const auto& i) { return i.param ? "shm" : "tcp"; });

// A raw peer that sends a message's first slices and then vanishes (no GOODBYE): the sink has
// what arrived, then peer_lost.
TEST(Sink, APeerThatVanishesMidPayloadAbortsTheSinkBeforeOnClose) {
  sink_server srv;
  srv.make = [](const message_head& h) { return std::make_shared<recording_sink>(h.payload_size); };
  runtime server_rt;
  auto l = server_rt.listen("127.0.0.1", 0, ident("server", 0), shm_caps(), srv.make_handlers());
  ASSERT_TRUE(l);
  auto s = raw_socket::connect_to((*l)->port());
  ASSERT_TRUE(s.valid());
  ASSERT_TRUE(raw_authenticate(s, ident("worker", 2)));
  ASSERT_TRUE(srv.log.wait_opens(1));
  const bytes payload = pattern(5000, 1);
  fr::frame_header h;
  h.type = shm_msg_type;
  h.id = 42;
  h.flags = fr::frame_flags::first;
  h.total_size = payload.size();
  h.slice_size = 1000;
  ASSERT_TRUE(s.send_frame(h, to_bytes("m42"), bytes(payload.begin(), payload.begin() + 1000)));
  h.flags = 0;
  h.offset = 1000;
  h.slice_size = 1500;
  ASSERT_TRUE(s.send_frame(h, {}, bytes(payload.begin() + 1000, payload.begin() + 2500)));
  h.offset = 2500;
  ASSERT_TRUE(s.send_frame(h, {}, bytes(payload.begin() + 2500, payload.begin() + 3000)));
  s.close();  // mid-frame: 500 of its 1500 bytes were sent
  ASSERT_TRUE(srv.log.wait_closes(1));
  EXPECT_EQ(srv.log.close_status(0).code(), errc::peer_lost);
  std::shared_ptr<recording_sink> sink;
  {
    std::lock_guard<std::mutex> g(srv.mu);
    sink = srv.sinks.at(42);
    EXPECT_EQ(srv.order, (std::vector<std::string>{"abort 42", "close"}));
  }
  ASSERT_TRUE(sink->wait_aborted());
  EXPECT_EQ(sink->aborted_with.code(), errc::peer_lost);
  EXPECT_EQ(sink->got, 2500u) << "only whole slices reach the sink";
  EXPECT_EQ(sink->received(), bytes(payload.begin(), payload.begin() + 2500));
  EXPECT_EQ(srv.box.size(), 0u);
}

}  // namespace
}  // namespace kvactor::net
