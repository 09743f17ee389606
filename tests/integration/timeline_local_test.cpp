// The timeline of a local store (issue 13 item 4): each op's queueing, stages and
// completion on its shard, per key, written when the store shuts down; nothing recorded
// while the timeline is off.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "kvactor/detail/timeline.hpp"
#include "kvactor/kvstore.hpp"
#include "trace_check.hpp"

namespace kvactor::testing {
namespace {

namespace tl = kvactor::detail::timeline;
using timeline_tool::parse_json;

TEST(TimelineLocal, ShardSpansPerKeyWrittenAtShutdown) {
  const std::string base =
      ::testing::TempDir() + "kvactor-timeline-local-" + std::to_string(::getpid());
  tl::start(base);
  {
    auto kv = create("local");
    kv.set_updater([](const key&, const tensor& in, tensor& stored) {
      for (std::size_t i = 0; i < stored.size(); ++i)
        stored.set(i, stored.at(i) + in.at(i));
    });
    kv.init({5, 6}, {tensor::zeros({1 << 18}), tensor::zeros({4})}).get();
    tensor out = tensor::zeros({1 << 18});
    for (int i = 0; i < 3; ++i) {
      kv.push(5, {tensor::ones({1 << 18}), tensor::ones({1 << 18})});
      kv.pull(5, out);
      kv.pushpull(6, tensor::ones({4}), tensor::zeros({4})).get();
    }
    kv.wait_all();
    EXPECT_EQ(out.at(0), 6.0);
  }  // the store's end writes the file
  tl::stop();
  const std::string path = tl::file_path();
  auto doc = parse_json(read_text(path));
  ASSERT_TRUE(doc.has_value()) << doc.error().message();
  EXPECT_EQ(trace_problem(*doc), "");
  EXPECT_EQ(process_name_of(*doc), "local");
  EXPECT_EQ(events_named(*doc, "b", "shard", "push", "5").size(), 3u);
  EXPECT_EQ(events_named(*doc, "b", "shard", "pull", "5").size(), 3u);
  EXPECT_EQ(events_named(*doc, "b", "shard", "pushpull", "6").size(), 3u);
  EXPECT_EQ(events_named(*doc, "b", "shard", "init", "5").size(), 1u);
  EXPECT_EQ(events_named(*doc, "b", "shard", "init value", "5").size(), 1u);
  for (const char* stage : {"queued", "reduce", "update", "copy out"})
    EXPECT_GE(events_named(*doc, "b", "shard", stage, "5").size(), 3u) << stage;
  EXPECT_GE(events_named(*doc, "X", "shard", "complete", "5").size(), 6u);
  // Off, the hooks record nothing.
  tl::clear();
  {
    auto kv = create("local");
    kv.init(1, tensor::zeros({4})).get();
    kv.push(1, tensor::ones({4})).get();
  }
  ASSERT_TRUE(tl::write().is_ok());
  auto off = parse_json(read_text(path));
  ASSERT_TRUE(off.has_value());
  EXPECT_TRUE(events_named(*off, "b", "shard", "push").empty());
  std::remove(path.c_str());
}

}  // namespace
}  // namespace kvactor::testing
