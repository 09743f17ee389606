#include "kvactor/detail/local_port.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <fstream>
#include <random>
#include <utility>
#include <vector>

namespace kvactor::detail {

namespace {

// Below this, ports belong to well-known and registered services more often.
constexpr int kLowest = 10000;

// Binds the port (0: any) and returns the port bound, or -1.
int try_bind(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  // Every address: the scheduler listens on all of them, so a port bound on any one is taken.
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  socklen_t len = sizeof a;
  int bound = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    bound = ntohs(a.sin_port);
  int err = errno;
  ::close(fd);
  errno = err;
  return bound;
}

}  // namespace

int unused_tcp_port() {
  int lo = 32768, hi = 60999;  // Linux's default, should /proc not say
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> lo >> hi;
  std::vector<std::pair<int, int>> gaps;  // inclusive ranges outside the ephemeral one
  if (lo - 1 >= kLowest) gaps.emplace_back(kLowest, lo - 1);
  if (hi + 1 <= 65535) gaps.emplace_back(std::max(hi + 1, kLowest), 65535);
  long total = 0;
  for (auto [a, b] : gaps)
    total += b - a + 1;
  if (total > 0) {
    std::random_device rd;
    std::mt19937 gen(rd());
    std::uniform_int_distribution<long> pick(0, total - 1);
    for (int attempt = 0; attempt < 200; ++attempt) {
      long i = pick(gen);
      int port = 0;
      for (auto [a, b] : gaps) {
        if (i < b - a + 1) {
          port = a + static_cast<int>(i);
          break;
        }
        i -= b - a + 1;
      }
      if (try_bind(port) == port) return port;
    }
  }
  return try_bind(0);
}

}  // namespace kvactor::detail
