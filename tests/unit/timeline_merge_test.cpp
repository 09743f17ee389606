// kvactor-timeline (tools/timeline): files with different clock anchors land on one axis,
// every process keeps a pid of its own, and what is not a kvactor timeline is refused with
// a clear message and exit code, never a crash.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "merge.hpp"
#include "trace_check.hpp"

namespace kvactor::testing {
namespace {

using timeline_tool::input_file;
using timeline_tool::merge_timelines;
using timeline_tool::parse_json;

// A per-process file as the timeline writes it: one span at steady time `ts_us`, the anchor
// relating steady `steady_us` to system `system_us`.
std::string process_file(int pid, const std::string& name, const std::string& ts_us,
                         const std::string& steady_us, const std::string& system_us) {
  const std::string p = std::to_string(pid);
  return "{\"traceEvents\":[\n{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":" + p +
         ",\"tid\":0,\"args\":{\"name\":\"" + name +
         "\"}},\n{\"ph\":\"X\",\"cat\":\"test\","
         "\"name\":\"work\",\"pid\":" +
         p + ",\"tid\":1,\"ts\":" + ts_us +
         ",\"dur\":10.000,\"args\":{\"key\":\"7\"}}\n],\"displayTimeUnit\":\"ms\",\"otherData\":"
         "{\"kvactor_timeline\":1,\"pid\":" +
         p + ",\"process_name\":\"" + name + "\",\"clock_anchor\":{\"steady_us\":" + steady_us +
         ",\"system_us\":" + system_us + "},\"dropped_events\":0}}\n";
}

long double ts_of(const json& doc, const std::string& pid) {
  for (const auto& e : doc.find("traceEvents")->items)
    if (text_of(e, "ph") == "X" && e.find("pid")->text == pid) return number_of(e, "ts");
  return -1;
}

TEST(TimelineMerge, DifferentAnchorsLandOnOneAxis) {
  // Worker: steady 1000 us is system 1'700'000'000'000'000 us; its span at steady 1500.
  // Server: steady 50'000 us is system 1'700'000'000'000'100 us; its span at steady 50'600.
  // In system time they are 1e15+500 and 1e15+700: 0 and 200 on the merged axis.
  auto m = merge_timelines(
      {input_file{"w.json",
                  process_file(11, "worker 0", "1500.000", "1000.000", "1700000000000000.000")},
       input_file{"s.json",
                  process_file(22, "server 0", "50600.250", "50000.000", "1700000000000100.000")}});
  ASSERT_TRUE(m.has_value()) << m.error().message();
  auto doc = parse_json(m->text);
  ASSERT_TRUE(doc.has_value()) << doc.error().message();
  EXPECT_EQ(trace_problem(*doc), "");
  EXPECT_EQ(m->events, 4u);
  ASSERT_EQ(m->sources.size(), 2u);
  EXPECT_EQ(ts_of(*doc, "11"), 0.0L);
  EXPECT_EQ(ts_of(*doc, "22"), 200.25L);
  EXPECT_EQ(m->sources[0].process, "worker 0");
  EXPECT_EQ(m->sources[1].merged_pid, 22);
  // Both processes keep their names.
  int names = 0;
  for (const auto& e : doc->find("traceEvents")->items)
    if (text_of(e, "name") == "process_name") ++names;
  EXPECT_EQ(names, 2);
}

TEST(TimelineMerge, APidTwoFilesShareIsRenumbered) {
  const std::string f = process_file(5, "worker 0", "10.000", "0.000", "1000.000");
  const std::string g = process_file(5, "worker 1", "10.000", "0.000", "1000.000");
  auto m = merge_timelines({input_file{"a", f}, input_file{"b", g}});
  ASSERT_TRUE(m.has_value()) << m.error().message();
  EXPECT_EQ(m->sources[0].merged_pid, 5);
  EXPECT_EQ(m->sources[1].merged_pid, 6);
  auto doc = parse_json(m->text);
  ASSERT_TRUE(doc.has_value());
  EXPECT_GE(ts_of(*doc, "6"), 0.0L);
}

TEST(TimelineMerge, ForeignInputIsRefusedByName) {
  const std::string good = process_file(1, "w", "1.000", "0.000", "5.000");
  for (const auto& [text, why] : std::vector<std::pair<std::string, std::string>>{
           {"not json", "JSON"},
           {"[]", "top level"},
           {"{\"traceEvents\":[]}", "clock_anchor"},
           {"{\"traceEvents\":{}}", "traceEvents"},
           {"{\"traceEvents\":[1],\"otherData\":{\"pid\":1,\"clock_anchor\":{\"steady_us\":0,"
            "\"system_us\":0}}}",
            "event 0"},
           {"{\"traceEvents\":[{\"ph\":\"X\",\"pid\":\"1\"}],\"otherData\":{\"pid\":1,"
            "\"clock_anchor\":{\"steady_us\":0,\"system_us\":0}}}",
            "pid"},
           {good.substr(0, good.size() / 2), "JSON"}}) {
    auto m = merge_timelines({input_file{"good.json", good}, input_file{"bad.json", text}});
    ASSERT_FALSE(m.has_value()) << text;
    EXPECT_NE(m.error().message().find("bad.json"), std::string::npos) << m.error().message();
    EXPECT_NE(m.error().message().find(why), std::string::npos) << m.error().message();
  }
  // A merged trace is not merged again.
  auto once = merge_timelines({input_file{"good.json", good}});
  ASSERT_TRUE(once.has_value());
  EXPECT_FALSE(merge_timelines({input_file{"merged.json", once->text}}).has_value());
  EXPECT_FALSE(merge_timelines({}).has_value());
}

int run_tool(const std::string& args) {
  const int rc =
      std::system((std::string{KVACTOR_TIMELINE_TOOL} + " " + args + " >/dev/null 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST(TimelineMergeTool, ExitCodesSayWhatHappened) {
  const std::string dir =
      ::testing::TempDir() + "kvactor-timeline-tool-" + std::to_string(::getpid());
  const std::string good = dir + ".good.json", bad = dir + ".bad.json", out = dir + ".out.json";
  std::ofstream(good) << process_file(1, "w", "1.000", "0.000", "5.000");
  std::ofstream(bad) << "{\"traceEvents\":[";
  EXPECT_EQ(run_tool("-o " + out + " " + good), 0);
  auto doc = parse_json(read_text(out));
  ASSERT_TRUE(doc.has_value());
  EXPECT_EQ(trace_problem(*doc), "");
  EXPECT_EQ(run_tool("-o " + out + " " + good + " " + bad), 1);
  EXPECT_EQ(run_tool("-o " + out + " " + dir + ".missing.json"), 1);
  EXPECT_EQ(run_tool(good), 2);  // no -o
  EXPECT_EQ(run_tool("-o " + out), 2);
  EXPECT_EQ(run_tool("--bogus -o " + out + " " + good), 2);
  EXPECT_EQ(run_tool("--help"), 0);
  for (const auto& f : {good, bad, out})
    std::remove(f.c_str());
}

}  // namespace
}  // namespace kvactor::testing
