// Row-sparse values, row ids and outputs on the workers' devices in real loopback clusters
// (tests/dist/sparse_device_node.cpp), every process with two emulated devices (on a GPU
// machine the emulation stays off and the workers use the real devices).
#include <gtest/gtest.h>

#include "scenario.hpp"

using kvactor::testing::run_program;

namespace {

// Every process with two emulated devices and a bound that splits the table over the servers.
void run_scenario(const std::string& scenario, int servers, int workers) {
  run_program(KVACTOR_SPARSE_DEVICE_NODE, {scenario}, servers, workers,
              {{"KVACTOR_EMULATE_CUDA", "2"}, {"KVACTOR_BIGARRAY_BOUND", "8"}});
}

}  // namespace

TEST(DistSyncDevice, RowSparseDeviceRowsIdsAndOutputs) {
  run_scenario("device_rows", 2, 2);
}

TEST(DistSync, RowSparseDeviceTensorsAreUnsupported) {
  run_scenario("device_rows_refused", 1, 1);
}
