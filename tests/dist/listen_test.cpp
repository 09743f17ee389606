// Where a real cluster's scheduler and servers listen, read from the kernel (/proc/PID/fd and
// /proc/PID/net/tcp{,6}): in local mode (the scheduler on 127.0.0.1, as kvactor-launch's local
// mode and these tests set it) only on loopback; with KVACTOR_NODE_HOST there.
#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "cluster.hpp"

using kvactor::testing::cluster;
using kvactor::testing::process;
using namespace std::chrono_literals;

namespace {

const std::string server_program = KVACTOR_SERVER;
const std::string node_program = KVACTOR_DIST_NODE;

std::set<std::string> socket_inodes(pid_t pid) {
  std::set<std::string> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    char target[256] = {0};
    const std::string link = dir + "/" + e->d_name;
    if (::readlink(link.c_str(), target, sizeof target - 1) <= 0) continue;
    std::string t{target};
    if (t.rfind("socket:[", 0) == 0) out.insert(t.substr(8, t.size() - 9));
  }
  ::closedir(d);
  return out;
}

// "addr:port" of a /proc/net/tcp{,6} local_address field.
std::string address_of(const std::string& field, bool v6) {
  const auto colon = field.find(':');
  const int port = std::stoi(field.substr(colon + 1), nullptr, 16);
  char text[INET6_ADDRSTRLEN] = {0};
  if (!v6) {
    in_addr a{};
    a.s_addr = static_cast<in_addr_t>(std::stoul(field.substr(0, 8), nullptr, 16));
    ::inet_ntop(AF_INET, &a, text, sizeof text);
  } else {
    in6_addr a{};
    for (int w = 0; w < 4; ++w) {  // four 32-bit words, each in host order
      const auto word = static_cast<std::uint32_t>(std::stoul(field.substr(8 * w, 8), nullptr, 16));
      std::memcpy(&a.s6_addr[4 * w], &word, 4);
    }
    ::inet_ntop(AF_INET6, &a, text, sizeof text);
  }
  return std::string{text} + ":" + std::to_string(port);
}

// The addresses the process's TCP sockets listen on.
std::vector<std::string> listening(pid_t pid) {
  const auto inodes = socket_inodes(pid);
  std::vector<std::string> out;
  for (bool v6 : {false, true}) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/net/tcp" + (v6 ? "6" : ""));
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string sl, local, remote, state, queues, timer, retr, uid, timeout, inode;
      f >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
      if (state == "0A" && inodes.count(inode)) out.push_back(address_of(local, v6));
    }
  }
  return out;
}

std::string joined(const std::vector<std::string>& xs) {
  std::string s;
  for (const auto& x : xs)
    s += x + " ";
  return s;
}

std::string advertised_host(const process& p) {
  std::smatch m;
  const std::string out = p.output();
  if (!std::regex_search(out, m, std::regex("accepting workers on ([^ ]+):[0-9]+"))) return {};
  return m[1];
}

// Runs a 1x1 cluster with `env` until its worker is steady, checks every listener of the
// scheduler and the server against the expected host, then ends the cluster in order.
void expect_listeners(std::map<std::string, std::string> env, const std::string& scheduler_host,
                      const std::string& server_host) {
  cluster c(server_program, node_program, {"steady"}, 1, 1, std::move(env));
  ASSERT_TRUE(c.wait_for_output(c.worker(0), "READY", 30s)) << c.dump();
  ASSERT_TRUE(c.wait_for_output(c.server(0), "accepting workers on", 30s)) << c.dump();
  for (process* p : {&c.scheduler(), &c.server(0)}) {
    const auto addrs = listening(p->pid);
    ASSERT_FALSE(addrs.empty()) << p->role << " listens nowhere?\n" << c.dump();
    const std::string want = (p == &c.scheduler() ? scheduler_host : server_host) + ":";
    for (const auto& a : addrs)
      EXPECT_EQ(a.rfind(want, 0), 0u) << p->role << " listens on " << joined(addrs);
  }
  EXPECT_EQ(advertised_host(c.server(0)), server_host) << c.dump();
  c.send_line(c.worker(0), "stop");
  ASSERT_TRUE(c.wait_all(30s)) << c.dump();
  for (auto& p : c.procs())
    EXPECT_EQ(p.exit_code(), 0) << p.role << "\n" << c.dump();
}

}  // namespace

// Issue 10 item 4: local mode listened on 0.0.0.0.
TEST(DistListen, LocalModeListensOnLoopbackOnly) {
  expect_listeners({}, "127.0.0.1", "127.0.0.1");
}

// The scheduler listens on the address DMLC_PS_ROOT_URI names; a server on the interface
// its connection to the scheduler leaves by (to 127.0.0.2 that is lo, from 127.0.0.1).
TEST(DistListen, SchedulerOnTheAddressNamedServerOnTheRoutedOne) {
  expect_listeners({{"DMLC_PS_ROOT_URI", "127.0.0.2"}}, "127.0.0.2", "127.0.0.1");
}

TEST(DistListen, NodeHostIsWhereNodesListen) {
  expect_listeners({{"DMLC_PS_ROOT_URI", "127.0.0.3"}, {"KVACTOR_NODE_HOST", "127.0.0.3"}},
                   "127.0.0.3", "127.0.0.3");
}
