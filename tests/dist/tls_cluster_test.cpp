// Real clusters with TLS between every pair of nodes (KVACTOR_TLS=on, on loopback where auto
// would leave it off): exact results as in dist_test.cpp, a wrong secret refused by TLS itself,
// and a node whose KVACTOR_TLS differs refused with a reason that names the setting. Then the
// same with certificates (KVACTOR_TLS_CERT/KEY/CA): exact results, and a node whose
// certificate another CA signed refused.
#include <gtest/gtest.h>

#include "cluster.hpp"
#include "scenario.hpp"
#include "test_certs.hpp"

using kvactor::testing::cluster;
using kvactor::testing::test_certs;
using namespace std::chrono_literals;

namespace {

const std::string server_program = KVACTOR_SERVER;
const std::string node_program = KVACTOR_DIST_NODE;

void run_tls_scenario(const std::string& scenario, int servers, int workers,
                      std::map<std::string, std::string> env) {
  env["KVACTOR_TLS"] = "on";
  kvactor::testing::run_scenario(scenario, servers, workers, std::move(env));
}

TEST(DistTls, ExactRoundsTwoServersThreeWorkers) {
  run_tls_scenario("sync_rounds", 2, 3, {{"KVACTOR_BIGARRAY_BOUND", "1000"}});
}

TEST(DistTls, SmallHighPriorityPushOvertakesABigOne) {
  run_tls_scenario("priority", 1, 1, {});
}

// Strangers against a TLS cluster: one with another secret (the TLS handshake fails), one with
// TLS off (refused at once, naming KVACTOR_TLS). The cluster carries on undisturbed.
TEST(DistTls, StrangersAreRefused) {
  cluster c(server_program, node_program, {"steady"}, 1, 1, {{"KVACTOR_TLS", "on"}});
  ASSERT_TRUE(c.wait_for_output(c.worker(0), "READY", 30s)) << c.dump();
  auto& wrong = c.start_extra("wrong-secret", "worker", {node_program, "empty"},
                              {{"KVACTOR_SECRET", "not-the-secret-of-this-cluster"},
                               {"KVACTOR_CONNECT_TIMEOUT_MS", "3000"}});
  auto& plain = c.start_extra("plaintext", "worker", {node_program, "empty"},
                              {{"KVACTOR_TLS", "off"}, {"KVACTOR_CONNECT_TIMEOUT_MS", "3000"}});
  ASSERT_TRUE(c.wait(wrong, 20s)) << c.dump();
  ASSERT_TRUE(c.wait(plain, 20s)) << c.dump();
  EXPECT_EQ(wrong.exit_code(), 1) << wrong.output();
  EXPECT_NE(wrong.output().find("unauthenticated"), std::string::npos) << wrong.output();
  EXPECT_NE(wrong.output().find("TLS"), std::string::npos) << wrong.output();
  EXPECT_EQ(plain.exit_code(), 1) << plain.output();
  EXPECT_NE(plain.output().find("KVACTOR_TLS"), std::string::npos) << plain.output();
  kvactor::testing::stop_steady_job(c);
  EXPECT_NE(c.worker(0).output().find("OK steady"), std::string::npos) << c.dump();
}

// Certificates instead of the PSK: every node holds a certificate of the job's CA (one per
// role here); the environment alone turns TLS on (no KVACTOR_TLS), results are exact, and a
// worker whose certificate another CA signed is refused while the job carries on.
TEST(DistTls, CertificatesOfTheJobsCa) {
  test_certs certs;
  const std::string ca = certs.make_ca("job");
  const auto node = certs.make_node("node", ca);
  std::map<std::string, std::string> env{
      {"KVACTOR_TLS_CERT", node.cert}, {"KVACTOR_TLS_KEY", node.key}, {"KVACTOR_TLS_CA", ca}};
  kvactor::testing::run_scenario("sync_rounds", 2, 2, env);
  const std::string other_ca = certs.make_ca("stranger");
  const auto stranger = certs.make_node("stranger", other_ca);
  cluster c(server_program, node_program, {"steady"}, 1, 1, env);
  ASSERT_TRUE(c.wait_for_output(c.worker(0), "READY", 30s)) << c.dump();
  auto& wrong = c.start_extra("foreign-cert", "worker", {node_program, "empty"},
                              {{"KVACTOR_TLS_CERT", stranger.cert},
                               {"KVACTOR_TLS_KEY", stranger.key},
                               {"KVACTOR_TLS_CA", ca},
                               {"KVACTOR_CONNECT_TIMEOUT_MS", "3000"}});
  ASSERT_TRUE(c.wait(wrong, 20s)) << c.dump();
  EXPECT_EQ(wrong.exit_code(), 1) << wrong.output();
  EXPECT_NE(wrong.output().find("unauthenticated"), std::string::npos) << wrong.output();
  EXPECT_NE(wrong.output().find("certificate"), std::string::npos) << wrong.output();
  kvactor::testing::stop_steady_job(c);
}

}  // namespace
