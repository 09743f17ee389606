// Distributed stores with real processes on loopback: a scheduler and servers
// (kvactor-server) and worker processes (dist_node) running exact-result scenarios; hostile
// and broken peers; killed and frozen nodes.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <regex>

#include "cluster.hpp"
#include "scenario.hpp"

using kvactor::testing::cluster;
using kvactor::testing::monotonic_ns;
using kvactor::testing::process;
using kvactor::testing::run_scenario;
using kvactor::testing::stop_steady_job;
using namespace std::chrono_literals;

namespace {

const std::string server_program = KVACTOR_SERVER;
const std::string node_program = KVACTOR_DIST_NODE;

long long error_time(const process& p) {
  std::smatch m;
  const std::string out = p.output();
  if (!std::regex_search(out, m, std::regex("ERROR peer_lost at ([0-9]+)"))) return -1;
  return std::stoll(m[1]);
}

long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

// Connects to 127.0.0.1:port and writes bytes; returns after the peer closed or 5 s.
bool send_raw(int port, const std::string& bytes, bool then_wait_for_close = true) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return false;
  }
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  (void)n;
  bool closed = true;
  if (then_wait_for_close) {
    char buf[4096];
    closed = false;
    for (;;) {
      ssize_t r = ::recv(fd, buf, sizeof buf, 0);
      if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
        closed = true;
        break;
      }
      if (r < 0) break;  // timeout: the peer kept the connection open
    }
  }
  ::close(fd);
  return closed;
}

// A 56-byte frame header (serialization/frame.hpp) with the given payload size.
std::string header(std::uint8_t type, std::uint64_t total, std::uint32_t slice) {
  std::string h(56, '\0');
  h[0] = 'K', h[1] = 'V', h[2] = 'A', h[3] = 'F';
  h[4] = 1;
  h[5] = static_cast<char>(type);
  h[6] = 0, h[7] = static_cast<char>(0xC0);  // first + last
  for (int i = 0; i < 8; ++i)
    h[32 + i] = static_cast<char>((total >> (8 * i)) & 0xff);
  for (int i = 0; i < 4; ++i)
    h[48 + i] = static_cast<char>((slice >> (8 * i)) & 0xff);
  return h;
}

}  // namespace

TEST(DistSync, ExactRoundsOneServerOneWorker) {
  run_scenario("sync_rounds", 1, 1, {{"KVACTOR_BIGARRAY_BOUND", "1000"}});
}

TEST(DistSync, ExactRoundsTwoServersThreeWorkers) {
  run_scenario("sync_rounds", 2, 3, {{"KVACTOR_BIGARRAY_BOUND", "1000"}});
}

// Parts of 200-600 KB: each server sums the pushes into the round as they arrive.
TEST(DistSync, BigPushesSummedAsTheyArrive) {
  run_scenario("streamed_rounds", 2, 3, {{"KVACTOR_BIGARRAY_BOUND", "1000"}});
}

TEST(DistSync, StringKeysAndBroadcast) {
  run_scenario("string_keys", 2, 3);
}

// dist_node asks for its profiles under /tmp; the servers write profiles only under
// KVACTOR_PROFILE_DIR.
TEST(DistSync, CommandsAndErrors) {
  run_scenario("commands", 2, 2, {{"KVACTOR_PROFILE_DIR", "/tmp"}});
}

TEST(DistSync, SmallHighPriorityPushOvertakesABigOne) {
  run_scenario("priority", 1, 1);
}

// Servers keep state files only under KVACTOR_STATES_DIR (dist_node names them under /tmp).
TEST(DistSync, OptimizerCheckpointsOnEveryServer) {
  run_scenario("checkpoint", 2, 2,
               {{"KVACTOR_BIGARRAY_BOUND", "1000"}, {"KVACTOR_STATES_DIR", "/tmp"}});
}

