#include "raw_mesh.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "proc_stats.hpp"

namespace kvbench::dist {

namespace {

void tcp_setup(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

constexpr std::size_t staging_size = 64 * KiB;

// A request header's `down` with this bit set: answer only once every client of this server
// sent its request of the round (what a dist_sync server does with pushes).
constexpr std::uint64_t round_flag = std::uint64_t{1} << 63;

}  // namespace

// The raw stand-in for a dist_sync round: a server's connection threads meet here, and the
// last one to arrive lets all of them answer.
class round_barrier {
 public:
  void set_parties(std::size_t n) { parties_ = n; }
  void arrive_and_wait() {
    std::unique_lock<std::mutex> lk(mu_);
    const std::uint64_t gen = gen_;
    if (++arrived_ == parties_) {
      arrived_ = 0;
      ++gen_;
      cv_.notify_all();
      return;
    }
    cv_.wait(lk, [&] { return gen_ != gen; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::size_t parties_ = 1, arrived_ = 0;
  std::uint64_t gen_ = 0;
};

namespace {

// One accepted connection, served on its own thread with blocking I/O: read a 16-byte header
// {up, down} and `up` payload bytes (scatter read: the payload straight into the buffer, what
// follows into the staging buffer), answer with an 8-byte header {down} and `down` bytes
// (one gather write).
void raw_serve(int fd, char* rbuf, const char* sbuf, round_barrier* round) {
  std::vector<char> st(staging_size);
  std::size_t pos = 0, end = 0;
  for (;;) {
    while (end - pos < 16) {
      if (pos == end) {
        pos = end = 0;
      } else if (st.size() - end < 16) {
        std::memmove(st.data(), st.data() + pos, end - pos);
        end -= pos;
        pos = 0;
      }
      const ssize_t n = ::read(fd, st.data() + end, st.size() - end);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // the client closed
      end += static_cast<std::size_t>(n);
    }
    std::uint64_t h[2];
    std::memcpy(h, st.data() + pos, 16);
    pos += 16;
    const std::size_t up = h[0], down = h[1] & ~round_flag;
    std::size_t got = std::min(up, end - pos);
    std::memcpy(rbuf, st.data() + pos, got);
    pos += got;
    if (pos == end) pos = end = 0;
    while (got < up) {  // the staging buffer is empty here
      iovec iv[2] = {{rbuf + got, up - got}, {st.data() + end, st.size() - end}};
      const ssize_t n = ::readv(fd, iv, 2);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      const std::size_t take = std::min<std::size_t>(static_cast<std::size_t>(n), iv[0].iov_len);
      got += take;
      end += static_cast<std::size_t>(n) - take;
    }
    if (h[1] & round_flag) round->arrive_and_wait();
    std::uint64_t rh = down;
    std::size_t done = 0;
    const std::size_t total = 8 + down;
    while (done < total) {
      iovec ov[2];
      int cnt = 0;
      if (done < 8) ov[cnt++] = {reinterpret_cast<char*>(&rh) + done, 8 - done};
      const std::size_t poff = done > 8 ? done - 8 : 0;
      if (down > poff) ov[cnt++] = {const_cast<char*>(sbuf) + poff, down - poff};
      const ssize_t n = ::writev(fd, ov, cnt);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return;
      done += static_cast<std::size_t>(n);
    }
  }
}

}  // namespace

class raw_server {
 public:
  raw_server() {
    lfd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(lfd_, 64) != 0)
      die(std::string{"raw server: bind/listen: "} + std::strerror(errno));
    socklen_t len = sizeof a;
    ::getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~raw_server() {
    for (auto& t : threads_)
      t.join();  // each ends when its client closes
    for (int fd : fds_)
      ::close(fd);
    ::close(lfd_);
  }
  int port() const { return port_; }
  // Accepts n connections (already connected: the backlog holds them) and serves each.
  void accept_n(int n, std::size_t max_up, const char* sbuf) {
    round_.set_parties(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      pollfd p{lfd_, POLLIN, 0};
      if (::poll(&p, 1, 10000) != 1) die("raw server: no connection within 10 s");
      const int fd = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) die(std::string{"raw server: accept: "} + std::strerror(errno));
      tcp_setup(fd);
      fds_.push_back(fd);
      bufs_.push_back(std::make_unique<touched>(max_up));
      char* rbuf = bufs_.back()->p;
      threads_.emplace_back([this, fd, rbuf, sbuf] { raw_serve(fd, rbuf, sbuf, &round_); });
    }
  }

 private:
  int lfd_ = -1;
  int port_ = 0;
  round_barrier round_;
  std::vector<int> fds_;
  std::vector<std::unique_ptr<touched>> bufs_;
  std::vector<std::thread> threads_;
};

// A raw client: one non-blocking connection per raw server, driven by one poll loop.
class raw_client {
 public:
  raw_client(const std::vector<int>& ports, std::size_t max_part) : sbuf_(max_part) {
    for (int port : ports) {
      conn c;
      c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(static_cast<std::uint16_t>(port));
      if (::connect(c.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
        die(std::string{"raw client: connect: "} + std::strerror(errno));
      tcp_setup(c.fd);
      ::fcntl(c.fd, F_SETFL, ::fcntl(c.fd, F_GETFL) | O_NONBLOCK);
      c.rbuf = std::make_unique<touched>(max_part);
      c.staging.resize(staging_size);
      conns_.push_back(std::move(c));
    }
  }
  ~raw_client() {
    for (auto& c : conns_)
      ::close(c.fd);
  }

  // Runs n operations, at most `window` outstanding; an operation sends each part to its
  // server and is done when every part's answer is in. lat: per-operation round trips (ns).
  void run(const std::vector<part>& parts, op_kind o, std::size_t n, std::size_t window,
           bool rounds, std::vector<long long>* lat) {
    for (auto& c : conns_) {
      c.up = c.down = 0;
      c.involved = false;
      c.queued = c.responses = 0;
      c.out_off = 0;
    }
    std::vector<std::size_t> inv;
    for (const auto& p : parts) {
      conn& c = conns_[p.server];
      c.involved = true;
      c.up = up_bytes(o, p.bytes);
      c.down = down_bytes(o, p.bytes);
      c.hdr[0] = c.up;
      c.hdr[1] = c.down | (rounds && c.up ? round_flag : 0);
      inv.push_back(p.server);
    }
    std::vector<long long> issued_at(window);
    std::size_t issued = 0, done = 0;
    std::vector<pollfd> pfds(inv.size());
    while (done < n) {
      while (issued < n && issued - done < window) {
        for (std::size_t i : inv)
          ++conns_[i].queued;
        issued_at[issued % window] = mono_ns();
        ++issued;
      }
      for (std::size_t i : inv)
        if (conns_[i].queued) pump_write(conns_[i]);
      for (std::size_t j = 0; j < inv.size(); ++j) {
        pfds[j].fd = conns_[inv[j]].fd;
        pfds[j].events = static_cast<short>(POLLIN | (conns_[inv[j]].queued ? POLLOUT : 0));
        pfds[j].revents = 0;
      }
      int r;
      do {
        r = ::poll(pfds.data(), pfds.size(), 30000);
      } while (r < 0 && errno == EINTR);
      if (r <= 0) die("raw client: no progress within 30 s");
      for (std::size_t j = 0; j < inv.size(); ++j) {
        conn& c = conns_[inv[j]];
        if (pfds[j].revents & (POLLERR | POLLHUP)) die("raw client: connection failed");
        if (pfds[j].revents & POLLIN) pump_read(c);
        if ((pfds[j].revents & POLLOUT) && c.queued) pump_write(c);
      }
      std::size_t now_done = n;
      for (std::size_t i : inv)
        now_done = std::min(now_done, conns_[i].responses);
      if (now_done > done) {
        const long long t = mono_ns();
        for (; done < now_done; ++done)
          if (lat) lat->push_back(t - issued_at[done % window]);
      }
    }
  }

 private:
  struct conn {
    int fd = -1;
    std::unique_ptr<touched> rbuf;
    std::vector<char> staging;
    std::size_t pos = 0, end = 0;
    bool involved = false;
    std::size_t up = 0, down = 0;
    std::uint64_t hdr[2] = {0, 0};
    std::size_t queued = 0;   // requests not completely written
    std::size_t out_off = 0;  // bytes of the first queued request written
    std::size_t responses = 0;
    bool in_payload = false;
    std::size_t payload_got = 0, payload_len = 0;
  };

  // Writes as many queued requests as the socket takes (several per call when small).
  void pump_write(conn& c) {
    const std::size_t req = 16 + c.up;
    while (c.queued) {
      iovec iv[64];
      int cnt = 0;
      std::size_t off = c.out_off;
      for (std::size_t q = 0; q < c.queued && cnt + 2 <= 64; ++q) {
        if (off < 16) iv[cnt++] = {reinterpret_cast<char*>(c.hdr) + off, 16 - off};
        const std::size_t poff = off > 16 ? off - 16 : 0;
        if (c.up > poff) iv[cnt++] = {sbuf_.p + poff, c.up - poff};
        off = 0;
        if (c.up >= 64 * KiB) break;  // big requests: one at a time
      }
      const ssize_t n = ::writev(c.fd, iv, cnt);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        die(std::string{"raw client: write: "} + std::strerror(errno));
      }
      std::size_t w = static_cast<std::size_t>(n);
      while (w && c.queued) {
        const std::size_t left = req - c.out_off;
        if (w >= left) {
          w -= left;
          c.out_off = 0;
          --c.queued;
        } else {
          c.out_off += w;
          w = 0;
        }
      }
    }
  }

  // Reads answers until the socket is empty: 8-byte header, then the payload (scatter read
  // into the connection's buffer, what follows into the staging buffer).
  void pump_read(conn& c) {
    for (;;) {
      if (c.pos == c.end) c.pos = c.end = 0;
      if (c.staging.size() - c.end < 64) {
        std::memmove(c.staging.data(), c.staging.data() + c.pos, c.end - c.pos);
        c.end -= c.pos;
        c.pos = 0;
      }
      iovec iv[2];
      int cnt = 0;
      if (c.in_payload && c.pos == c.end)
        iv[cnt++] = {c.rbuf->p + c.payload_got, c.payload_len - c.payload_got};
      iv[cnt++] = {c.staging.data() + c.end, c.staging.size() - c.end};
      const ssize_t n = ::readv(c.fd, iv, cnt);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        die(std::string{"raw client: read: "} + std::strerror(errno));
      }
      if (n == 0) die("raw client: the server closed");
      std::size_t got = static_cast<std::size_t>(n);
      if (cnt == 2) {
        const std::size_t take = std::min(got, iv[0].iov_len);
        c.payload_got += take;
        got -= take;
      }
      c.end += got;
      // Parse what the staging buffer holds.
      for (;;) {
        if (c.in_payload) {
          const std::size_t take = std::min(c.end - c.pos, c.payload_len - c.payload_got);
          std::memcpy(c.rbuf->p + c.payload_got, c.staging.data() + c.pos, take);
          c.pos += take;
          c.payload_got += take;
          if (c.payload_got < c.payload_len) break;
          c.in_payload = false;
          ++c.responses;
          continue;
        }
        if (c.end - c.pos < 8) break;
        std::uint64_t len;
        std::memcpy(&len, c.staging.data() + c.pos, 8);
        c.pos += 8;
        if (len == 0) {
          ++c.responses;
        } else {
          c.in_payload = true;
          c.payload_len = len;
          c.payload_got = 0;
        }
      }
    }
  }

  touched sbuf_;
  std::vector<conn> conns_;
};

raw_mesh::raw_mesh(int servers, int clients, std::size_t max_part) : sbuf_(max_part) {
  std::vector<int> ports;
  for (int s = 0; s < servers; ++s) {
    servers_.push_back(std::make_unique<raw_server>());
    ports.push_back(servers_.back()->port());
  }
  for (int c = 0; c < clients; ++c)
    clients_.push_back(std::make_unique<raw_client>(ports, max_part));
  for (auto& s : servers_)
    s->accept_n(clients, max_part, sbuf_.p);
}
raw_mesh::~raw_mesh() {
  clients_.clear();  // closes the connections: the server threads end
  servers_.clear();
}

block_times raw_mesh::run(const std::vector<part>& parts, op_kind o, std::size_t n,
                          std::size_t window, std::size_t warm, bool want_lat, bool rounds) {
  block_times b;
  const std::size_t C = clients_.size();
  {  // warm-up, untimed
    std::vector<std::thread> ts;
    for (std::size_t c = 0; c < C; ++c)
      ts.emplace_back([&, c] { clients_[c]->run(parts, o, warm, window, rounds, nullptr); });
    for (auto& t : ts)
      t.join();
  }
  b.t0.assign(C, 0);
  b.t1.assign(C, 0);
  std::vector<std::vector<long long>> lats(C);
  std::atomic<std::size_t> arrived{0};
  const long long cpu0 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
  const long long cs0 = self_cswitches();
  {
    std::vector<std::thread> ts;
    for (std::size_t c = 0; c < C; ++c)
      ts.emplace_back([&, c] {
        // Start together, as the workers do after their barrier.
        arrived.fetch_add(1);
        while (arrived.load() < C)
          std::this_thread::yield();
        b.t0[c] = mono_ns();
        clients_[c]->run(parts, o, n, window, rounds, want_lat ? &lats[c] : nullptr);
        b.t1[c] = mono_ns();
      });
    for (auto& t : ts)
      t.join();
  }
  b.cpu_ns = cpu_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
  b.cswitches = self_cswitches() - cs0;
  for (auto& l : lats)
    b.lat.insert(b.lat.end(), l.begin(), l.end());
  b.ops_per_client = n;
  return b;
}

}  // namespace kvbench::dist
