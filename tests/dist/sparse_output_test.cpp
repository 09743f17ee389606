// Row-sparse outputs of row_sparse_pull in real loopback clusters (tests/dist/sparse_output_node
// .cpp): host outputs on dist_sync, device outputs on dist_sync_device, every process with two
// emulated devices (on a GPU machine the emulation stays off and the workers use the real ones).
#include <gtest/gtest.h>

#include "scenario.hpp"

using kvactor::testing::run_program;

namespace {

// Every process with two emulated devices and a bound that splits the table over the servers.
void run_scenario(const std::string& scenario, int servers, int workers) {
  run_program(KVACTOR_SPARSE_OUTPUT_NODE, {scenario}, servers, workers,
              {{"KVACTOR_EMULATE_CUDA", "2"}, {"KVACTOR_BIGARRAY_BOUND", "8"}});
}

}  // namespace

TEST(DistSync, RowSparseOutputsOnTheHost) {
  run_scenario("host", 2, 2);
}

TEST(DistSyncDevice, RowSparseOutputsOnDevices) {
  run_scenario("device", 2, 2);
}