TEST(DistSync, RowSparsePushAndPull) {
  run_scenario("sparse", 2, 2,
               {{"KVACTOR_BIGARRAY_BOUND", "1000"}, {"KVACTOR_PROFILE_DIR", "/tmp"}});
}

TEST(DistSync, GradientCompression) {
  run_scenario("compressed", 1, 2, {{"KVACTOR_PROFILE_DIR", "/tmp"}});
}

TEST(DistAsync, EveryPushUpdates) {
  run_scenario("async", 2, 3);
}

// dist_sync_device on two emulated devices per worker (every process gets the variable; on a
// GPU machine the emulation stays off and the workers use the real devices).
TEST(DistSyncDevice, DeviceValuesSummedPerWorker) {
  run_scenario("device_values", 2, 2, {{"KVACTOR_EMULATE_CUDA", "2"}});
}

TEST(DistAsyncDevice, EveryDevicePushUpdates) {
  run_scenario("device_async", 2, 3, {{"KVACTOR_EMULATE_CUDA", "2"}});
}

TEST(DistCluster, CleanShutdownOfAnIdleCluster) {
  run_scenario("empty", 2, 2);
}

// A worker that assigns an empty handle over its store leaves the job in order, as the
// store's destructor does (the assignment used to drop the store without its goodbye: the
// servers then failed with "no heartbeat", or the worker hung in shutdown).
TEST(DistSync, StoreAssignedOverEndsInOrder) {
  run_scenario("reassigned", 1, 2);
}

// MXNet style: one binary for every role; create() runs the scheduler or server role it is
// given and exits with the cluster's status.
TEST(DistCluster, SameBinaryForEveryRole) {
  cluster c(node_program, node_program, {"string_keys"}, 2, 2);
  ASSERT_TRUE(c.wait_all(60s)) << c.dump();
  for (auto& p : c.procs())
    EXPECT_EQ(p.exit_code(), 0) << p.role << "\n" << c.dump();
  for (int w = 0; w < 2; ++w)
    EXPECT_NE(c.worker(w).output().find("OK string_keys"), std::string::npos) << c.dump();
}

