// A hostile node for the multi-process tests: it holds the cluster's secret and claims worker
// rank 0 on a server while the real worker 0 is live. Attempt 1 sends a push straight away,
// attempt 2 first claims the rank with a forged token. Each must be refused: the server closes
// the connection with unauthenticated. Prints "REFUSED <errc>: <reason>" or "ACCEPTED ..." per
// attempt; exits 3 when every attempt was refused, 0 when any got through, 1 on a setup error.
// Usage: rank_thief PORT (KVACTOR_SECRET and KVACTOR_CLUSTER_ID from the environment).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "kvactor/dtype.hpp"
#include "kvactor/net/transport.hpp"
#include "kvactor/serialization/protocol.hpp"

using namespace kvactor;

namespace {

struct outcome {
  std::promise<status> p;
  std::atomic<bool> set{false};
  void put(status s) {
    if (!set.exchange(true)) p.set_value(std::move(s));
  }
};

net::outgoing push_of_key_1(std::uint64_t id) {
  static std::vector<float> value(256, 1000.0f);
  wire::data_meta meta;
  meta.key = wire::wire_key::from(key{1});
  meta.numel = value.size();
  meta.dtype = static_cast<std::uint8_t>(dtype::float32);
  net::outgoing m;
  m.type = static_cast<std::uint8_t>(wire::msg::pushpull);
  m.id = id;
  m.meta = wire::encode(meta);
  m.payload = value.data();
  m.payload_size = value.size() * sizeof(float);
  return m;
}

net::outgoing forged_claim(std::uint64_t id) {
  net::outgoing m;
  m.type = static_cast<std::uint8_t>(wire::msg::command);
  m.id = id;
  m.meta = wire::encode(wire::command_meta{static_cast<std::uint8_t>(wire::command::bind_rank),
                                           std::string(32, '\x42')});
  return m;
}

// Connects as worker 0, sends the messages, and reports what the server did: closed the
// connection (its reason), or answered ok (the claim got through).
bool refused(net::runtime& rt, std::uint16_t port, const net::identity& self,
             std::vector<net::outgoing> msgs, const char* what) {
  auto out = std::make_shared<outcome>();
  auto f = out->p.get_future();
  net::handlers h;
  h.on_message = [out](const net::connection_ptr&, net::message&& m) {
    auto r = wire::decode<wire::reply_meta>(m.meta);
    if (r && r->code == 0) out->put(status{});  // answered ok: accepted
  };
  h.on_close = [out](const net::connection_ptr&, const status& why) {
    out->put(why.is_ok() ? status{errc::internal, "closed in order"} : why);
  };
  auto connected = std::make_shared<std::promise<result<net::connection_ptr>>>();
  auto cf = connected->get_future();
  rt.connect("127.0.0.1", port, self, net::caps{}, h,
             std::chrono::steady_clock::now() + std::chrono::seconds(5),
             [connected](result<net::connection_ptr> r) { connected->set_value(std::move(r)); });
  auto conn = cf.get();
  if (!conn) {
    std::printf("SETUP %s: cannot connect: %s\n", what, conn.error().to_string().c_str());
    std::exit(1);
  }
  for (auto& m : msgs)
    (*conn)->send(std::move(m));
  if (f.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    std::printf("ACCEPTED %s: neither answered nor closed within 10 s\n", what);
    return false;
  }
  const status s = f.get();
  if (s.is_ok()) {
    std::printf("ACCEPTED %s\n", what);
    return false;
  }
  std::printf("REFUSED %s: %s\n", what, s.to_string().c_str());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const char* secret = std::getenv("KVACTOR_SECRET");
  const char* cluster = std::getenv("KVACTOR_CLUSTER_ID");
  if (argc < 2 || !secret || !cluster) {
    std::printf("SETUP usage: rank_thief PORT, with KVACTOR_SECRET and KVACTOR_CLUSTER_ID\n");
    return 1;
  }
  const auto port = static_cast<std::uint16_t>(std::atoi(argv[1]));
  net::identity self;
  self.cluster_id = cluster;
  self.secret = secret;
  self.role = "worker";
  self.rank = 0;
  net::runtime rt(1);
  std::vector<net::outgoing> push;
  push.push_back(push_of_key_1(1));
  std::vector<net::outgoing> claim;
  claim.push_back(forged_claim(1));
  claim.push_back(push_of_key_1(2));
  const bool a = refused(rt, port, self, std::move(push), "push without a rank claim");
  const bool b = refused(rt, port, self, std::move(claim), "claim with a forged token");
  return a && b ? 3 : 0;
}
