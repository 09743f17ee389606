// Row-sparse outputs of row_sparse_pull in real loopback clusters (tests/dist/sparse_output_node
// .cpp): host outputs on dist_sync, device outputs on dist_sync_device, every process with two
// emulated devices (on a GPU machine the emulation stays off and the workers use the real ones).
#include <gtest/gtest.h>

#include "cluster.hpp"

using kvactor::testing::cluster;
using namespace std::chrono_literals;

namespace {

void run_scenario(const std::string& scenario, int servers, int workers) {
  cluster c(KVACTOR_SERVER, KVACTOR_SPARSE_OUTPUT_NODE, {scenario}, servers, workers,
            {{"KVACTOR_EMULATE_CUDA", "2"}, {"KVACTOR_BIGARRAY_BOUND", "8"}});
  ASSERT_TRUE(c.wait_all(60s)) << "cluster did not finish\n" << c.dump();
  for (auto& p : c.procs())
    EXPECT_EQ(p.exit_code(), 0) << p.role << "\n" << c.dump();
  for (int w = 0; w < workers; ++w)
    EXPECT_NE(c.worker(w).output().find("OK " + scenario), std::string::npos) << c.dump();
}

}  // namespace

TEST(DistSync, RowSparseOutputsOnTheHost) {
  run_scenario("host", 2, 2);
}

TEST(DistSyncDevice, RowSparseOutputsOnDevices) {
  run_scenario("device", 2, 2);
}
