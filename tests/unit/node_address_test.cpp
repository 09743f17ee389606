// Where the scheduler and the servers listen (node_address.hpp): loopback when the scheduler
// is on loopback (local mode), KVACTOR_NODE_HOST when set, else the address peers reach.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netdb.h>
#include <unistd.h>

#include <string>

#include "dist/node_address.hpp"

namespace kvactor::detail {
namespace {

cluster_config on(const std::string& root, const std::string& node_host = {}) {
  cluster_config c;
  c.role = "scheduler";
  c.root_host = root;
  c.root_port = 9091;
  c.node_host = node_host;
  return c;
}

TEST(NodeAddress, SchedulerOnLoopbackListensOnLoopbackOnly) {
  for (const char* root : {"127.0.0.1", "127.0.0.2"}) {
    auto a = scheduler_address(on(root));
    ASSERT_TRUE(a) << a.error().to_string();
    EXPECT_EQ(a->bind, root);
    EXPECT_TRUE(a->note.empty()) << a->note;
  }
  auto a = scheduler_address(on("localhost"));
  ASSERT_TRUE(a) << a.error().to_string();
  EXPECT_TRUE(a->bind == "127.0.0.1" || a->bind == "::1") << a->bind;
  EXPECT_FALSE(is_wildcard_address(a->bind));
}

TEST(NodeAddress, NodeHostWins) {
  auto a = scheduler_address(on("127.0.0.1", "127.0.0.9"));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->bind, "127.0.0.9");
  auto s = server_address(on("127.0.0.1", "10.1.2.3"), "127.0.0.1");
  EXPECT_EQ(s.bind, "10.1.2.3");
  EXPECT_EQ(s.advertise, "10.1.2.3");
}

TEST(NodeAddress, ServerListensWhereItReachesTheScheduler) {
  auto s = server_address(on("10.0.0.1"), "10.0.0.7");
  EXPECT_EQ(s.bind, "10.0.0.7");
  EXPECT_EQ(s.advertise, "10.0.0.7");
  // Every interface only when asked; peers are then told the routed address, never 0.0.0.0.
  s = server_address(on("10.0.0.1", "0.0.0.0"), "10.0.0.7");
  EXPECT_EQ(s.bind, "0.0.0.0");
  EXPECT_EQ(s.advertise, "10.0.0.7");
}

// An address that is not this host's (a NAT or service address): the interface the route to
// it leaves by, never the address itself or every interface.
TEST(NodeAddress, SchedulerBehindAnAddressOfAnotherHost) {
  auto a = scheduler_address(on("198.51.100.7"));  // TEST-NET-2: never local
  if (a) {
    EXPECT_NE(a->bind, "198.51.100.7");
    EXPECT_FALSE(a->bind.empty());
    EXPECT_FALSE(is_wildcard_address(a->bind)) << a->bind;
  } else {  // a machine without a default route
    EXPECT_NE(a.error().message().find("no route"), std::string::npos) << a.error().to_string();
  }
}

// Debian and others map the host's own name to a loopback address; other hosts know it by
// another one, so the scheduler listens on every interface and says why.
TEST(NodeAddress, AHostNameResolvingToLoopbackListensEverywhere) {
  char name[256] = {0};
  ASSERT_EQ(::gethostname(name, sizeof name - 1), 0);
  addrinfo hints{};
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  bool loopback = ::getaddrinfo(name, "9091", &hints, &found) == 0;
  for (const addrinfo* ai = found; loopback && ai; ai = ai->ai_next)
    loopback =
        ai->ai_family == AF_INET &&
        (ntohl(reinterpret_cast<const sockaddr_in*>(ai->ai_addr)->sin_addr.s_addr) >> 24) == 127;
  if (found) ::freeaddrinfo(found);
  if (!loopback || std::string{name} == "localhost")
    GTEST_SKIP() << "this host's name (" << name << ") does not resolve to IPv4 loopback only";
  auto a = scheduler_address(on(name));
  ASSERT_TRUE(a) << a.error().to_string();
  EXPECT_EQ(a->bind, "0.0.0.0");
  EXPECT_NE(a->note.find("a loopback address, on this host: listening on every interface"),
            std::string::npos)
      << a->note;
}

TEST(NodeAddress, UnresolvableSchedulerNameIsAClearError) {
  auto a = scheduler_address(on("no-such-host.invalid"));
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code(), errc::invalid_argument);
  EXPECT_NE(a.error().message().find("DMLC_PS_ROOT_URI=no-such-host.invalid"), std::string::npos)
      << a.error().message();
  EXPECT_NE(a.error().message().find("KVACTOR_NODE_HOST"), std::string::npos);
}

}  // namespace
}  // namespace kvactor::detail
