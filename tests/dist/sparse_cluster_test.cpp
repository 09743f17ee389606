// Row-sparse pushes in real clusters on loopback (a scheduler, kvactor-server processes and
// sparse_node workers): under multi-precision with float16 and bfloat16 keys (issue 11 item
// 1), and while gradient compression is on (item 7), on one and two servers.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "scenario.hpp"

using kvactor::testing::run_program;

namespace {

// Every process exits 0 and every worker says OK (`ok_words` after it: device values used).
void run_scenario(std::vector<std::string> args, int servers, int workers,
                  std::map<std::string, std::string> env = {}, const std::string& ok_words = "") {
  env["KVACTOR_BIGARRAY_BOUND"] = "1000";
  run_program(KVACTOR_SPARSE_NODE, args, servers, workers, std::move(env), ok_words);
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

// dist_sync_device with the keys' values, the pushed rows, row ids and outputs on two emulated
// devices (items 1 and 2 together).
TEST(DistSparseMultiPrecision, Float16DeviceStoreOnEmulatedDevices) {
  run_scenario({"mp_rows", "float16", "dist_sync_device"}, 2, 2, {{"KVACTOR_EMULATE_CUDA", "2"}},
               " with device values");
}

TEST(DistSparseMultiPrecision, Bfloat16DeviceStoreOnEmulatedDevices) {
  run_scenario({"mp_rows", "bfloat16", "dist_sync_device"}, 2, 2, {{"KVACTOR_EMULATE_CUDA", "2"}},
               " with device values");
}

TEST(DistSparseCompression, RowPushesStayExactOneServer) {
  run_scenario({"gc_rows"}, 1, 2);
}

TEST(DistSparseCompression, RowPushesStayExactTwoServers) {
  run_scenario({"gc_rows"}, 2, 2);
}

}  // namespace
