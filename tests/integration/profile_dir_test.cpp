// set_profiler_params filename= through a real cluster (in process): a server writes profiles
// only under the KVACTOR_PROFILE_DIR it was started with, whatever path a worker sends, and
// without one refuses a filename with a typed error, changing nothing.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "in_process_cluster.hpp"

namespace kvactor::testing {
namespace {

using namespace std::chrono_literals;

bool exists(const std::string& path) {
  struct ::stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

TEST(ProfileDir, WorkersCannotWriteOutsideIt) {
  const std::string outer =
      ::testing::TempDir() + "kvactor-profile-dir-" + std::to_string(::getpid());
  const std::string dir = outer + "/profiles";
  ASSERT_EQ(::mkdir(outer.c_str(), 0700), 0);
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  const int port = unused_port();
  ASSERT_GT(port, 0);
  auto cfg = cluster_config_for(port, 1, 1, 20000ms);
  cfg.profile_dir = dir;
  node_threads nodes(cfg);
  {
    auto kv = join_as_worker(cfg, "dist_sync");
    kv.init(1, tensor::ones({4})).get();
    kv.send_command_to_servers(5, "state=run").get();
    kv.push(1, tensor::ones({4})).get();
    // Climbing out, an absolute path, and a plain name: all land in dir.
    for (const std::string& name :
         {std::string{"../escape.json"}, outer + "/abs.json", std::string{"plain.json"}})
      EXPECT_TRUE(kv.send_command_to_servers(5, "state=stop,filename=" + name).get_status().is_ok())
          << name;
    for (const char* f : {"escape.json", "abs.json", "plain.json"}) {
      EXPECT_TRUE(exists(dir + "/" + f + ".server0")) << f;
      EXPECT_FALSE(exists(outer + "/" + f + ".server0")) << f;
      std::remove((dir + "/" + f + ".server0").c_str());
    }
    EXPECT_FALSE(exists(outer + "/abs.json"));
  }
  EXPECT_EQ(nodes.join(), (std::vector<int>{0, 0}));
  ::rmdir(dir.c_str());
  ::rmdir(outer.c_str());
}

TEST(ProfileDir, WithoutOneAFilenameIsRefused) {
  const int port = unused_port();
  ASSERT_GT(port, 0);
  const auto cfg = cluster_config_for(port, 1, 1, 20000ms);  // no profile_dir
  const std::string file =
      ::testing::TempDir() + "kvactor-unwanted-profile-" + std::to_string(::getpid());
  node_threads nodes(cfg);
  {
    auto kv = join_as_worker(cfg, "dist_sync");
    kv.init(1, tensor::ones({4})).get();
    const status s = kv.send_command_to_servers(5, "state=run,filename=" + file).get_status();
    EXPECT_EQ(s.code(), errc::unsupported) << s.to_string();
    EXPECT_NE(s.message().find("KVACTOR_PROFILE_DIR"), std::string::npos) << s.to_string();
    EXPECT_FALSE(exists(file + ".server0"));
    // Profiling itself still works.
    EXPECT_TRUE(kv.send_command_to_servers(5, "state=run").get_status().is_ok());
    EXPECT_TRUE(kv.send_command_to_servers(5, "state=stop").get_status().is_ok());
  }
  EXPECT_EQ(nodes.join(), (std::vector<int>{0, 0}));
}

}  // namespace
}  // namespace kvactor::testing