// Kill -9 a worker: the survivors' pending operations fail with peer_lost within 5 s, and
// every process exits instead of hanging.
TEST(DistFaults, KilledWorker) {
  cluster c(server_program, node_program, {"until_failure"}, 1, 3);
  for (int w = 0; w < 3; ++w)
    ASSERT_TRUE(c.wait_for_output(c.worker(w), "READY", 30s)) << c.dump();
  const long long t0 = monotonic_ns();
  c.signal(c.worker(1), SIGKILL);
  ASSERT_TRUE(c.wait_all(20s)) << c.dump();
  for (int w : {0, 2}) {
    const long long t = error_time(c.worker(w));
    ASSERT_GT(t, 0) << c.dump();
    EXPECT_LT(t - t0, 5'000'000'000LL)
        << "worker " << w << " failed after " << (t - t0) / 1e6 << " ms";
    EXPECT_EQ(c.worker(w).exit_code(), 0) << c.dump();
    EXPECT_NE(c.worker(w).output().find("lost worker "), std::string::npos) << c.dump();
  }
  EXPECT_EQ(c.server(0).exit_code(), 1);
  EXPECT_EQ(c.scheduler().exit_code(), 1);
  EXPECT_NE(c.scheduler().output().find("kvactor scheduler: lost worker "), std::string::npos)
      << c.dump();
  for (auto& p : c.procs()) {  // plain words: never a rank of -1, never a status "(ok)"
    EXPECT_EQ(p.output().find(" -1"), std::string::npos) << p.role << "\n" << c.dump();
    EXPECT_EQ(p.output().find("(ok)"), std::string::npos) << p.role << "\n" << c.dump();
  }
}

// Kill -9 a server: workers fail within 5 s; the rest exit.
TEST(DistFaults, KilledServer) {
  cluster c(server_program, node_program, {"until_failure"}, 2, 2);
  for (int w = 0; w < 2; ++w)
    ASSERT_TRUE(c.wait_for_output(c.worker(w), "READY", 30s)) << c.dump();
  const long long t0 = monotonic_ns();
  c.signal(c.server(0), SIGKILL);
  ASSERT_TRUE(c.wait_all(20s)) << c.dump();
  for (int w : {0, 1}) {
    const long long t = error_time(c.worker(w));
    ASSERT_GT(t, 0) << c.dump();
    EXPECT_LT(t - t0, 5'000'000'000LL);
    EXPECT_NE(c.worker(w).output().find(": lost server "), std::string::npos) << c.dump();
  }
  for (auto& p : c.procs()) {
    EXPECT_EQ(p.output().find(" -1"), std::string::npos) << p.role << "\n" << c.dump();
    EXPECT_EQ(p.output().find("(ok)"), std::string::npos) << p.role << "\n" << c.dump();
  }
  EXPECT_EQ(c.server(1).exit_code(), 1);
  EXPECT_EQ(c.scheduler().exit_code(), 1);
}

// SIGSTOP a worker: it is frozen, not gone; heartbeats stop, and the survivors fail within
// 10 s.
TEST(DistFaults, FrozenWorker) {
  cluster c(server_program, node_program, {"until_failure"}, 1, 2);
  for (int w = 0; w < 2; ++w)
    ASSERT_TRUE(c.wait_for_output(c.worker(w), "READY", 30s)) << c.dump();
  const long long t0 = monotonic_ns();
  c.signal(c.worker(1), SIGSTOP);
  ASSERT_TRUE(c.wait(c.worker(0), 20s)) << c.dump();
  const long long t = error_time(c.worker(0));
  ASSERT_GT(t, 0) << c.dump();
  EXPECT_LT(t - t0, 10'000'000'000LL);
  EXPECT_NE(c.worker(0).output().find("(reported by the scheduler): no heartbeat for 3 s"),
            std::string::npos)
      << c.dump();
  EXPECT_TRUE(c.wait(c.server(0), 10s));
  EXPECT_TRUE(c.wait(c.scheduler(), 10s));
  c.signal(c.worker(1), SIGKILL);
}

// Hostile and broken peers on a server's port: each is dropped and logged, the server's
// memory stays within the cap, and the worker carries on.
TEST(DistHostile, ServerSurvivesBadPeers) {
  cluster c(server_program, node_program, {"steady"}, 1, 1);
  ASSERT_TRUE(c.wait_for_output(c.worker(0), "READY", 30s)) << c.dump();
  // The server logs its address after registering, which can trail the worker's READY.
  ASSERT_TRUE(c.wait_for_output(c.server(0), "accepting workers on", 30s)) << c.dump();
  const int port = server_port(c.server(0));
  ASSERT_GT(port, 0) << c.dump();
  const long rss_before = rss_kib(c.server(0).pid);
  EXPECT_TRUE(send_raw(port, std::string(1000, 'x')));                       // garbage
  EXPECT_TRUE(send_raw(port, header(22, std::uint64_t{4} << 30, 1 << 20)));  // a 4 GiB claim
  EXPECT_TRUE(send_raw(port, header(22, 100, 100).substr(0, 30), false));    // truncated
  // A client that never authenticates is dropped after the handshake timeout (5 s).
  EXPECT_TRUE(send_raw(port, ""));
  const long rss_after = rss_kib(c.server(0).pid);
  EXPECT_LT(rss_after - rss_before, 64 * 1024)
      << "server RSS grew from " << rss_before << " to " << rss_after << " KiB";
  c.send_line(c.worker(0), "stop");
  ASSERT_TRUE(c.wait_all(30s)) << c.dump();
  for (auto& p : c.procs())
    EXPECT_EQ(p.exit_code(), 0) << p.role << "\n" << c.dump();
  EXPECT_NE(c.worker(0).output().find("OK steady"), std::string::npos);
  EXPECT_NE(c.server(0).output().find("kvactor.net"), std::string::npos) << "closures are logged\n"
                                                                         << c.server(0).output();
}

// A worker with the wrong secret cannot join, and does not disturb the cluster.
TEST(DistHostile, WrongSecretIsRefused) {
  cluster c(server_program, node_program, {"steady"}, 1, 1);
  ASSERT_TRUE(c.wait_for_output(c.worker(0), "READY", 30s)) << c.dump();
  auto& stranger = c.start_extra("stranger", "worker", {node_program, "empty"},
                                 {{"KVACTOR_SECRET", "not-the-secret-of-this-cluster"},
                                  {"KVACTOR_CONNECT_TIMEOUT_MS", "3000"}});
  ASSERT_TRUE(c.wait(stranger, 20s)) << c.dump();
  EXPECT_EQ(stranger.exit_code(), 1);
  EXPECT_NE(stranger.output().find("unauthenticated"), std::string::npos) << stranger.output();
  stop_steady_job(c);
}

// Messages over the transport's caps (a 64 KiB message cap, so nothing needs gigabytes): a
// 70000-byte key, set_optimizer with 3505 lr_mult parameters and a 70 kB command are refused
// with the limit named, not left pending; keys bigger than a message travel in parts.
TEST(DistLimits, OversizedMessagesFailOrTravelInParts) {
  run_scenario("limits", 1, 2, {{"KVACTOR_MAX_MESSAGE_BYTES", "65536"}});
}

// Worker 1's pushes of key 1 are refused (it registered another shape than rank 0 stored):
// each round fails for worker 0 with aborted naming worker 1, and the whole cluster exits
// promptly instead of hanging in shutdown.
TEST(DistRounds, RefusedPushFailsTheRoundForEveryone) {
  const long long t0 = monotonic_ns();
  run_scenario("refused_round", 1, 2);
  EXPECT_LT(monotonic_ns() - t0, 20'000'000'000LL);
}

// Worker 1 leaves without pushing: worker 0's round fails with aborted naming worker 1.
TEST(DistRounds, RoundWithoutADepartedWorkerFails) {
  const long long t0 = monotonic_ns();
  run_scenario("departed", 1, 2);
  EXPECT_LT(monotonic_ns() - t0, 20'000'000'000LL);
}

// A process with the secret claims worker rank 0 on the server while worker 0 is live: a
// push without a claim and a claim with a forged token are both refused (unauthenticated),
// and the honest worker's exact values are not disturbed.
TEST(DistHostile, RankThiefIsRefused) {
  cluster c(server_program, node_program, {"steady"}, 1, 1);
  ASSERT_TRUE(c.wait_for_output(c.worker(0), "READY", 30s)) << c.dump();
  ASSERT_TRUE(c.wait_for_output(c.server(0), "accepting workers on", 30s)) << c.dump();
  const int port = server_port(c.server(0));
  ASSERT_GT(port, 0) << c.dump();
  auto& thief = c.start_extra("thief", "worker", {KVACTOR_RANK_THIEF, std::to_string(port)}, {});
  ASSERT_TRUE(c.wait(thief, 30s)) << c.dump();
  EXPECT_EQ(thief.exit_code(), 3) << thief.output();
  EXPECT_NE(thief.output().find("REFUSED push without a rank claim: unauthenticated"),
            std::string::npos)
      << thief.output();
  EXPECT_NE(thief.output().find("REFUSED claim with a forged token: unauthenticated"),
            std::string::npos)
      << thief.output();
  EXPECT_EQ(thief.output().find("ACCEPTED"), std::string::npos) << thief.output();
  c.send_line(c.worker(0), "stop");
  ASSERT_TRUE(c.wait_all(30s)) << c.dump();
  for (auto& p : c.procs()) {
    if (&p == &thief) continue;
    EXPECT_EQ(p.exit_code(), 0) << p.role << "\n" << c.dump();
  }
  EXPECT_NE(c.worker(0).output().find("OK steady"), std::string::npos) << c.dump();
}
