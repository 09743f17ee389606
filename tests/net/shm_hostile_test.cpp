// Shared memory against a lying peer: a raw socket that authenticates and then plays the
// sending side of the shared-memory protocol by hand. A reference outside the segment, a slice
// larger than a slot, a reference without a mapped segment, a release of a slot not in use, a
// second offer, an answer nobody asked for: protocol_error, like any malformed frame. Offers
// that cannot be mapped or verified are declined and the connection goes on over TCP.
#include <gtest/gtest.h>

#include "shm_util.hpp"

namespace kvactor::net {
namespace {

using namespace testing;

struct shm_hostile : ::testing::Test {
  event_log log;
  inbox box;
  runtime server_rt{1};
  std::shared_ptr<listener> server;
  const identity good = ident("worker", 4);

  void SetUp() override {
    if (!detail::shm_allowed_by_environment() || detail::shm_host_token(0).empty())
      GTEST_SKIP() << "KVACTOR_SHM is off, or no host token here";
    auto l =
        server_rt.listen("127.0.0.1", 0, ident("server", 0), shm_caps(), recording(&log, &box));
    ASSERT_TRUE(l);
    server = *l;
  }

  raw_socket authenticated() {
    auto s = raw_socket::connect_to(server->port());
    EXPECT_TRUE(s.valid());
    EXPECT_TRUE(raw_authenticate(s, good));
    return s;
  }

  /// An authenticated raw peer whose segment the server has mapped.
  raw_socket mapped(const fake_segment& seg) {
    auto s = authenticated();
    EXPECT_TRUE(s.send_control(fr::frame_type::shm_offer, encode_offer(seg.offer)));
    auto a = read_answer(s);
    EXPECT_TRUE(a && a->accepted) << (a ? a->reason : std::string{"no answer"});
    return s;
  }

  void expect_closed(raw_socket& s, std::size_t index, const std::string& reason) {
    EXPECT_TRUE(s.wait_closed());
    ASSERT_TRUE(log.wait_closes(index + 1));
    const auto st = log.close_status(index);
    EXPECT_EQ(st.code(), errc::protocol_error) << st.to_string();
    EXPECT_NE(st.message().find(reason), std::string::npos) << st.to_string();
  }
};

TEST_F(shm_hostile, AnHonestReferenceIsDeliveredAndItsSlotGivenBack) {
  fake_segment seg(4096, 4);
  auto s = mapped(seg);
  const bytes data = pattern(3000, 11);
  std::memcpy(seg.slot(2), data.data(), data.size());
  ASSERT_TRUE(s.send_frame(shm_ref(7, 3000, 2)));
  auto m = box.pop();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->id, 7u);
  ASSERT_EQ(m->payload_size, data.size());
  EXPECT_EQ(std::memcmp(m->payload_data, data.data(), data.size()), 0);
  auto r = read_until(s, fr::frame_type::shm_release);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->meta.size(), 4u);
  EXPECT_EQ(r->meta, (bytes{2, 0, 0, 0}));
  EXPECT_EQ(server_rt.get_stats().shm_bytes_received, data.size());
}

TEST_F(shm_hostile, ReferencesOutsideTheSegmentAreRefused) {
  fake_segment seg(4096, 4);
  struct bad {
    fr::frame_header h;
    const char* reason;
  };
  const std::vector<bad> cases{
      {shm_ref(1, 100, 4), "outside the peer's segment"},  // slot == count
      {shm_ref(1, 100, 0xfffffffeu), "outside the peer's segment"},
      {shm_ref(1, 8192, 0), "outside the peer's segment"},  // larger than a slot
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    auto s = mapped(seg);
    ASSERT_TRUE(s.send_frame(cases[i].h));
    expect_closed(s, i, cases[i].reason);
  }
  // A continuation slice outside: the FIRST slice inline, the next one a bad reference.
  auto s = mapped(seg);
  fr::frame_header first;
  first.type = 30;
  first.flags = fr::frame_flags::first;
  first.id = 9;
  first.total_size = 200;
  first.slice_size = 100;
  ASSERT_TRUE(s.send_frame(first, {}, bytes(100)));
  fr::frame_header next = shm_ref(9, 100, 9);
  next.flags = fr::frame_flags::last;
  next.offset = 100;
  next.total_size = 200;
  ASSERT_TRUE(s.send_frame(next));
  expect_closed(s, cases.size(), "outside the peer's segment");
  EXPECT_EQ(box.size(), 0u);
}

