// A node whose scheduler cannot be reached says so every few seconds instead of staying
// silent for the whole connect timeout, then fails naming the address and the variables that
// set it.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "in_process_cluster.hpp"

namespace kvactor::testing {
namespace {

using namespace std::chrono_literals;

TEST(ClusterJoin, NodesSayTheyAreStillWaitingForTheScheduler) {
  const int port = unused_port();
  ASSERT_GT(port, 0);
  // 3.5 s: one progress line (every 3 s), then the failure.
  const auto cfg = cluster_config_for(port, 1, 1, 3500ms);
  const std::string at = "127.0.0.1:" + std::to_string(port);
  stderr_capture captured;
  int server_code = -1;
  std::thread server([&] { server_code = detail::run_server(cfg, options{}); });
  std::string worker_error;
  try {
    (void)join_as_worker(cfg, "dist_sync");
  } catch (const error& e) {
    worker_error = e.what();
  }
  server.join();
  const std::string log = captured.text();

  EXPECT_NE(log.find("kvactor worker: still waiting for the scheduler at " + at +
                     ", 3 s (gives up after 3500 ms)"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("kvactor server: still waiting for the scheduler at " + at + ", 3 s"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("kvactor server: cannot reach the scheduler at " + at +
                     " (DMLC_PS_ROOT_URI:DMLC_PS_ROOT_PORT) within 3500 ms"),
            std::string::npos)
      << log;
  EXPECT_EQ(server_code, 1);
  EXPECT_NE(worker_error.find("peer_lost: cannot reach the scheduler at " + at +
                              " (DMLC_PS_ROOT_URI:DMLC_PS_ROOT_PORT) within 3500 ms"),
            std::string::npos)
      << worker_error;
}

// Connected, but the cluster never completes: the scheduler lists who registered, and the
// worker reports the scheduler's verdict (not a bare timeout), never a rank of -1.
TEST(ClusterJoin, AnIncompleteClusterSaysWhoIsMissing) {
  const int port = unused_port();
  ASSERT_GT(port, 0);
  const auto cfg = cluster_config_for(port, 1, 2, 1500ms);  // the second worker never comes
  stderr_capture captured;
  std::string worker_error;
  {
    node_threads nodes(cfg);
    try {
      (void)join_as_worker(cfg, "dist_sync");
    } catch (const error& e) {
      worker_error = e.what();
    }
    EXPECT_EQ(nodes.join(), (std::vector<int>{1, 1}));
  }
  const std::string log = captured.text();
  const std::string verdict =
      "the cluster did not assemble within 1500 ms: 1 of 1 server, 1 of 2 workers registered "
      "with the scheduler";
  EXPECT_NE(worker_error.find("peer_lost: " + verdict), std::string::npos) << worker_error;
  EXPECT_NE(log.find("kvactor scheduler: " + verdict), std::string::npos) << log;
  EXPECT_NE(log.find("kvactor server: " + verdict), std::string::npos) << log;
  EXPECT_EQ(log.find("-1"), std::string::npos) << log;
  EXPECT_EQ(log.find("(ok)"), std::string::npos) << log;
}

}  // namespace
}  // namespace kvactor::testing
