// MXNet's pull rules (issue 11 items 4 and 5) in real loopback clusters: row ids of any shape
// read flat, float ids checked, and pulled values converted into outputs of another type, on
// dist_sync and (on two emulated devices) dist_sync_device. The workers run rules_node.cpp.
#include <gtest/gtest.h>

#include "scenario.hpp"

using kvactor::testing::run_program;

namespace {

void run_scenario(const std::string& scenario, int servers, int workers,
                  std::map<std::string, std::string> env = {}) {
  run_program(KVACTOR_RULES_NODE, {scenario}, servers, workers, std::move(env));
}

}  // namespace

TEST(DistPullRules, RowIdsOfAnyShapeTwoServersTwoWorkers) {
  run_scenario("row_ids", 2, 2);
}

TEST(DistPullRules, ConvertingPullsTwoServersThreeWorkers) {
  run_scenario("casts", 2, 3);
}

TEST(DistPullRules, ConvertingPullsOnEmulatedDevices) {
  run_scenario("device_casts", 1, 2, {{"KVACTOR_EMULATE_CUDA", "2"}});
}