TEST_F(shm_hostile, ProtocolViolationsAreRefused) {
  fake_segment seg(4096, 4);
  std::size_t k = 0;
  {  // a reference while no segment of the peer is mapped
    auto s = authenticated();
    ASSERT_TRUE(s.send_frame(shm_ref(1, 100, 0)));
    expect_closed(s, k++, "reserved bytes");
  }
  {  // a release of a slot the server never lent (it has no segment: the peer never offered)
    auto s = authenticated();
    ASSERT_TRUE(s.send_control(fr::frame_type::shm_release, bytes{0, 0, 0, 0}));
    expect_closed(s, k++, "not in use");
  }
  {  // a release of a slot of the server's own segment that is not in use
    auto s = mapped(seg);
    auto offer = read_until(s, fr::frame_type::shm_offer);
    ASSERT_TRUE(offer) << "the server offers back to a co-located peer";
    ASSERT_TRUE(s.send_control(fr::frame_type::shm_release, bytes{1, 0, 0, 0}));
    expect_closed(s, k++, "not in use");
  }
  {  // a release whose meta is not whole slot numbers
    auto s = authenticated();
    ASSERT_TRUE(s.send_control(fr::frame_type::shm_release, bytes{1, 0, 0}));
    expect_closed(s, k++, "multiple of 4");
  }
  {  // a second offer
    auto s = mapped(seg);
    ASSERT_TRUE(s.send_control(fr::frame_type::shm_offer, encode_offer(seg.offer)));
    expect_closed(s, k++, "second shared-memory offer");
  }
  {  // an answer without an offer
    auto s = authenticated();
    ASSERT_TRUE(s.send_control(fr::frame_type::shm_answer,
                               serialization::encode_schema(detail::shm_answer{true, ""}, {})));
    expect_closed(s, k++, "without an offer");
  }
  {  // an offer that does not decode
    auto s = authenticated();
    ASSERT_TRUE(s.send_control(fr::frame_type::shm_offer, bytes{1, 2, 3}));
    expect_closed(s, k++, "shm offer");
  }
  EXPECT_EQ(box.size(), 0u);
  EXPECT_EQ(server_rt.get_stats().shm_segments, 0u);
}

TEST_F(shm_hostile, OffersThatCannotBeMappedAreDeclinedAndTcpGoesOn) {
  fake_segment sealed(4096, 4);
  fake_segment unsealed(4096, 4, false);
  fake_segment misnamed(4096, 4, true, "something-else");
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(devnull, 0);
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } close_devnull{devnull};
  struct offer_case {
    const char* name;
    detail::shm_offer offer;
    const char* reason;
  };
  auto with = [&](auto f) {
    detail::shm_offer o = sealed.offer;
    f(o);
    return o;
  };
  const std::vector<offer_case> cases{
      {"another host", with([](auto& o) { o.host = "elsewhere"; }), "another host"},
      {"wrong token", with([](auto& o) { o.token.fill(1); }), "does not match the offer"},
      {"sizes disagree", with([](auto& o) { o.segment_bytes += 4096; }), "does not match"},
      {"bigger than the file", with([](auto& o) {
         o.slot_count = 8;
         o.segment_bytes = detail::shm_header_bytes + 8 * 4096;
       }),
       "offered"},
      {"no slots", with([](auto& o) { o.slot_count = 0; }), "out of range"},
      {"no such descriptor", with([](auto& o) { o.fd = 100000; }), "open"},
      {"unsealed", unsealed.offer, "not sealed"},
      {"not a kvactor memfd", misnamed.offer, "not a kvactor segment"},
      {"a descriptor of another kind", with([&](auto& o) { o.fd = devnull; }), "not a kvactor"},
  };
  const bytes payload = pattern(100000, 3);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].name);
    auto s = authenticated();
    ASSERT_TRUE(s.send_control(fr::frame_type::shm_offer, encode_offer(cases[i].offer)));
    auto a = read_answer(s);
    ASSERT_TRUE(a);
    EXPECT_FALSE(a->accepted);
    EXPECT_NE(a->reason.find(cases[i].reason), std::string::npos) << a->reason;
    // The connection goes on over TCP.
    fr::frame_header h;
    h.type = 30;
    h.flags = fr::frame_flags::first | fr::frame_flags::last;
    h.id = i;
    h.total_size = h.slice_size = static_cast<std::uint32_t>(payload.size());
    ASSERT_TRUE(s.send_frame(h, {}, payload));
    auto m = box.pop();
    ASSERT_TRUE(m);
    EXPECT_EQ(m->id, i);
    ASSERT_EQ(m->payload_size, payload.size());
    EXPECT_EQ(std::memcmp(m->payload_data, payload.data(), payload.size()), 0);
    // ... and a reference is refused there, as without any offer.
    ASSERT_TRUE(s.send_frame(shm_ref(50, 100, 0)));
    expect_closed(s, i, "reserved bytes");
  }
  EXPECT_EQ(server_rt.get_stats().shm_segments, 0u);
}

}  // namespace
}  // namespace kvactor::net
