// The timeline in a real job (issue 13 item 4): with KVACTOR_TIMELINE set, the scheduler,
// both servers and both workers each write a valid trace file named by their pid, with
// their role as the process name and the per-key spans of the job's pushes and pulls, and
// kvactor-timeline merges them onto one axis.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "scenario.hpp"
#include "trace_check.hpp"

namespace kvactor::testing {
namespace {

using timeline_tool::parse_json;

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(dir + "/" + n);
    }
    ::closedir(d);
  }
  return out;
}

TEST(TimelineCluster, EveryProcessWritesItsSpansAndTheyMerge) {
  const std::string dir =
      ::testing::TempDir() + "kvactor-timeline-job-" + std::to_string(::getpid());
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  run_scenario("sync_rounds", 2, 2,
               {{"KVACTOR_BIGARRAY_BOUND", "1000"}, {"KVACTOR_TIMELINE", dir + "/job"}});
  const auto files = files_in(dir);
  ASSERT_EQ(files.size(), 5u);  // scheduler, 2 servers, 2 workers; no temporary left
  std::map<std::string, json> by_role;
  for (const auto& f : files) {
    ASSERT_EQ(f.substr(0, dir.size() + 5), dir + "/job.");
    ASSERT_EQ(f.substr(f.size() - 5), ".json");
    auto doc = parse_json(read_text(f));
    ASSERT_TRUE(doc.has_value()) << f << ": " << doc.error().message();
    EXPECT_EQ(trace_problem(*doc), "") << f;
    // The pid in the name is the pid in the file.
    const std::string pid = f.substr(dir.size() + 5, f.size() - dir.size() - 10);
    EXPECT_EQ(doc->find("otherData")->find("pid")->text, pid) << f;
    by_role[process_name_of(*doc)] = std::move(*doc);
  }
  ASSERT_EQ(by_role.size(), 5u);
  for (const char* role : {"scheduler", "server 0", "server 1", "worker 0", "worker 1"})
    ASSERT_EQ(by_role.count(role), 1u) << role;
  // Workers: each op's life and its parts' sends and replies, per key (99 is split over
  // both servers, 3 lives whole on one).
  for (const char* w : {"worker 0", "worker 1"}) {
    const json& doc = by_role[w];
    for (const char* key : {"3", "99"}) {
      EXPECT_GE(events_named(doc, "b", "worker", "push", key).size(), 3u) << w << " " << key;
      EXPECT_GE(events_named(doc, "b", "worker", "pull", key).size(), 3u) << w << " " << key;
      EXPECT_FALSE(events_named(doc, "X", "worker", "send", key).empty()) << w << " " << key;
      EXPECT_FALSE(events_named(doc, "X", "worker", "reply", key).empty()) << w << " " << key;
      EXPECT_FALSE(events_named(doc, "X", "worker", "complete", key).empty()) << w << " " << key;
      EXPECT_FALSE(events_named(doc, "b", "worker", "in flight", key).empty()) << w << " " << key;
    }
    EXPECT_FALSE(events_named(doc, "b", "worker", "pushpull", "99").empty()) << w;
  }
  // Servers: both hold a part of key 99: its requests received, merged, updated, replied.
  for (const char* s : {"server 0", "server 1"}) {
    const json& doc = by_role[s];
    EXPECT_FALSE(events_named(doc, "X", "server", "receive", "99").empty()) << s;
    EXPECT_FALSE(events_named(doc, "b", "server", "push", "99").empty()) << s;
    EXPECT_FALSE(events_named(doc, "b", "server", "pull", "99").empty()) << s;
    EXPECT_FALSE(events_named(doc, "X", "server", "merge", "99").empty()) << s;
    EXPECT_FALSE(events_named(doc, "X", "server", "update", "99").empty()) << s;
    EXPECT_FALSE(events_named(doc, "X", "server", "reply", "99").empty()) << s;
  }
  // The scheduler: the moment the cluster assembled, and each worker's wait in every barrier
  // (the scenario passes at least the join's and the goodbye's).
  {
    const json& doc = by_role["scheduler"];
    EXPECT_EQ(events_named(doc, "i", "scheduler", "cluster assembled").size(), 1u);
    EXPECT_GE(events_named(doc, "b", "scheduler", "barrier").size(), 4u);
  }
  // The merge tool puts them on one axis.
  const std::string out = dir + ".merged.json";
  std::string cmd = std::string{KVACTOR_TIMELINE_TOOL} + " -o " + out;
  for (const auto& f : files)
    cmd += " " + f;
  const int rc = std::system((cmd + " >/dev/null").c_str());
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << cmd;
  auto merged = parse_json(read_text(out));
  ASSERT_TRUE(merged.has_value()) << merged.error().message();
  EXPECT_EQ(trace_problem(*merged), "");
  std::set<std::string> pids, names;
  long double first_send = 1e30L, first_receive = 1e30L;
  for (const auto& e : merged->find("traceEvents")->items) {
    pids.insert(e.find("pid")->text);
    if (text_of(e, "name") == "process_name") names.insert(text_of(*e.find("args"), "name"));
    if (text_of(e, "ph") == "M") continue;
    EXPECT_GE(number_of(e, "ts"), 0.0L);
    if (text_of(e, "name") == "send") first_send = std::min(first_send, number_of(e, "ts"));
    if (text_of(e, "name") == "receive")
      first_receive = std::min(first_receive, number_of(e, "ts"));
  }
  EXPECT_EQ(pids.size(), 5u);
  EXPECT_EQ(names.size(), 5u);
  // On one axis the first request is sent before any server receives one (a millisecond's
  // grace for the anchors' reading).
  EXPECT_LT(first_send, first_receive + 1000) << first_send << " " << first_receive;
  for (const auto& f : files)
    std::remove(f.c_str());
  std::remove(out.c_str());
  ::rmdir(dir.c_str());
}

}  // namespace
}  // namespace kvactor::testing
