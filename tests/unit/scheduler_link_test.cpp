// What a node makes of its scheduler's messages (actors/src/dist/scheduler_link.*), without
// sockets: the node table (checked), a lost node, a worker's barrier reply, and anything else
// as a protocol error naming the type; the scheduler's own loss and a broken node's parting
// word, as both the worker and the server word them.
#include <gtest/gtest.h>

#include <string>

#include "dist/node_common.hpp"
#include "dist/scheduler_link.hpp"

namespace kvactor::detail {
namespace {

using kind = scheduler_event::kind;

template <class Meta>
net::message message_of(wire::msg type, const Meta& meta, std::uint64_t id = 0) {
  net::message m;
  m.type = static_cast<std::uint8_t>(type);
  m.id = id;
  m.meta = wire::encode(meta);
  return m;
}

wire::node_table_meta sample_table() {
  wire::node_table_meta t;
  t.rank = 1;
  t.num_workers = 2;
  t.num_servers = 1;
  t.servers = {wire::endpoint{"10.0.0.1", 4000}};
  t.rank_key = "token";
  return t;
}

TEST(SchedulerLink, TheNodeTableReachesEveryRole) {
  for (const char* role : {"worker", "server"}) {
    auto e = read_scheduler_message(role, message_of(wire::msg::node_table, sample_table()));
    ASSERT_EQ(e.what, kind::table) << role << ": " << e.why.to_string();
    EXPECT_EQ(e.table.rank, 1);
    EXPECT_EQ(e.table.num_workers, 2u);
    EXPECT_EQ(e.table.num_servers, 1u);
    ASSERT_EQ(e.table.servers.size(), 1u);
    EXPECT_EQ(e.table.servers[0].host, "10.0.0.1");
    EXPECT_EQ(e.table.servers[0].port, 4000);
    EXPECT_EQ(e.table.rank_key, "token");
  }
}

TEST(SchedulerLink, ATableWithoutRankKeyIsRefused) {
  auto t = sample_table();
  t.rank_key.clear();
  for (const char* role : {"worker", "server"}) {
    auto e = read_scheduler_message(role, message_of(wire::msg::node_table, t));
    EXPECT_EQ(e.what, kind::bad_table) << role;
    EXPECT_EQ(e.why.code(), errc::protocol_error);
    EXPECT_EQ(e.why.message(), "the node table has no rank key");
  }
}

TEST(SchedulerLink, ATableThatDoesNotDecodeIsRefused) {
  auto t = sample_table();
  t.num_servers = 2;  // lists one
  auto e = read_scheduler_message("server", message_of(wire::msg::node_table, t));
  EXPECT_EQ(e.what, kind::bad_table);
  EXPECT_EQ(e.why.code(), errc::protocol_error);
  EXPECT_NE(e.why.message().find("lists 1 servers but says 2"), std::string::npos)
      << e.why.message();

  auto cut = message_of(wire::msg::node_table, sample_table());
  cut.meta.resize(cut.meta.size() / 2);
  e = read_scheduler_message("worker", cut);
  EXPECT_EQ(e.what, kind::bad_table);
  EXPECT_EQ(e.why.code(), errc::protocol_error);
  EXPECT_FALSE(e.why.message().empty());
}

TEST(SchedulerLink, ALostNodeIsNamed) {
  auto e = read_scheduler_message(
      "worker",
      message_of(wire::msg::node_lost, wire::node_lost_meta{"worker", 1, "no heartbeat for 3 s"}));
  EXPECT_EQ(e.what, kind::lost);
  EXPECT_EQ(e.why.code(), errc::peer_lost);
  EXPECT_EQ(e.why.message(), "lost worker 1 (reported by the scheduler): no heartbeat for 3 s");

  // The cluster as a whole: its reason says it all.
  e = read_scheduler_message(
      "server", message_of(wire::msg::node_lost,
                           wire::node_lost_meta{"cluster", -1, "the cluster did not assemble"}));
  EXPECT_EQ(e.what, kind::lost);
  EXPECT_EQ(e.why.code(), errc::peer_lost);
  EXPECT_EQ(e.why.message(), "the cluster did not assemble");

  net::message garbled;
  garbled.type = static_cast<std::uint8_t>(wire::msg::node_lost);
  garbled.meta = {0xff};
  e = read_scheduler_message("server", garbled);
  EXPECT_EQ(e.what, kind::lost);
  EXPECT_EQ(e.why.code(), errc::peer_lost);
  EXPECT_EQ(e.why.message().rfind("the scheduler reported a lost node, in a message that could "
                                  "not be decoded: ",
                                  0),
            0u)
      << e.why.message();
}

TEST(SchedulerLink, AWorkerTakesRepliesToItsControlIds) {
  auto e =
      read_scheduler_message("worker", message_of(wire::msg::reply, wire::reply_meta{0, ""}, 7));
  EXPECT_EQ(e.what, kind::reply);
  EXPECT_EQ(e.id, 7u);
  EXPECT_TRUE(e.why.is_ok());

  // The scheduler answers a barrier with the loss that broke the cluster.
  const std::string lost = "lost server 0 (reported by the scheduler): no heartbeat for 3 s";
  e = read_scheduler_message(
      "worker", message_of(wire::msg::reply,
                           wire::reply_meta{static_cast<std::uint8_t>(errc::peer_lost), lost}, 9));
  EXPECT_EQ(e.what, kind::reply);
  EXPECT_EQ(e.id, 9u);
  EXPECT_EQ(e.why.code(), errc::peer_lost);
  EXPECT_EQ(e.why.message(), lost);
}

TEST(SchedulerLink, AnythingElseIsAProtocolErrorNamingItsType) {
  // A server asks the scheduler nothing: a reply is as unexpected as a push.
  auto e =
      read_scheduler_message("server", message_of(wire::msg::reply, wire::reply_meta{0, ""}, 7));
  EXPECT_EQ(e.what, kind::unexpected);
  EXPECT_EQ(e.why.code(), errc::protocol_error);
  EXPECT_EQ(e.why.message(), "unexpected message from the scheduler: type 26 (reply)");

  for (const char* role : {"worker", "server"}) {
    e = read_scheduler_message(role, message_of(wire::msg::barrier, wire::barrier_meta{1}));
    EXPECT_EQ(e.what, kind::unexpected) << role;
    EXPECT_EQ(e.why.code(), errc::protocol_error);
    EXPECT_EQ(e.why.message(), "unexpected message from the scheduler: type 18 (barrier)");

    net::message unknown;
    unknown.type = 99;
    e = read_scheduler_message(role, unknown);
    EXPECT_EQ(e.what, kind::unexpected) << role;
    EXPECT_EQ(e.why.message(), "unexpected message from the scheduler: type 99 (unknown)");
  }
}

TEST(SchedulerLink, LosingTheSchedulerAndLeavingBroken) {
  auto s = scheduler_lost_status(status{});
  EXPECT_EQ(s.code(), errc::peer_lost);
  EXPECT_EQ(s.message(), "lost the scheduler: closed by the peer (it shut down)");

  s = scheduler_lost_status(status{errc::timeout, "no heartbeat for 3 s"});
  EXPECT_EQ(s.code(), errc::peer_lost);
  EXPECT_EQ(s.message(), "lost the scheduler: no heartbeat for 3 s");

  // A broken node's parting word, passed on by whoever hears it.
  const status parting =
      stopped_status(status{errc::peer_lost, "lost worker 1 (reported by the scheduler): gone"});
  EXPECT_EQ(parting.code(), errc::peer_lost);
  EXPECT_EQ(parting.message(), "it stopped: lost worker 1 (reported by the scheduler): gone");
  s = scheduler_lost_status(
      status{errc::peer_lost, "peer closed the connection: " + parting.message()});
  EXPECT_EQ(s.message(),
            "lost the scheduler: it stopped: lost worker 1 (reported by the scheduler): gone");
}

}  // namespace
}  // namespace kvactor::detail
