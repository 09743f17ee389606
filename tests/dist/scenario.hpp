// GoogleTest helpers the cluster tests share: run a dist_node scenario to its end, and stop a
// "steady" job in order. The test target defines KVACTOR_SERVER and KVACTOR_DIST_NODE.
// Thread-safety: test thread only.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "cluster.hpp"

namespace kvactor::testing {

/// Runs `scenario` on S servers and W workers; every process must exit 0 and every worker
/// print "OK <scenario>".
inline void run_scenario(const std::string& scenario, int servers, int workers,
                         std::map<std::string, std::string> env = {}) {
  using namespace std::chrono_literals;
  cluster c(KVACTOR_SERVER, KVACTOR_DIST_NODE, {scenario}, servers, workers, std::move(env));
  ASSERT_TRUE(c.wait_all(60s)) << "cluster did not finish\n" << c.dump();
  for (auto& p : c.procs())
    EXPECT_EQ(p.exit_code(), 0) << p.role << "\n" << c.dump();
  for (int w = 0; w < workers; ++w)
    EXPECT_NE(c.worker(w).output().find("OK " + scenario), std::string::npos) << c.dump();
}

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
