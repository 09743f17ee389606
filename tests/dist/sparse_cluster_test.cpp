// Row-sparse pushes in real clusters on loopback (a scheduler, kvactor-server processes and
// sparse_node workers): under multi-precision with float16 and bfloat16 keys (issue 11 item
// 1), and while gradient compression is on (item 7), on one and two servers.
#include <gtest/gtest.h>

#include "cluster.hpp"

using kvactor::testing::cluster;
using namespace std::chrono_literals;

namespace {

void run_scenario(std::vector<std::string> args, int servers, int workers) {
  cluster c(KVACTOR_SERVER, KVACTOR_SPARSE_NODE, args, servers, workers,
            {{"KVACTOR_BIGARRAY_BOUND", "1000"}});
  ASSERT_TRUE(c.wait_all(60s)) << "cluster did not finish\n" << c.dump();
  for (auto& p : c.procs())
    EXPECT_EQ(p.exit_code(), 0) << p.role << "\n" << c.dump();
  for (int w = 0; w < workers; ++w)
    EXPECT_NE(c.worker(w).output().find("OK " + args.front()), std::string::npos) << c.dump();
}

// The setting: one server, one worker.
TEST(DistSparseMultiPrecision, Float16OneServerOneWorker) {
  run_scenario({"mp_rows", "float16"}, 1, 1);
}

TEST(DistSparseMultiPrecision, Float16TwoServersTwoWorkers) {
  run_scenario({"mp_rows", "float16"}, 2, 2);
}

TEST(DistSparseMultiPrecision, Bfloat16OneServerOneWorker) {
  run_scenario({"mp_rows", "bfloat16"}, 1, 1);
}

TEST(DistSparseMultiPrecision, Bfloat16TwoServersTwoWorkers) {
  run_scenario({"mp_rows", "bfloat16"}, 2, 2);
}

TEST(DistSparseCompression, RowPushesStayExactOneServer) {
  run_scenario({"gc_rows"}, 1, 2);
}

TEST(DistSparseCompression, RowPushesStayExactTwoServers) {
  run_scenario({"gc_rows"}, 2, 2);
}

}  // namespace
