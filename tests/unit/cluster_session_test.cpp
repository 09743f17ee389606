// A worker's cluster session (actors/src/dist/cluster_session.*) without sockets: a node's
// loss breaks the session once; its control plane then fails at once with that loss, and
// the calls it made still count out of the store's wait_all().
#include <gtest/gtest.h>

#include "dist/cluster_session.hpp"

namespace kvactor::detail {
namespace {

TEST(ClusterSession, FirstLossBreaksItAndLaterControlFailsWithIt) {
  auto counter = std::make_shared<op_counter>();
  cluster_session s(cluster_config{}, counter);
  EXPECT_TRUE(s.tracker().broken().is_ok());

  const status lost{errc::peer_lost, "lost server 0 (127.0.0.1:1): no heartbeat for 3 s"};
  s.on_connection_lost(lost);
  s.on_connection_lost(status{errc::peer_lost, "lost the scheduler: it stopped"});
  EXPECT_EQ(s.tracker().broken().message(), lost.message());

  auto b = s.barrier();
  ASSERT_TRUE(b.ready());  // failed at once: nothing was sent
  EXPECT_EQ(b.get_status().code(), errc::peer_lost);
  EXPECT_EQ(b.get_status().message(), lost.message());
  EXPECT_EQ(counter->value(), 0u);

  status seen;
  s.barrier([&seen](const status& st) { seen = st; });
  EXPECT_EQ(seen.message(), lost.message());
}

// A command whose metadata the transport would refuse fails before anything is sent.
TEST(ClusterSession, CommandTooBigForAMessageFailsBeforeSending) {
  auto counter = std::make_shared<op_counter>();
  cluster_session s(cluster_config{}, counter);
  auto f = s.command_all(wire::command::set_profiler_params,
                         std::string(s.caps().max_meta_bytes + 1, 'x'));
  ASSERT_TRUE(f.ready());
  EXPECT_EQ(f.get_status().code(), errc::invalid_argument);
  EXPECT_NE(f.get_status().message().find("set_profiler_params"), std::string::npos)
      << f.get_status().message();
  EXPECT_EQ(counter->value(), 0u);
}

}  // namespace
}  // namespace kvactor::detail
