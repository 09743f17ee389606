// The worker program of the multi-process tests: each scenario checks exact results inside a
// real cluster and exits 0 when they hold (or prints "FAIL: ..." and exits 1).
// The scenarios are in dist_node_*.cpp (see dist_node.hpp).
#include <string>

#include "dist_node.hpp"
#include "kvactor/kvstore.hpp"
#include "node_util.hpp"

using kvactor::tensor;
namespace node = kvactor::testing::node;
using namespace kvactor::testing::dist_node;

int main(int argc, char** argv) {
  auto store_of = [](const std::string& scenario) {
    return scenario == "async"           ? "dist_async"
           : scenario == "device_values" ? "dist_sync_device"
           : scenario == "device_async"  ? "dist_async_device"
                                         : "dist_sync";
  };
  const node::scenario_table scenarios = {
      {"sync_rounds", sync_rounds},
      {"string_keys", string_keys},
      {"async", async_updates},
      {"commands", commands},
      {"priority", priority},
      {"until_failure", until_failure},
      {"steady", steady},
      {"checkpoint", checkpoint},
      {"sparse", sparse},
      {"compressed", compressed},
      {"device_values", device_values},
      {"device_async", device_async},
      {"empty", [](kvactor::kvstore&) {}},
      // A handle assigned over the store ends it as its destructor would (orderly).
      {"reassigned",
       [](kvactor::kvstore& kv) {
         kv.init(1, tensor::ones({4})).get();
         kv = kvactor::kvstore{};
         if (kv.valid()) node::fail("the handle is still valid after the assignment");
       }},
      {"limits", limits},
      {"refused_round", refused_round},
      {"departed", departed},
      {"fusion", fusion},
      {"streamed_rounds", streamed_rounds},
  };
  return node::run_node(argc, argv, "sync_rounds", store_of, scenarios);
}
