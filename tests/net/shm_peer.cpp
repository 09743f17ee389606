// A transport peer in a process of its own, for the shared-memory tests across processes
// (shm_process_test.cpp): listens on 127.0.0.1 (port 0), prints "PORT <n>" on stdout, and
// echoes every message, except that a message of type 21 with meta "<count> <bytes>" makes it
// send back `count` messages of type 22 of `bytes` bytes each, as fast as the transport takes
// them. It exits when its stdin closes. KVACTOR_SHM in its environment decides its side.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "echo.hpp"
#include "kvactor/net/transport.hpp"

using namespace kvactor;
using namespace kvactor::net;

int main() {
  identity id;
  id.cluster_id = "test-cluster";
  id.secret = "s3cret";
  id.role = "server";
  id.rank = 0;
  caps c;
  handlers h;
  h.on_message = [](const connection_ptr& conn, message&& m) {
    if (m.type == 21) {
      std::istringstream in(std::string(m.meta.begin(), m.meta.end()));
      std::size_t count = 0, size = 0;
      in >> count >> size;
      auto data = std::make_shared<std::vector<std::uint8_t>>(size, std::uint8_t{0x42});
      for (std::size_t i = 0; i < count; ++i) {
        outgoing o;
        o.type = 22;
        o.id = i;
        o.payload = data->data();
        o.payload_size = data->size();
        o.keepalive = data;
        conn->send(std::move(o));
      }
      return;
    }
    conn->send(echo_of(std::move(m)));
  };
  runtime rt(2);
  auto l = rt.listen("127.0.0.1", 0, id, c, h);
  if (!l) {
    std::fprintf(stderr, "shm_peer: %s\n", l.error().to_string().c_str());
    return 1;
  }
  std::printf("PORT %u\n", static_cast<unsigned>((*l)->port()));
  std::fflush(stdout);
  char buf[256];
  while (::read(0, buf, sizeof buf) > 0) {
  }
  return 0;
}
