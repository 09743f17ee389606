// GoogleTest helpers the cluster tests share: run a worker program (dist_node or another, see
// node_util.hpp) to its end, and stop a "steady" job in order. The test target defines
// KVACTOR_SERVER, and KVACTOR_DIST_NODE where it runs dist_node.
// Thread-safety: test thread only.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "cluster.hpp"

namespace kvactor::testing {

/// Runs worker program `program` with `args` on S servers and W workers; every process must
/// exit 0 and every worker print "OK <args[0]> worker <rank>" ending in `ok_suffix`.
inline void run_program(const std::string& program, const std::vector<std::string>& args,
                        int servers, int workers, std::map<std::string, std::string> env = {},
                        const std::string& ok_suffix = "") {
  using namespace std::chrono_literals;
  cluster c(KVACTOR_SERVER, program, args, servers, workers, std::move(env));
  ASSERT_TRUE(c.wait_all(60s)) << "cluster did not finish\n" << c.dump();
  for (auto& p : c.procs())
    EXPECT_EQ(p.exit_code(), 0) << p.role << "\n" << c.dump();
  for (int w = 0; w < workers; ++w) {  // ranks need not follow the start order
    const std::string out = c.worker(w).output();
    const auto at = out.find("OK " + args.front() + " worker ");
    ASSERT_NE(at, std::string::npos) << c.dump();
    const std::string line = out.substr(at, out.find('\n', at) - at);
    ASSERT_GE(line.size(), ok_suffix.size()) << c.dump();
    EXPECT_EQ(line.substr(line.size() - ok_suffix.size()), ok_suffix) << c.dump();
  }
}

#ifdef KVACTOR_DIST_NODE
/// Runs dist_node's `scenario` on S servers and W workers (see run_program).
inline void run_scenario(const std::string& scenario, int servers, int workers,
                         std::map<std::string, std::string> env = {}) {
  run_program(KVACTOR_DIST_NODE, {scenario}, servers, workers, std::move(env));
}
#endif

/// Stops a 1-server, 1-worker "steady" job (its worker reads "stop"): worker, server and
/// scheduler must each exit 0, whatever extra processes the test started.
inline void stop_steady_job(cluster& c) {
  using namespace std::chrono_literals;
  c.send_line(c.worker(0), "stop");
  ASSERT_TRUE(c.wait(c.worker(0), 30s)) << c.dump();
  ASSERT_TRUE(c.wait(c.server(0), 30s)) << c.dump();
  ASSERT_TRUE(c.wait(c.scheduler(), 30s)) << c.dump();
  EXPECT_EQ(c.worker(0).exit_code(), 0) << c.dump();
  EXPECT_EQ(c.server(0).exit_code(), 0) << c.dump();
  EXPECT_EQ(c.scheduler().exit_code(), 0) << c.dump();
}

}  // namespace kvactor::testing
