// The hostile client of scripts/soak.sh: connects to the given ports over and over for
// SECONDS and misbehaves in turn: connects and leaves, sends garbage, claims a 4 GiB frame,
// sends half a header, or connects and stays silent (a few such connections held at a time,
// each until the peer drops it or a few seconds pass). Every 10 s and at the end it prints
// what it did; the peers must drop it every time and carry on.
//   usage: soak_hostile SECONDS HOST PORT [PORT...]
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

volatile std::sig_atomic_t stopped = 0;  // SIGTERM or SIGINT: stop, then say what was done

struct counts {
  long connects = 0, refused = 0, dropped_by_peer = 0, held_open = 0;
};

int connect_to(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return -1;
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && ::connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  return fd;
}

// Whether the peer closed the connection within `ms` (reading and discarding what it sends).
bool peer_closes(int fd, int ms) {
  const auto end = clock_type::now() + std::chrono::milliseconds(ms);
  char buf[4096];
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(end - clock_type::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return true;
  }
}

// A frame header (serialization/frame.hpp) announcing `total` payload bytes.
std::string header(std::uint64_t total) {
  std::string h(56, '\0');
  h[0] = 'K', h[1] = 'V', h[2] = 'A', h[3] = 'F';
  h[4] = 1;
  h[5] = 22;
  h[7] = static_cast<char>(0xC0);
  for (int i = 0; i < 8; ++i)
    h[32 + i] = static_cast<char>((total >> (8 * i)) & 0xff);
  for (int i = 0; i < 4; ++i)
    h[48 + i] = static_cast<char>(((1u << 20) >> (8 * i)) & 0xff);
  return h;
}

void say(const char* when, const counts& c) {
  std::printf(
      "soak_hostile %s: %ld connections (%ld dropped by the peer, %ld held open), %ld "
      "refused\n",
      when, c.connects, c.dropped_by_peer, c.held_open, c.refused);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: soak_hostile SECONDS HOST PORT [PORT...]\n");
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGTERM, [](int) { stopped = 1; });
  ::signal(SIGINT, [](int) { stopped = 1; });
  const auto end = clock_type::now() + std::chrono::seconds(std::atoi(argv[1]));
  const std::string host = argv[2];
  std::vector<int> ports;
  for (int i = 3; i < argc; ++i)
    ports.push_back(std::atoi(argv[i]));
  counts c;
  std::deque<std::pair<int, clock_type::time_point>> idle;  // silent connections held open
  auto last_report = clock_type::now();
  for (long n = 0; !stopped && clock_type::now() < end; ++n) {
    const int port = ports[static_cast<std::size_t>(n) % ports.size()];
    const int fd = connect_to(host, port);
    if (fd < 0) {
      ++c.refused;
    } else {
      ++c.connects;
      bool keep = false;
      switch ((n / static_cast<long>(ports.size())) % 5) {
        case 0:  // connect and leave
          break;
        case 1: {  // garbage
          const std::string junk(1000, 'x');
          (void)::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
          c.dropped_by_peer += peer_closes(fd, 3000);
          break;
        }
        case 2: {  // a valid-looking header claiming 4 GiB
          const std::string h = header(std::uint64_t{4} << 30);
          (void)::send(fd, h.data(), h.size(), MSG_NOSIGNAL);
          c.dropped_by_peer += peer_closes(fd, 3000);
          break;
        }
        case 3: {  // half a header, then gone
          const std::string h = header(100).substr(0, 30);
          (void)::send(fd, h.data(), h.size(), MSG_NOSIGNAL);
          break;
        }
        default:  // silent: held open for a while
          keep = true;
          idle.emplace_back(fd, clock_type::now());
          ++c.held_open;
      }
      if (!keep) ::close(fd);
    }
    // At most 4 silent connections, none older than 8 s (the peers drop them before).
    while (!idle.empty() &&
           (idle.size() > 4 || clock_type::now() - idle.front().second > std::chrono::seconds(8))) {
      ::close(idle.front().first);
      idle.pop_front();
    }
    if (clock_type::now() - last_report >= std::chrono::seconds(10)) {
      say("so far", c);
      last_report = clock_type::now();
    }
    ::poll(nullptr, 0, 50);  // about 20 connections a second
  }
  for (auto& [fd, t] : idle)
    ::close(fd);
  say("done", c);
  return 0;
}
