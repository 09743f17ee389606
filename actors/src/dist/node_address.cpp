#include "node_address.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>

namespace kvactor::detail {

namespace {

// A socket closed when it goes out of scope.
struct socket_fd {
  int fd;
  explicit socket_fd(int family) : fd(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {}
  ~socket_fd() {
    if (fd >= 0) ::close(fd);
  }
  socket_fd(const socket_fd&) = delete;
  socket_fd& operator=(const socket_fd&) = delete;
};

std::string text_of(const sockaddr* a) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (a->sa_family == AF_INET)
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(a)->sin_addr, buf, sizeof buf);
  else if (a->sa_family == AF_INET6)
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(a)->sin6_addr, buf, sizeof buf);
  return buf;
}

bool is_loopback(const sockaddr* a) {
  if (a->sa_family == AF_INET)
    return (ntohl(reinterpret_cast<const sockaddr_in*>(a)->sin_addr.s_addr) >> 24) == 127;
  if (a->sa_family == AF_INET6) {
    const auto* in6 = &reinterpret_cast<const sockaddr_in6*>(a)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(in6)) return true;
    return IN6_IS_ADDR_V4MAPPED(in6) && in6->s6_addr[12] == 127;
  }
  return false;
}

}  // namespace

bool is_loopback_name(const std::string& host) {
  if (host == "localhost") return true;
  sockaddr_in a4{};
  if (::inet_pton(AF_INET, host.c_str(), &a4.sin_addr) == 1) {
    a4.sin_family = AF_INET;
    return is_loopback(reinterpret_cast<const sockaddr*>(&a4));
  }
  sockaddr_in6 a6{};
  if (::inet_pton(AF_INET6, host.c_str(), &a6.sin6_addr) == 1) {
    a6.sin6_family = AF_INET6;
    return is_loopback(reinterpret_cast<const sockaddr*>(&a6));
  }
  return false;
}

namespace {

// Whether the address is one of this host's (binding it, on an unused port, succeeds).
bool is_local(const addrinfo* ai) {
  socket_fd s(ai->ai_family);
  if (s.fd < 0) return false;
  sockaddr_storage a{};
  std::memcpy(&a, ai->ai_addr, ai->ai_addrlen);
  if (a.ss_family == AF_INET) reinterpret_cast<sockaddr_in*>(&a)->sin_port = 0;
  if (a.ss_family == AF_INET6) reinterpret_cast<sockaddr_in6*>(&a)->sin6_port = 0;
  return ::bind(s.fd, reinterpret_cast<const sockaddr*>(&a), ai->ai_addrlen) == 0;
}

// The local address the kernel would send from to reach the address (a UDP connect sends
// nothing); empty when there is no route.
std::string route_source(const addrinfo* ai) {
  socket_fd s(ai->ai_family);
  if (s.fd < 0 || ::connect(s.fd, ai->ai_addr, ai->ai_addrlen) != 0) return {};
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  if (::getsockname(s.fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) return {};
  return text_of(reinterpret_cast<const sockaddr*>(&local));
}

}  // namespace

bool is_wildcard_address(const std::string& host) {
  return host == "0.0.0.0" || host == "::" || host == "[::]";
}

result<listen_address> scheduler_address(const cluster_config& cfg) {
  if (!cfg.node_host.empty()) return listen_address{cfg.node_host, cfg.node_host, {}};
  const std::string root = "DMLC_PS_ROOT_URI=" + cfg.root_host;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(cfg.root_port);
  if (int rc = ::getaddrinfo(cfg.root_host.c_str(), port.c_str(), &hints, &found); rc != 0)
    return status{errc::invalid_argument, "the scheduler cannot tell where to listen: " + root +
                                              " does not resolve here (" + ::gai_strerror(rc) +
                                              "); set KVACTOR_NODE_HOST to this host's address"};
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> all(found, &::freeaddrinfo);
  for (const addrinfo* ai = found; ai; ai = ai->ai_next) {
    if (!is_local(ai)) continue;
    const std::string here = text_of(ai->ai_addr);
    // Debian and others map the host's own name to 127.0.1.1: other hosts know this one by
    // another address, which only every interface is sure to cover.
    if (is_loopback(ai->ai_addr) && !is_loopback_name(cfg.root_host))
      return listen_address{"0.0.0.0", here,
                            root + " resolves to " + here +
                                ", a loopback address, on this host: listening on every "
                                "interface so that other hosts reach it (set "
                                "DMLC_PS_ROOT_URI to this host's address or KVACTOR_NODE_HOST "
                                "to choose one)"};
    return listen_address{here, here, {}};
  }
  // Not an address of this host (a NAT or a virtual service address in front of it): the
  // interface traffic to it leaves by.
  for (const addrinfo* ai = found; ai; ai = ai->ai_next)
    if (auto src = route_source(ai); !src.empty()) return listen_address{src, src, {}};
  return status{errc::invalid_argument, "the scheduler cannot tell where to listen: " + root +
                                            " is no address of this host and no route leads "
                                            "to it; set KVACTOR_NODE_HOST to this host's address"};
}

listen_address server_address(const cluster_config& cfg, const std::string& routed_host) {
  if (cfg.node_host.empty()) return {routed_host, routed_host, {}};
  if (is_wildcard_address(cfg.node_host)) return {cfg.node_host, routed_host, {}};
  return {cfg.node_host, cfg.node_host, {}};
}

}  // namespace kvactor::detail
