// Fusion of small keys in real clusters (issue 13 item 3): dist_node's "fusion" scenario - 300
// small keys in one call, pushes and pulls of every key with different priorities issued
// before any is waited for, pushpull of all of them, and one key whose round fails on its
// server beside 20 keys of the same call that are updated - must give the same exact results
// with fusion on (the default), with a window that lets later calls join a batch, and off.
#include <gtest/gtest.h>

#include "scenario.hpp"

namespace kvactor::testing {
namespace {

TEST(DistFusion, ManySmallKeysTwoServersTwoWorkers) {
  run_scenario("fusion", 2, 2);
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
