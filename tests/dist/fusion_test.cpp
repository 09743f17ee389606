// Fusion of small keys in real clusters (issue 13 item 3): dist_node's "fusion" scenario - 300
// small keys in one call, pushes and pulls of every key with different priorities issued
// before any is waited for, pushpull of all of them, and one key whose round fails on its
// server beside 20 keys of the same call that are updated - must give the same exact results
// with fusion on (the default), with a window that lets later calls join a batch, and off.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "scenario.hpp"

namespace kvactor::testing {
namespace {

// The job's timeline files (KVACTOR_TIMELINE) show the servers receiving batches: the small
// keys did travel fused.
TEST(DistFusion, ManySmallKeysTwoServersTwoWorkers) {
  const std::string dir = ::testing::TempDir() + "kvactor-fusion-" + std::to_string(::getpid());
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  run_scenario("fusion", 2, 2, {{"KVACTOR_TIMELINE", dir + "/job"}});
  std::size_t batches = 0, files = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      ++files;
      std::ifstream in(dir + "/" + name);
      std::stringstream text;
      text << in.rdbuf();
      const std::string s = text.str();
      for (auto at = s.find("\"receive batch\""); at != std::string::npos;
           at = s.find("\"receive batch\"", at + 1))
        ++batches;
      ::unlink((dir + "/" + name).c_str());
    }
    ::closedir(d);
  }
  ::rmdir(dir.c_str());
  EXPECT_EQ(files, 5u);
  // Each of the scenario's 300-key calls is at least one batch per server.
  EXPECT_GE(batches, 10u);
}

TEST(DistFusion, WindowLetsLaterCallsJoinABatch) {
  run_scenario("fusion", 2, 2, {{"KVACTOR_FUSION_WINDOW_US", "3000"}});
}

TEST(DistFusion, SmallBudgetSplitsCallsIntoSeveralBatches) {
  run_scenario("fusion", 1, 2, {{"KVACTOR_FUSION_BYTES", "512"}});
}

TEST(DistFusion, SameResultsWithFusionOff) {
  run_scenario("fusion", 1, 2, {{"KVACTOR_FUSION_KEY_BYTES", "0"}});
}

}  // namespace
}  // namespace kvactor::testing
