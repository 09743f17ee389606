// How cluster nodes word a lost peer: the node by name ("the scheduler", "server 1",
// "worker 0"), the cause in words ("connection closed by the peer", "no heartbeat for 3 s"),
// never a rank of -1 nor a status printed as "(ok)".
#include <gtest/gtest.h>

#include <string>

#include "dist/node_common.hpp"

namespace kvactor::detail {
namespace {

void expect_plain(const std::string& text) {
  EXPECT_EQ(text.find("-1"), std::string::npos) << text;
  EXPECT_EQ(text.find("(ok)"), std::string::npos) << text;
  EXPECT_EQ(text.find("peer_lost:"), std::string::npos) << text;
  EXPECT_EQ(text.find("timeout:"), std::string::npos) << text;
}

TEST(NodeMessages, NodesAreNamedNotNumbered) {
  EXPECT_EQ(node_name("scheduler", 0), "the scheduler");
  EXPECT_EQ(node_name("scheduler", -1), "the scheduler");
  EXPECT_EQ(node_name("server", 1), "server 1");
  EXPECT_EQ(node_name("worker", 0), "worker 0");
  EXPECT_EQ(node_name("worker", -1), "a worker (not ranked yet)");
}

TEST(NodeMessages, CausesAreWords) {
  EXPECT_EQ(close_cause(status{errc::peer_lost, "connection closed by the peer"}),
            "connection closed by the peer");
  EXPECT_EQ(close_cause(status{errc::timeout, "no heartbeat for 3 s"}), "no heartbeat for 3 s");
  EXPECT_EQ(close_cause(status{}), "closed by the peer (it shut down)");
  // A peer that said why (a server stopping because the cluster broke).
  EXPECT_EQ(close_cause(status{errc::peer_lost,
                               "peer closed the connection: it stopped: lost worker 1 (reported "
                               "by the scheduler): no heartbeat for 3 s"}),
            "it stopped: lost worker 1 (reported by the scheduler): no heartbeat for 3 s");
  EXPECT_EQ(duration_text(std::chrono::milliseconds(3000)), "3 s");
  EXPECT_EQ(duration_text(std::chrono::milliseconds(1500)), "1500 ms");
}

TEST(NodeMessages, LostNodes) {
  const auto own = lost_status("server 0 (127.0.0.1:4000)", close_cause(status{}));
  EXPECT_EQ(own.code(), errc::peer_lost);
  EXPECT_EQ(own.message(), "lost server 0 (127.0.0.1:4000): closed by the peer (it shut down)");
  expect_plain(own.message());

  const auto relayed = node_lost_status(wire::node_lost_meta{"worker", 1, "no heartbeat for 3 s"});
  EXPECT_EQ(relayed.code(), errc::peer_lost);
  EXPECT_EQ(relayed.message(), "lost worker 1 (reported by the scheduler): no heartbeat for 3 s");

  const auto unranked =
      node_lost_status(wire::node_lost_meta{"worker", -1, "connection closed by the peer"});
  EXPECT_EQ(unranked.message(),
            "lost a worker (not ranked yet) (reported by the scheduler): connection closed by "
            "the peer");
  expect_plain(unranked.message());

  // The cluster as a whole: the reason says it all.
  const auto cluster = node_lost_status(
      wire::node_lost_meta{"cluster", -1, "the cluster did not assemble within 60 s: ..."});
  EXPECT_EQ(cluster.message(), "the cluster did not assemble within 60 s: ...");
  expect_plain(cluster.message());

  const auto garbled =
      node_lost_status(result<wire::node_lost_meta>{status{errc::protocol_error, "truncated"}});
  EXPECT_EQ(garbled.code(), errc::peer_lost);
  EXPECT_NE(garbled.message().find("truncated"), std::string::npos) << garbled.message();
}

}  // namespace
}  // namespace kvactor::detail
