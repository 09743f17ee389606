// save_optimizer_states / load_optimizer_states through a real cluster (in process): a server
// keeps state files only under the KVACTOR_STATES_DIR it was started with, whatever path a
// worker sends (the name reduced to its last component, server_files.hpp), reads and writes
// no file through a symbolic link, and without the directory refuses both with a typed error.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "in_process_cluster.hpp"
#include "kvactor/serialization/optimizer_states.hpp"
#include "temp_dirs.hpp"

namespace kvactor::testing {
namespace {

using namespace std::chrono_literals;

const shape s4{4};

bool exists(const std::string& path) {
  struct ::stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

bool is_link(const std::string& path) {
  struct ::stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

std::string contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// outer/ holds dir/, the states directory; whatever lands in outer/ escaped.
struct dirs : kvactor::testing::temp_dirs {
  dirs() : temp_dirs("kvactor-states-dir-", "states") {}
};

// A one-server, one-worker cluster whose server keeps states under `states_dir`.
struct cluster {
  explicit cluster(const std::string& states_dir)
      : cfg(make_config(states_dir)),
        nodes(cfg),
        store(join_as_worker(cfg, "dist_sync")),
        kv(*store) {
    kv.init(1, tensor::zeros(s4)).get();
    kv.set_optimizer(sgd_config(0.5, 0.9)).get();
    kv.push(1, tensor::ones(s4));
    kv.wait_all();
  }
  static detail::cluster_config make_config(const std::string& states_dir) {
    const int port = unused_port();
    EXPECT_GT(port, 0);
    auto c = cluster_config_for(port, 1, 1, 20000ms);
    c.states_dir = states_dir;
    return c;
  }
  // The weight change a zero gradient makes: momentum * the key's momentum.
  double zero_push_delta() {
    tensor a = tensor::zeros(s4), b = tensor::zeros(s4);
    kv.pull(1, a).get();
    kv.push(1, tensor::zeros(s4));
    kv.pull(1, b).get();
    return b.at(0) - a.at(0);
  }
  // The store goes first (its destructor says goodbye in order), then the nodes.
  std::vector<int> stop() {
    store.reset();
    return nodes.join();
  }
  detail::cluster_config cfg;
  node_threads nodes;
  std::optional<kvstore> store;
  kvstore& kv;  // *store, until stop()
};

TEST(StatesDir, SavedAndLoadedInsideItWhateverPathTheWorkerSends) {
  dirs d;
  cluster c(d.dir);
  // A plain name, climbing out, an absolute path elsewhere: all land in the directory.
  for (const std::string& name : {std::string{"ckpt"}, std::string{"../escape"}, d.outer + "/abs",
                                  std::string{"/tmp/kvactor-abs/x"}}) {
    const status s = c.kv.save_optimizer_states(name, true).get_status();
    EXPECT_TRUE(s.is_ok()) << name << ": " << s.to_string();
  }
  for (const char* f : {"ckpt", "escape", "abs", "x"}) {
    EXPECT_TRUE(exists(d.dir + "/" + f + ".server0")) << f;
    EXPECT_FALSE(exists(d.outer + "/" + f + ".server0")) << f;
  }
  EXPECT_FALSE(exists(d.outer + "/abs"));
  EXPECT_FALSE(exists("/tmp/kvactor-abs/x.server0"));
  // What was saved is the key's state: one update so far.
  auto file = wire::read_states_file(d.dir + "/ckpt.server0");
  ASSERT_TRUE(file) << file.error().to_string();
  ASSERT_EQ(file->keys.size(), 1u);
  EXPECT_EQ(file->keys[0].count, 1u);
  EXPECT_TRUE(file->optimizer.has_value());

  const double saved = c.zero_push_delta();
  for (int i = 0; i < 4; ++i)
    c.kv.push(1, tensor::zeros(s4));  // decays the momentum
  EXPECT_GT(std::abs(c.zero_push_delta() - saved), 1e-6);
  // Loaded from the directory, whichever directory the worker names.
  const status s = c.kv.load_optimizer_states("/somewhere/else/escape").get_status();
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_NEAR(c.zero_push_delta(), saved, 1e-6);
  EXPECT_EQ(c.stop(), (std::vector<int>{0, 0}));
  for (const char* f : {"ckpt", "escape", "abs", "x"})
    std::remove((d.dir + "/" + f + ".server0").c_str());
}

TEST(StatesDir, WithoutOneSaveAndLoadAreRefused) {
  const std::string file =
      ::testing::TempDir() + "kvactor-unwanted-states-" + std::to_string(::getpid());
  cluster c("");
  for (const status& s : {c.kv.save_optimizer_states(file, true).get_status(),
                          c.kv.load_optimizer_states(file).get_status()}) {
    EXPECT_EQ(s.code(), errc::unsupported) << s.to_string();
    EXPECT_NE(s.message().find("KVACTOR_STATES_DIR"), std::string::npos) << s.to_string();
  }
  EXPECT_FALSE(exists(file + ".server0"));
  // The store is as it was: its momentum still moves the weight.
  EXPECT_NE(c.zero_push_delta(), 0.0);
  EXPECT_EQ(c.stop(), (std::vector<int>{0, 0}));
}

// A link planted in the directory (it may be shared) is neither read through nor written
// through, though it points at a valid state file.
TEST(StatesDir, ALinkInItIsNeitherReadNorWritten) {
  dirs d;
  cluster c(d.dir);
  ASSERT_TRUE(c.kv.save_optimizer_states("real", true).get_status().is_ok());
  const std::string target = d.outer + "/real.server0", link = d.dir + "/linked.server0";
  ASSERT_EQ(std::rename((d.dir + "/real.server0").c_str(), target.c_str()), 0);
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  const std::string before = contents(target);
  ASSERT_FALSE(before.empty());

  const status load = c.kv.load_optimizer_states("linked").get_status();
  EXPECT_EQ(load.code(), errc::invalid_argument) << load.to_string();
  EXPECT_NE(load.message().find("symbolic link"), std::string::npos) << load.to_string();
  c.kv.push(1, tensor::ones(s4));  // a different state from the target's
  const status save = c.kv.save_optimizer_states("linked", true).get_status();
  EXPECT_EQ(save.code(), errc::invalid_argument) << save.to_string();
  EXPECT_NE(save.message().find("symbolic link"), std::string::npos) << save.to_string();
  EXPECT_TRUE(is_link(link));
  EXPECT_EQ(contents(target), before);
  EXPECT_EQ(c.stop(), (std::vector<int>{0, 0}));
  std::remove(link.c_str());
  std::remove(target.c_str());
}

}  // namespace
}  // namespace kvactor::testing
