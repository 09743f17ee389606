// The harness shared by the cluster tests' worker programs (dist_node, sparse_node,
// sparse_device_node, sparse_output_node, rules_node): failing with the worker's rank,
// checks, and a main that joins the cluster and runs one named scenario. A scenario checks
// exact results; the program prints "OK <scenario> worker <rank>[suffix]" and exits 0, or
// prints "FAIL: ..." and exits 1 (tests/dist/scenario.hpp reads both).
// Thread-safety: the program's main thread only.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "../support/code_of.hpp"
#include "kvactor/kvstore.hpp"

namespace kvactor::testing::node {

/// This worker's rank, -1 until it has joined the cluster.
inline int rank = -1;

[[noreturn]] inline void fail(const std::string& what) {
  if (rank >= 0)
    std::printf("FAIL: worker %d: %s\n", rank, what.c_str());
  else  // create() failed or was not reached: no rank yet
    std::printf("FAIL: worker (before joining the cluster): %s\n", what.c_str());
  std::fflush(stdout);
  std::exit(1);
}

inline void check(bool ok, const std::string& what) {
  if (!ok) fail(what);
}

/// t holds exactly `want`, element by element.
inline void expect_values(const tensor& t, const std::vector<double>& want,
                          const std::string& what) {
  const auto got = t.to_vector();
  check(got.size() == want.size(), what + ": " + std::to_string(got.size()) + " elements, " +
                                       std::to_string(want.size()) + " expected");
  for (std::size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i])
      fail(what + ": element " + std::to_string(i) + " is " + std::to_string(got[i]) +
           ", expected " + std::to_string(want[i]));
}

using kvactor::testing::code_of;

using scenario_table = std::map<std::string, std::function<void(kvstore&)>>;
using store_chooser = std::function<std::string(const std::string& scenario)>;

/// The chooser of the programs whose one scenario `device_scenario` runs on dist_sync_device
/// and every other on dist_sync.
inline store_chooser on_devices_for(const std::string& device_scenario) {
  return [device_scenario](const std::string& s) {
    return s == device_scenario ? "dist_sync_device" : "dist_sync";
  };
}

/// The program's main: runs scenario argv[1] (default `fallback`) of `scenarios` on the store
/// type store_of(scenario); `ok_suffix`, when given, is appended to the OK line.
inline int run_node(int argc, char** argv, const std::string& fallback,
                    const store_chooser& store_of, const scenario_table& scenarios,
                    const std::function<std::string()>& ok_suffix = nullptr) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const std::string scenario = argc > 1 ? argv[1] : fallback;
  const auto it = scenarios.find(scenario);
  if (it == scenarios.end()) fail("unknown scenario " + scenario);
  try {
    auto kv = create(store_of(scenario));
    rank = kv.rank();
    it->second(kv);
    std::printf("OK %s worker %d%s\n", scenario.c_str(), rank,
                ok_suffix ? ok_suffix().c_str() : "");
  } catch (const error& e) {
    fail(std::string{"kvactor::error: "} + e.what());
  }
  return 0;
}

}  // namespace kvactor::testing::node
