// The timeline's recorder and writer (kvactor/detail/timeline.hpp): the file is strict JSON
// in the trace-event format, spans of a thread nest, names and arguments are escaped, threads
// record on their own, a full buffer drops and counts, events keep their order across the
// blocks that hold them. And the reader the merge tool and these checks use refuses what is
// not strict JSON.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "event_store.hpp"
#include "kvactor/detail/timeline.hpp"
#include "trace_check.hpp"

namespace kvactor::testing {
namespace {

namespace tl = kvactor::detail::timeline;
using timeline_tool::parse_json;

TEST(TimelineOff, NothingIsWrittenBeforeAStart) {
  // This process never set KVACTOR_TIMELINE; the fixture's tests start it themselves, so
  // only the state before any start is checked (this test runs first, or alone).
  if (!tl::file_path().empty()) GTEST_SKIP() << "another test started the timeline";
  EXPECT_FALSE(tl::enabled());
  EXPECT_TRUE(tl::write().is_ok());
}

// One timeline per process: each test starts it on a file of its own and forgets its events.
class Timeline : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = ::testing::TempDir() + "kvactor-timeline-unit-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    tl::clear();
    tl::start(base_);
  }
  void TearDown() override {
    tl::stop();
    tl::clear();
    std::remove(tl::file_path().c_str());
  }
  json written() {
    EXPECT_TRUE(tl::write().is_ok());
    auto doc = parse_json(read_text(tl::file_path()));
    EXPECT_TRUE(doc.has_value()) << (doc ? "" : doc.error().message());
    return doc ? *doc : json{};
  }
  std::string base_;
};

TEST_F(Timeline, FileIsNamedByPidAndHoldsTheAnchorAndNames) {
  EXPECT_TRUE(tl::enabled());
  EXPECT_EQ(tl::file_path(), base_ + "." + std::to_string(::getpid()) + ".json");
  tl::set_process_name("worker 3");
  tl::set_process_name_default("local");  // a default never replaces a name
  tl::set_thread_name("the test");
  const auto t0 = tl::now_ns();
  tl::span("test", "work", t0, tl::now_ns(), tl::args{"7"}.with("bytes", 1024));
  const json doc = written();
  EXPECT_EQ(trace_problem(doc), "");
  EXPECT_EQ(process_name_of(doc), "worker 3");
  const json* other = doc.find("otherData");
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(number_of(*other, "pid"), ::getpid());
  const json* anchor = other->find("clock_anchor");
  ASSERT_NE(anchor, nullptr);
  EXPECT_GT(number_of(*anchor, "steady_us"), 0);
  // The system clock's reading is a date after 2020.
  EXPECT_GT(number_of(*anchor, "system_us"), 1.5e15L);
  auto work = events_named(doc, "X", "test", "work", "7");
  ASSERT_EQ(work.size(), 1u);
  EXPECT_EQ(number_of(*work[0]->find("args"), "bytes"), 1024);
  EXPECT_EQ(number_of(*work[0], "pid"), ::getpid());
  bool thread_named = false;
  for (const auto& e : doc.find("traceEvents")->items)
    if (text_of(e, "name") == "thread_name" && e.find("tid")->text == work[0]->find("tid")->text)
      thread_named = text_of(*e.find("args"), "name") == "the test";
  EXPECT_TRUE(thread_named);
}

TEST_F(Timeline, SpansOfAThreadNestAndAsyncSpansPair) {
  // A span inside another, one after, and overlapping lifetimes as async spans.
  const auto a = tl::now_ns();
  const auto b = tl::now_ns();
  const auto c = tl::now_ns();
  const auto d = tl::now_ns();
  tl::span("test", "inner", b, c);
  tl::span("test", "outer", a, d);
  tl::span("test", "after", d, d + 1000);
  tl::async_span("test", "first", a, c);
  tl::async_span("test", "second", b, d);
  tl::instant("test", "now", tl::args{"k"});
  const json doc = written();
  EXPECT_EQ(trace_problem(doc), "");
  EXPECT_EQ(events_named(doc, "b", "test", "first").size(), 1u);
  EXPECT_EQ(events_named(doc, "e", "test", "second").size(), 1u);
  EXPECT_EQ(events_named(doc, "i", "test", "now", "k").size(), 1u);
}

TEST_F(Timeline, TheCheckerFindsSpansThatOverlapWithoutNesting) {
  const auto t = tl::now_ns();
  tl::span("test", "one", t, t + 2000);
  tl::span("test", "two", t + 1000, t + 3000);
  EXPECT_NE(trace_problem(written()), "");
}

TEST_F(Timeline, NamesAndArgumentsAreEscaped) {
  const std::string nasty = std::string{"q\"b\\s/\n\t\x01 \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"};
  const auto t = tl::now_ns();
  tl::span("test", nasty, t, t, tl::args{nasty});
  tl::span("test", "bad utf8", t, t, tl::args{std::string{"a\xFF\xC3(b\xED\xA0\x80"}});
  tl::set_process_name(nasty);
  const json doc = written();
  EXPECT_EQ(trace_problem(doc), "");
  EXPECT_EQ(process_name_of(doc), nasty);
  EXPECT_EQ(events_named(doc, "X", "test", nasty, nasty).size(), 1u);
  // Bytes that are not UTF-8 become U+FFFD, one each.
  auto bad = events_named(doc, "X", "test", "bad utf8");
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(key_of(*bad[0]), "a\xEF\xBF\xBD\xEF\xBF\xBD(b\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_F(Timeline, ThreadsRecordIntoTheirOwnBuffers) {
  constexpr int threads = 4, each = 2000;
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; ++i)
    ts.emplace_back([i] {
      tl::set_thread_name("recorder " + std::to_string(i));
      for (int n = 0; n < each; ++n) {
        const auto t0 = tl::now_ns();
        tl::span("test", "step", t0, tl::now_ns(), tl::args{}.with("n", n));
      }
    });
  // The writer may read while they record.
  EXPECT_TRUE(tl::write().is_ok());
  for (auto& t : ts)
    t.join();
  const json doc = written();
  EXPECT_EQ(trace_problem(doc), "");
  const auto steps = events_named(doc, "X", "test", "step");
  EXPECT_EQ(steps.size(), static_cast<std::size_t>(threads * each));
  std::set<std::string> tids;
  for (const auto* e : steps)
    tids.insert(e->find("tid")->text);
  EXPECT_EQ(tids.size(), static_cast<std::size_t>(threads));
}

TEST_F(Timeline, AThreadIsNamedByItsWeightiestHint) {
  std::thread t([] {
    tl::name_thread("caller", 1);
    tl::name_thread("net I/O", 2);
    tl::name_thread("caller", 1);  // a continuation issuing ops on the I/O thread
    const auto now = tl::now_ns();
    tl::span("test", "named", now, now);
  });
  t.join();
  const json doc = written();
  const auto named = events_named(doc, "X", "test", "named");
  ASSERT_EQ(named.size(), 1u);
  std::string name;
  for (const auto& e : doc.find("traceEvents")->items)
    if (text_of(e, "name") == "thread_name" && e.find("tid")->text == named[0]->find("tid")->text)
      name = text_of(*e.find("args"), "name");
  EXPECT_EQ(name, "net I/O");
}

TEST_F(Timeline, AFullBufferDropsAndCounts) {
  std::thread t([] {
    const auto now = tl::now_ns();
    for (std::size_t i = 0; i < tl::max_events_per_thread + 10; ++i)
      tl::span("test", "x", now, now);
  });
  t.join();
  EXPECT_EQ(tl::dropped(), 10u);
  const json doc = written();
  EXPECT_EQ(number_of(*doc.find("otherData"), "dropped_events"), 10);
}

// A thread's events live in blocks (event_store.hpp): across block boundaries they keep their
// order and contents, and after clear() the same blocks take new ones.
TEST(TimelineEvents, KeptInOrderAcrossBlocksAndReusedAfterClear) {
  tl::event_store s;
  const std::size_t n = 2 * tl::event_store::per_block + 3;
  for (int round = 0; round < 2; ++round) {
    for (std::size_t i = 0; i < n; ++i) {
      tl::event e;
      e.ts_ns = static_cast<std::int64_t>(i) + round;
      e.name = "event number " + std::to_string(i);  // longer than a short string keeps inline
      e.a = tl::args{"key " + std::to_string(i)};
      s.push_back(std::move(e));
    }
    ASSERT_EQ(s.size(), n);
    std::size_t seen = 0;
    s.for_each([&](const tl::event& e) {
      EXPECT_EQ(e.ts_ns, static_cast<std::int64_t>(seen) + round);
      EXPECT_EQ(e.name, "event number " + std::to_string(seen));
      EXPECT_EQ(e.a.key, "key " + std::to_string(seen));
      ++seen;
    });
    EXPECT_EQ(seen, n);
    s.clear();
    EXPECT_EQ(s.size(), 0u);
  }
}

TEST_F(Timeline, AnUnwritableFileIsAnError) {
  tl::start("/nonexistent-dir-of-kvactor/job");
  const auto s = tl::write();
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("/nonexistent-dir-of-kvactor/job."), std::string::npos);
  tl::start(base_);
}

TEST(StrictJson, AcceptsWhatTheRfcAllows) {
  for (const char* ok : {"{}", "[]", " 0 ", "-0.5e+3", "\"\\u00e9\\ud83d\\ude00\\/\"",
                         "[true,false,null]", "{\"a\":{\"b\":[1,2.25,-3E2]}}", "\"\xC3\xA9\""}) {
    auto v = parse_json(ok);
    EXPECT_TRUE(v.has_value()) << ok << ": " << (v ? "" : v.error().message());
  }
  auto s = parse_json("\"\\u00e9\\ud83d\\ude00\"");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->text, "\xC3\xA9\xF0\x9F\x98\x80");
}

TEST(StrictJson, RefusesEverythingElse) {
  for (const char* bad : {"",
                          "{",
                          "[1,]",
                          "{\"a\":1,}",
                          "01",
                          "1.",
                          ".5",
                          "+1",
                          "1e",
                          "'a'",
                          "\"a",
                          "[1 2]",
                          "{\"a\" 1}",
                          "{a:1}",
                          "tru",
                          "nul",
                          "\"\\x\"",
                          "\"\\ud83d\"",
                          "\"\\ude00\"",
                          "\"\x01\"",
                          "\"\xFF\"",
                          "\"\xC0\xAF\"",
                          "\"\xED\xA0\x80\"",
                          "1 2",
                          "NaN",
                          "[] x",
                          "/* c */ 1"}) {
    auto v = parse_json(bad);
    EXPECT_FALSE(v.has_value()) << "accepted: " << bad;
    if (!v) {
      EXPECT_EQ(v.error().code(), errc::protocol_error);
    }
  }
  // Deep nesting is an error, not a stack overflow.
  EXPECT_FALSE(parse_json(std::string(100000, '[')).has_value());
  EXPECT_FALSE(parse_json(std::string(65, '[') + std::string(65, ']')).has_value());
  EXPECT_TRUE(parse_json(std::string(64, '[') + std::string(64, ']')).has_value());
}

}  // namespace
}  // namespace kvactor::testing
