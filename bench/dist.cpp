// bench_dist: a real dist_sync cluster on loopback (scheduler and servers: kvactor-server;
// workers: this program, re-executed) against raw TCP doing the same message pattern over
// the same connections, measured by the same program in the same run, interleaved
// (raw, store, raw, store, ...).
//
//   bench_dist [--quick] [--tls] [--topology 1x1|2x2] [--filter TEXT] [--blocks N]
//
// --quick: 4 B, 1 MiB, 16 MiB, 2 blocks, 3 memory rounds (a few seconds). --topology runs one
// topology; --filter runs only the timing cases whose name contains TEXT (and skips the memory
// figures); --blocks overrides the number of interleaved blocks per case (for profiling).
// --tls: the cost of TLS instead. Two clusters run side by side, one with KVACTOR_TLS=on and
// one with it off, and each block pair is (plaintext store, TLS store): the figures are named
// "SxW tls OP SIZE ..." with the TLS store's value and the plaintext store's as limit (target
// 0.7 from 1 MiB up for throughput); no raw TCP, no memory figures.
//
// Topologies: 1 server x 1 worker ("1x1") and 2 servers x 2 workers ("2x2"). Operations:
// push, pull, pushpull of one float32 key per size (4 B, 4 KiB, 1 MiB, 16 MiB, 64 MiB; the
// keys are separate). A key of at least KVACTOR_BIGARRAY_BOUND elements (default 1e6, so
// 16 MiB and 64 MiB) is split into one part per server; a smaller one lives whole on server
// hash(key) mod S. Without an updater a dist_sync round replaces the value with the sum of the
// workers' pushes (values are zeros, so nothing overflows).
//
// Figures (one JSON line each, see bench_common.hpp); bytes are payload bytes on the wire per
// operation and worker: push n (up), pull n (down), pushpull 2n (n up, n down):
//   "SxW OP SIZE throughput" (W = 1), "2x2 OP SIZE throughput per_worker" and
//   "... throughput aggregate": value = B/s of a stream of operations with a window of
//       `window` outstanding (2 from 1 MiB up, 8 below); per_worker = the workers' mean rate
//       in a block, aggregate = all workers' bytes / (last end - first start). limit = the
//       same for raw TCP: each raw client has one connection per raw server, sends a 16-byte
//       request header + the part's up bytes to the part's server, which answers with an
//       8-byte header + the part's down bytes, with the same window and the same parts
//       (split and placement as the store's). Median over blocks. Target 0.8 from 1 MiB up.
//   "SxW OP SIZE rtt": value = median round trip of one operation at a time (issue, wait),
//       microseconds, lower is better; limit = raw TCP ping-pong of the same parts. Target
//       2.0 for pushpull up to 4 KiB ("small pushpull latency <= 2 x raw round trip").
//   Extra keys: op_us / limit_op_us (median time per operation of one worker / raw client),
//       cpu_us_per_op (CPU of the workers and servers over the timed parts / operations; from
//       CLOCK_PROCESS_CPUTIME_ID and /proc/<pid>/task/*/schedstat) and limit_cpu_us_per_op (raw
//       client and server threads), cpu_cores (that CPU / wall time), cswitch_per_op and
//       limit_cswitch_per_op (voluntary + involuntary context switches per operation: every
//       thread hand-off costs one), paired_ratio (+ _min, _max): the median over blocks of
//       the ratio of each (raw, store) block pair, which ran back to back — a second estimate,
//       less sensitive to load that drifts during a case — p99_us, window, ops_per_block,
//       blocks, parts.
//   "SxW server I mem_peak": that server process's VmHWM / the bytes it stores (its parts of
//       all keys), after the memory phase (R rounds of push, pull, pushpull of every key, one
//       call at a time); limit 2.5, lower is better. Extras: peak and stored bytes, the RSS
//       the server had before any key existed, and (peak - that) / stored.
//   "SxW server I rss_growth": (RSS after round R - RSS after round 1) / (R - 1), bytes per
//       round; should be 0 (flat).
//   "SxW server I mem_peak whole_run": VmHWM at the end, after every timing case (windows of
//       2-8 operations in flight hold more buffers), / stored bytes; limit 2.5.
//
// Process model. Run without --worker, the program is the driver: per topology it creates the
// raw mesh (threads of this process: one poll loop per raw client, one blocking thread per
// raw server connection, all buffers pooled and touched beforehand), then starts the
// scheduler and servers (KVACTOR_SERVER, compiled in) and W workers (this program with
// --worker), talks to the workers through their stdin/stdout (one command / one answer line
// each) and reads the servers' /proc/<pid>/{status,task/*/schedstat}. Every store block is a
// "warm" command (the block's window of operations, untimed: buffers get allocated and
// touched there) and a "run" command (a barrier, then the timed operations); every raw block
// likewise. Each worker times itself on CLOCK_MONOTONIC, the clock every process shares.
// Every wait has a deadline; children die with the driver (PR_SET_PDEATHSIG).
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <kvactor/buffer_pool.hpp>
#include <kvactor/detail/local_port.hpp>
#include <kvactor/detail/spawn.hpp>
#include <kvactor/key.hpp>
#include <kvactor/kvstore.hpp>
#include <kvactor/thread_pool.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"

#ifndef KVACTOR_SERVER
#error "KVACTOR_SERVER must name the kvactor-server program (bench/CMakeLists.txt sets it)"
#endif

namespace {

using namespace kvbench;

constexpr std::size_t KiB = 1024, MiB = 1024 * 1024;

long long mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

long long cpu_ns(clockid_t c) {
  timespec ts;
  clock_gettime(c, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

// Context switches (voluntary + involuntary) of every live thread of pid.
long long proc_cswitches(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  long long sum = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream f(dir + "/" + e->d_name + "/status");
      std::string line;
      while (std::getline(f, line))
        if (line.find("ctxt_switches:") != std::string::npos)
          sum += std::strtoll(line.c_str() + line.find(':') + 1, nullptr, 10);
    }
    ::closedir(d);
  }
  return sum;
}

long long self_cswitches() {
  rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_nvcsw + ru.ru_nivcsw;
}

[[noreturn]] void die(const std::string& what) {
  std::cerr << "bench_dist: " << what << "\n";
  std::exit(1);
}

// ------------------------------------------------------------------ configuration

enum class op_kind { push, pull, pushpull };
const op_kind all_ops[] = {op_kind::push, op_kind::pull, op_kind::pushpull};

const char* op_name(op_kind o) {
  switch (o) {
    case op_kind::push:
      return "push";
    case op_kind::pull:
      return "pull";
    default:
      return "pushpull";
  }
}
op_kind parse_op(const std::string& s) {
  if (s == "push") return op_kind::push;
  if (s == "pull") return op_kind::pull;
  if (s == "pushpull") return op_kind::pushpull;
  die("unknown operation " + s);
}
std::size_t up_bytes(op_kind o, std::size_t n) {
  return o == op_kind::pull ? 0 : n;
}
std::size_t down_bytes(op_kind o, std::size_t n) {
  return o == op_kind::push ? 0 : n;
}

struct bench_config {
  bool quick = false;
  std::vector<std::size_t> sizes;
  std::vector<std::pair<int, int>> topologies;  // (servers, workers)
  int blocks = 5;
  std::size_t tput_block_bytes = 0;  // wire bytes per worker per throughput block
  std::size_t rtt_block_bytes = 0;
  std::size_t max_ops_tput = 0, max_ops_rtt = 0;
  std::size_t min_ops = 3;
  int mem_rounds = 20;
  std::string filter;    // --filter: only cases whose name contains it (no memory figures)
  std::string topology;  // --topology: only this one ("1x1" or "2x2")
  bool tls = false;      // --tls: TLS store against plaintext store
};

bench_config make_config(bool quick) {
  bench_config c;
  c.quick = quick;
  c.topologies = {{1, 1}, {2, 2}};
  if (quick) {
    c.sizes = {4, 1 * MiB, 16 * MiB};
    c.blocks = 2;
    c.tput_block_bytes = 24 * MiB;
    c.rtt_block_bytes = 12 * MiB;
    c.max_ops_tput = 300;
    c.max_ops_rtt = 100;
    c.min_ops = 2;
    c.mem_rounds = 3;
  } else {
    c.sizes = {4, 4 * KiB, 1 * MiB, 16 * MiB, 64 * MiB};
    c.blocks = 9;
    c.tput_block_bytes = 64 * MiB;
    c.rtt_block_bytes = 48 * MiB;
    c.max_ops_tput = 1000;
    c.max_ops_rtt = 200;
    c.min_ops = 2;
    c.mem_rounds = 20;
  }
  return c;
}

std::int64_t key_of(std::size_t size_index) {
  return 100 + static_cast<std::int64_t>(size_index);
}

std::size_t window_for(std::size_t bytes) {
  return bytes >= 1 * MiB ? 2 : 8;
}

std::uint64_t big_array_bound() {
  for (const char* name : {"KVACTOR_BIGARRAY_BOUND", "MXNET_KVSTORE_BIGARRAY_BOUND"})
    if (const char* v = std::getenv(name)) return std::strtoull(v, nullptr, 10);
  return 1000000;
}

// One part of a key: the server that holds it and its bytes. The worker's rule
// (actors/src/dist/part_plan.cpp, plan_parts): split over all servers from the big-array bound,
// else whole on hash(key) mod S.
struct part {
  std::uint32_t server;
  std::size_t bytes;
};
std::vector<part> plan_parts(std::int64_t k, std::size_t bytes, std::uint32_t servers) {
  const std::size_t n = bytes / sizeof(float);
  std::vector<part> parts;
  if (n >= big_array_bound() && servers > 1) {
    for (std::uint32_t s = 0; s < servers; ++s) {
      std::size_t b, e;
      kvactor::split_range(n, servers, s, b, e);
      parts.push_back(part{s, (e - b) * sizeof(float)});
    }
  } else {
    parts.push_back(part{static_cast<std::uint32_t>(kvactor::key(k).hash() % servers), bytes});
  }
  return parts;
}

// ------------------------------------------------------------------ raw TCP mesh

struct touched {
  std::shared_ptr<kvactor::buffer> buf;
  char* p = nullptr;
  explicit touched(std::size_t n)
      : buf(kvactor::buffer_pool::global().acquire(std::max<std::size_t>(n, 64))) {
    p = static_cast<char*>(buf->data());
    std::memset(p, 1, std::max<std::size_t>(n, 64));
  }
};

void tcp_setup(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

constexpr std::size_t staging_size = 64 * KiB;

// One accepted connection, served on its own thread with blocking I/O: read a 16-byte header
// {up, down} and `up` payload bytes (scatter read: the payload straight into the buffer, what
// follows into the staging buffer), answer with an 8-byte header {down} and `down` bytes
// (one gather write).
void raw_serve(int fd, char* rbuf, const char* sbuf) {
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
    const std::size_t up = h[0], down = h[1];
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
    for (int i = 0; i < n; ++i) {
      pollfd p{lfd_, POLLIN, 0};
      if (::poll(&p, 1, 10000) != 1) die("raw server: no connection within 10 s");
      const int fd = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) die(std::string{"raw server: accept: "} + std::strerror(errno));
      tcp_setup(fd);
      fds_.push_back(fd);
      bufs_.push_back(std::make_unique<touched>(max_up));
      char* rbuf = bufs_.back()->p;
      threads_.emplace_back([fd, rbuf, sbuf] { raw_serve(fd, rbuf, sbuf); });
    }
  }

 private:
  int lfd_ = -1;
  int port_ = 0;
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
           std::vector<long long>* lat) {
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
      c.hdr[1] = c.down;
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

struct block_times {
  std::vector<long long> t0, t1;  // per client / worker
  std::vector<long long> lat;     // ns, all clients / workers
  long long cpu_ns = 0;           // all processes / threads involved, timed part only
  long long cswitches = 0;        // context switches of the same
  std::size_t ops_per_client = 0;
};

class raw_mesh {
 public:
  raw_mesh(int servers, int clients, std::size_t max_part) : sbuf_(max_part) {
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
  ~raw_mesh() {
    clients_.clear();  // closes the connections: the server threads end
    servers_.clear();
  }

  block_times run(const std::vector<part>& parts, op_kind o, std::size_t n, std::size_t window,
                  std::size_t warm, bool want_lat) {
    block_times b;
    const std::size_t C = clients_.size();
    {  // warm-up, untimed
      std::vector<std::thread> ts;
      for (std::size_t c = 0; c < C; ++c)
        ts.emplace_back([&, c] { clients_[c]->run(parts, o, warm, window, nullptr); });
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
          clients_[c]->run(parts, o, n, window, want_lat ? &lats[c] : nullptr);
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

 private:
  touched sbuf_;
  std::vector<std::unique_ptr<raw_server>> servers_;
  std::vector<std::unique_ptr<raw_client>> clients_;
};

// ------------------------------------------------------------------ child processes

struct child {
  std::string label;
  pid_t pid = -1;
  kvactor::detail::child_process proc;  // leads its own process group
  int out = -1;                         // its stdout (workers only)
  int in = -1;                          // its stdin (workers only)
  std::string buf;
};

std::string random_hex(std::size_t n) {
  std::random_device rd;
  std::string s;
  for (std::size_t i = 0; i < n; ++i)
    s += "0123456789abcdef"[rd() % 16];
  return s;
}

// Outside the ephemeral range: no other process's bind(0) or connection takes it meanwhile.
int free_port() {
  const int port = kvactor::detail::unused_tcp_port();
  if (port <= 0) die(std::string("no free TCP port: ") + std::strerror(errno));
  return port;
}

// Starts argv with this environment plus `env`. Workers (capture) get pipes for stdin and
// stdout; everyone's stderr is ours, and so is the stdout of the others (kept off our JSON
// stdout: it goes to our stderr).
void spawn(child& c, const std::vector<std::string>& argv,
           const std::map<std::string, std::string>& env, bool capture) {
  int out[2] = {-1, -1}, in[2] = {-1, -1};
  if (capture && (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(in, O_CLOEXEC) != 0)) die("pipe failed");
  kvactor::detail::spawn_options o;
  o.argv = argv;
  o.env = kvactor::detail::environment_with(env);
  o.stdin_fd = capture ? in[0] : kvactor::detail::dev_null_fd;
  o.stdout_fd = capture ? out[1] : 2;
  o.new_process_group = true;
  o.die_with_parent = true;  // never outlive the driver
  try {
    c.proc = kvactor::detail::child_process(o);
  } catch (const kvactor::detail::spawn_error& e) {
    die(e.what());
  }
  c.pid = c.proc.pid();
  if (capture) {
    ::close(out[1]);
    ::close(in[0]);
    c.out = out[0];
    c.in = in[1];
  }
}

// The next line of c's stdout, or "" at EOF or after `limit_ms`.
std::string read_line(child& c, int limit_ms) {
  const long long deadline = mono_ns() + static_cast<long long>(limit_ms) * 1000000;
  for (;;) {
    const auto nl = c.buf.find('\n');
    if (nl != std::string::npos) {
      std::string line = c.buf.substr(0, nl);
      c.buf.erase(0, nl + 1);
      return line;
    }
    const long long left_ms = (deadline - mono_ns()) / 1000000;
    if (left_ms <= 0) return "";
    pollfd p{c.out, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left_ms));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return "";
    char tmp[4096];
    const ssize_t n = ::read(c.out, tmp, sizeof tmp);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return "";
    c.buf.append(tmp, static_cast<std::size_t>(n));
  }
}

struct proc_figures {
  std::size_t rss = 0, hwm = 0;
};
proc_figures read_mem(pid_t pid) {
  proc_figures m;
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) m.rss = std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
    if (line.rfind("VmHWM:", 0) == 0) m.hwm = std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return m;
}

// CPU time of every live thread of pid (ns), from /proc/<pid>/task/*/schedstat.
long long proc_cpu_ns(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  long long sum = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream f(dir + "/" + e->d_name + "/schedstat");
      long long ns = 0;
      if (f >> ns) sum += ns;
    }
    ::closedir(d);
  }
  return sum;
}

class cluster {
 public:
  cluster(int servers, int workers, const std::string& self_exe, bool quick, bool tls) {
    ::signal(SIGPIPE, SIG_IGN);
    std::map<std::string, std::string> env = {
        {"KVACTOR_TLS", tls ? "on" : "off"},
        {"DMLC_PS_ROOT_URI", "127.0.0.1"},
        {"DMLC_PS_ROOT_PORT", std::to_string(free_port())},
        {"DMLC_NUM_SERVER", std::to_string(servers)},
        {"DMLC_NUM_WORKER", std::to_string(workers)},
        {"KVACTOR_SECRET", random_hex(64)},
        {"KVACTOR_CLUSTER_ID", "bench-" + random_hex(8)},
        {"KVACTOR_CONNECT_TIMEOUT_MS", "30000"},
    };
    procs_.reserve(static_cast<std::size_t>(1 + servers + workers));
    auto start = [&](const std::string& label, const std::string& role,
                     const std::vector<std::string>& argv, bool capture) {
      env["DMLC_ROLE"] = role;
      procs_.emplace_back();
      procs_.back().label = label;
      spawn(procs_.back(), argv, env, capture);
    };
    start("scheduler", "scheduler", {KVACTOR_SERVER}, false);
    for (int s = 0; s < servers; ++s)
      start("server " + std::to_string(s), "server", {KVACTOR_SERVER}, false);
    std::vector<std::string> wargv = {self_exe, "--worker"};
    if (quick) wargv.push_back("--quick");
    for (int w = 0; w < workers; ++w)
      start("worker " + std::to_string(w), "worker", wargv, true);
    servers_ = servers;
    workers_ = workers;
  }
  ~cluster() {
    for (auto& p : procs_) {
      p.proc.kill_and_reap();
      if (p.out >= 0) ::close(p.out);
      if (p.in >= 0) ::close(p.in);
    }
  }
  child& server(int i) { return procs_[1 + static_cast<std::size_t>(i)]; }
  child& worker(int i) { return procs_[1 + static_cast<std::size_t>(servers_ + i)]; }
  int servers() const { return servers_; }
  int workers() const { return workers_; }

  void send_all(const std::string& line) {
    for (int w = 0; w < workers_; ++w) {
      const std::string l = line + "\n";
      if (::write(worker(w).in, l.data(), l.size()) != static_cast<ssize_t>(l.size()))
        die("cannot write to " + worker(w).label);
    }
  }
  // One line from every worker, each starting with `tag`.
  std::vector<std::string> collect(const std::string& tag, int limit_ms) {
    std::vector<std::string> lines;
    for (int w = 0; w < workers_; ++w) {
      std::string l = read_line(worker(w), limit_ms);
      if (l.rfind(tag, 0) != 0)
        die(worker(w).label + " answered \"" + l + "\" instead of " + tag +
            " (see its stderr above)");
      lines.push_back(l);
    }
    return lines;
  }
  long long servers_cpu_ns() {
    long long s = 0;
    for (int i = 0; i < servers_; ++i)
      s += proc_cpu_ns(server(i).pid);
    return s;
  }
  long long servers_cswitches() {
    long long s = 0;
    for (int i = 0; i < servers_; ++i)
      s += proc_cswitches(server(i).pid);
    return s;
  }
  // Workers finish (rank 0 stops the servers), then everyone exits.
  bool shut_down(int limit_ms) {
    send_all("quit");
    const long long deadline = mono_ns() + static_cast<long long>(limit_ms) * 1000000;
    bool ok = true;
    for (auto& p : procs_) {
      const int left = static_cast<int>(std::max<long long>(0, (deadline - mono_ns()) / 1000000));
      if (!p.proc.wait_for(std::chrono::milliseconds(left))) {
        std::cerr << "bench_dist: " << p.label << " did not exit in time; killing it\n";
        ok = false;
      } else if (p.proc.exit_code() != 0) {
        std::cerr << "bench_dist: " << p.label << " exited with status " << p.proc.exit_code()
                  << "\n";
        ok = false;
      }
    }
    return ok;
  }

 private:
  int servers_ = 0, workers_ = 0;
  std::vector<child> procs_;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string t;
  while (in >> t)
    out.push_back(t);
  return out;
}

// ------------------------------------------------------------------ the driver

block_times run_store_block(cluster& cl, op_kind o, std::size_t size_index, std::size_t n,
                            std::size_t window, std::size_t warm, bool want_lat) {
  const std::string args = std::string{op_name(o)} + " " + std::to_string(size_index) + " ";
  cl.send_all("warm " + args + std::to_string(warm) + " " + std::to_string(window));
  cl.collect("WARM", 300000);
  const long long srv0 = cl.servers_cpu_ns();
  const long long cs0 = cl.servers_cswitches();
  cl.send_all("run " + args + std::to_string(n) + " " + std::to_string(window) + " " +
              (want_lat ? "1" : "0"));
  const auto lines = cl.collect("RES", 300000);
  const long long srv1 = cl.servers_cpu_ns();
  block_times b;
  b.cpu_ns = srv1 - srv0;
  b.cswitches = cl.servers_cswitches() - cs0;
  b.ops_per_client = n;
  for (const auto& l : lines) {
    const auto t = split(l);  // RES rank t0 t1 cpu_ns cswitches lat...
    if (t.size() < 6) die("malformed worker answer: " + l);
    b.t0.push_back(std::stoll(t[2]));
    b.t1.push_back(std::stoll(t[3]));
    b.cpu_ns += std::stoll(t[4]);
    b.cswitches += std::stoll(t[5]);
    for (std::size_t i = 6; i < t.size(); ++i)
      b.lat.push_back(std::stoll(t[i]));
  }
  return b;
}

struct rates {
  double per_client = 0;  // mean of the clients' B/s
  double aggregate = 0;   // all bytes / (last end - first start)
  double op_s = 0;        // mean seconds per op of a client
};
rates block_rates(const block_times& b, std::size_t bytes_per_op) {
  rates r;
  long long first = b.t0.front(), last = b.t1.front();
  double sum = 0, op = 0;
  for (std::size_t i = 0; i < b.t0.size(); ++i) {
    const double s = double(b.t1[i] - b.t0[i]) * 1e-9;
    sum += double(b.ops_per_client * bytes_per_op) / s;
    op += s / double(b.ops_per_client);
    first = std::min(first, b.t0[i]);
    last = std::max(last, b.t1[i]);
  }
  r.per_client = sum / double(b.t0.size());
  r.op_s = op / double(b.t0.size());
  r.aggregate =
      double(b.ops_per_client * bytes_per_op * b.t0.size()) / (double(last - first) * 1e-9);
  return r;
}

struct case_stats {
  std::vector<double> per_client, aggregate, op_s;
  std::vector<double> lat_us;
  double cpu_ns = 0, wall_ns = 0, ops = 0, cswitches = 0;
  void add(const block_times& b, std::size_t bytes_per_op) {
    const rates r = block_rates(b, bytes_per_op);
    per_client.push_back(r.per_client);
    aggregate.push_back(r.aggregate);
    op_s.push_back(r.op_s);
    for (long long l : b.lat)
      lat_us.push_back(double(l) * 1e-3);
    cpu_ns += double(b.cpu_ns);
    cswitches += double(b.cswitches);
    long long first = b.t0.front(), last = b.t1.front();
    for (std::size_t i = 0; i < b.t0.size(); ++i) {
      first = std::min(first, b.t0[i]);
      last = std::max(last, b.t1[i]);
    }
    wall_ns += double(last - first);
    ops += double(b.ops_per_client * b.t0.size());
  }
  double cpu_us_per_op() const { return cpu_ns * 1e-3 / ops; }
  double cpu_cores() const { return cpu_ns / wall_ns; }
  double cswitches_per_op() const { return cswitches / ops; }
};

struct topology_run {
  const bench_config& cfg;
  int S, W;
  std::string prefix;        // "1x1"
  cluster* plain = nullptr;  // --tls: the baseline, the same store without TLS

  std::size_t ops_for(std::size_t wire, bool rtt) const {
    const std::size_t budget = rtt ? cfg.rtt_block_bytes : cfg.tput_block_bytes;
    const std::size_t maxo = rtt ? cfg.max_ops_rtt : cfg.max_ops_tput;
    return std::clamp<std::size_t>(budget / std::max<std::size_t>(wire, 1), cfg.min_ops, maxo);
  }

  void run_case(cluster& cl, raw_mesh* mesh, op_kind o, std::size_t si, bool rtt) {
    const std::size_t size = cfg.sizes[si];
    const auto parts = plan_parts(key_of(si), size, static_cast<std::uint32_t>(S));
    const std::size_t wire = up_bytes(o, size) + down_bytes(o, size);
    const std::size_t window = rtt ? 1 : window_for(size);
    const std::size_t n = ops_for(wire, rtt);
    const std::size_t warm = std::max<std::size_t>(window, 1);
    const std::string base = prefix + (plain ? " tls " : " ") + op_name(o) + " " + size_name(size);
    if (!cfg.filter.empty() &&
        (base + (rtt ? " rtt" : " throughput")).find(cfg.filter) == std::string::npos)
      return;
    case_stats raw, store;
    // Each block pair (raw, store) runs back to back; its ratio sees the same machine load.
    std::vector<double> paired, paired_agg;
    for (int b = 0; b < cfg.blocks; ++b) {
      const block_times rb = plain ? run_store_block(*plain, o, si, n, window, warm, rtt)
                                   : mesh->run(parts, o, n, window, warm, rtt);
      const block_times sb = run_store_block(cl, o, si, n, window, warm, rtt);
      raw.add(rb, wire);
      store.add(sb, wire);
      if (rtt) {
        std::vector<double> rl(rb.lat.begin(), rb.lat.end()), sl(sb.lat.begin(), sb.lat.end());
        paired.push_back(median(sl) / median(rl));
      } else {
        const rates rr = block_rates(rb, wire), sr = block_rates(sb, wire);
        paired.push_back(sr.per_client / rr.per_client);
        paired_agg.push_back(sr.aggregate / rr.aggregate);
      }
    }
    std::vector<std::pair<std::string, std::string>> common = {
        {"window", json_number(double(window))},
        {"ops_per_block", json_number(double(n))},
        {"blocks", json_number(cfg.blocks)},
        {"parts", json_number(double(parts.size()))},
        {"cpu_us_per_op", json_number(store.cpu_us_per_op())},
        {"limit_cpu_us_per_op", json_number(raw.cpu_us_per_op())},
        {"cpu_cores", json_number(store.cpu_cores())},
        {"limit_cpu_cores", json_number(raw.cpu_cores())},
        {"cswitch_per_op", json_number(store.cswitches_per_op())},
        {"limit_cswitch_per_op", json_number(raw.cswitches_per_op())},
    };
    auto with_paired = [](std::vector<std::pair<std::string, std::string>> e,
                          const std::vector<double>& p) {
      e.emplace_back("paired_ratio", json_number(median(p)));
      e.emplace_back("paired_ratio_min", json_number(*std::min_element(p.begin(), p.end())));
      e.emplace_back("paired_ratio_max", json_number(*std::max_element(p.begin(), p.end())));
      return e;
    };
    if (rtt) {
      const bool small_pp = o == op_kind::pushpull && size <= 4 * KiB && !plain;
      auto extra = common;
      extra.insert(extra.begin(), {{"p99_us", json_number(quantile(store.lat_us, 0.99))},
                                   {"limit_p99_us", json_number(quantile(raw.lat_us, 0.99))},
                                   {"samples", json_number(double(store.lat_us.size()))}});
      emit(figure{"dist", base + " rtt", median(store.lat_us), "us", median(raw.lat_us),
                  small_pp ? std::optional<double>{2.0} : std::nullopt, true,
                  with_paired(extra, paired)});
      return;
    }
    const std::optional<double> target =
        size >= 1 * MiB ? std::optional<double>{plain ? 0.7 : 0.8} : std::nullopt;
    auto extra = common;
    extra.insert(extra.begin(), {{"op_us", json_number(median(store.op_s) * 1e6)},
                                 {"limit_op_us", json_number(median(raw.op_s) * 1e6)}});
    if (W == 1) {
      emit(figure{"dist", base + " throughput", median(store.per_client), "B/s",
                  median(raw.per_client), target, false, with_paired(extra, paired)});
    } else {
      emit(figure{"dist", base + " throughput per_worker", median(store.per_client), "B/s",
                  median(raw.per_client), target, false, with_paired(extra, paired)});
      emit(figure{"dist", base + " throughput aggregate", median(store.aggregate), "B/s",
                  median(raw.aggregate), target, false, with_paired(extra, paired_agg)});
    }
  }

  void run(const std::string& self_exe) {
    const auto t_start = clock::now();
    prefix = std::to_string(S) + "x" + std::to_string(W);
    std::size_t max_part = 64;
    std::vector<std::size_t> stored(static_cast<std::size_t>(S), 0);
    for (std::size_t i = 0; i < cfg.sizes.size(); ++i)
      for (const auto& p : plan_parts(key_of(i), cfg.sizes[i], static_cast<std::uint32_t>(S))) {
        max_part = std::max(max_part, p.bytes);
        stored[p.server] += p.bytes;
      }
    std::optional<raw_mesh> mesh;
    std::optional<cluster> baseline;
    if (cfg.tls) {
      baseline.emplace(S, W, self_exe, cfg.quick, false);
      baseline->collect("JOINED", 60000);
      baseline->send_all("init");
      baseline->collect("READY", 120000);
      plain = &*baseline;
    } else {
      mesh.emplace(S, W, max_part);
    }
    cluster cl(S, W, self_exe, cfg.quick, cfg.tls);
    cl.collect("JOINED", 60000);
    std::vector<std::size_t> base_rss;
    for (int s = 0; s < S; ++s)
      base_rss.push_back(read_mem(cl.server(s).pid).rss);
    cl.send_all("init");
    cl.collect("READY", 120000);
    std::cerr << "bench_dist: " << prefix << " cluster ready after " << seconds_since(t_start)
              << " s\n";

    // Memory phase: one round, RSS; R - 1 more, RSS and the peak.
    const bool mem = cfg.filter.empty() && !cfg.tls;
    if (mem) {
      cl.send_all("mem 1");
      cl.collect("DONE", 120000);
      std::vector<std::size_t> rss1;
      for (int s = 0; s < S; ++s)
        rss1.push_back(read_mem(cl.server(s).pid).rss);
      cl.send_all("mem " + std::to_string(cfg.mem_rounds - 1));
      cl.collect("DONE", 300000);
      for (int s = 0; s < S; ++s) {
        const proc_figures m = read_mem(cl.server(s).pid);
        const std::string sn = prefix + " server " + std::to_string(s);
        emit(figure{"dist",
                    sn + " mem_peak",
                    double(m.hwm) / double(stored[s]),
                    "x stored bytes",
                    2.5,
                    std::nullopt,
                    true,
                    {{"peak_B", json_number(double(m.hwm))},
                     {"stored_B", json_number(double(stored[s]))},
                     {"rss_before_init_B", json_number(double(base_rss[s]))},
                     {"incremental_x",
                      json_number((double(m.hwm) - double(base_rss[s])) / double(stored[s]))},
                     {"rounds", json_number(cfg.mem_rounds)}}});
        emit(figure{"dist",
                    sn + " rss_growth",
                    (double(m.rss) - double(rss1[s])) / double(cfg.mem_rounds - 1),
                    "B/round",
                    std::nullopt,
                    std::nullopt,
                    true,
                    {{"rss_after_round1_B", json_number(double(rss1[s]))},
                     {"rss_after_last_round_B", json_number(double(m.rss))},
                     {"rounds", json_number(cfg.mem_rounds)}}});
      }
    }

    for (std::size_t si = 0; si < cfg.sizes.size(); ++si)
      for (op_kind o : all_ops)
        for (bool rtt : {true, false})
          run_case(cl, mesh ? &*mesh : nullptr, o, si, rtt);

    for (int s = 0; s < S && mem; ++s) {
      const proc_figures m = read_mem(cl.server(s).pid);
      emit(figure{"dist",
                  prefix + " server " + std::to_string(s) + " mem_peak whole_run",
                  double(m.hwm) / double(stored[s]),
                  "x stored bytes",
                  2.5,
                  std::nullopt,
                  true,
                  {{"peak_B", json_number(double(m.hwm))},
                   {"stored_B", json_number(double(stored[s]))},
                   {"rss_end_B", json_number(double(m.rss))},
                   {"incremental_x",
                    json_number((double(m.hwm) - double(base_rss[s])) / double(stored[s]))}}});
    }
    if (!cl.shut_down(30000)) die(prefix + ": the cluster did not shut down in order");
    if (baseline && !baseline->shut_down(30000))
      die(prefix + ": the plaintext cluster did not shut down in order");
    std::cerr << "bench_dist: " << prefix << " done after " << seconds_since(t_start) << " s\n";
  }
};

int driver_main(bool quick, bool tls, const std::string& filter, const std::string& topology,
                int blocks) {
  bench_config cfg = make_config(quick);
  cfg.tls = tls;
  cfg.filter = filter;
  cfg.topology = topology;
  if (blocks > 0) cfg.blocks = blocks;
  char path[4096];
  const ssize_t len = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (len <= 0) die("cannot find this program (/proc/self/exe)");
  const std::string self_exe(path, static_cast<std::size_t>(len));
  std::cerr << "bench_dist: " << (quick ? "quick" : "full") << " mode, "
            << std::thread::hardware_concurrency() << " hardware threads, server " << KVACTOR_SERVER
            << ", big-array bound " << big_array_bound() << " elements\n";
  const auto t_start = clock::now();
  for (const auto& [S, W] : cfg.topologies) {
    if (!cfg.topology.empty() && cfg.topology != std::to_string(S) + "x" + std::to_string(W))
      continue;
    topology_run t{cfg, S, W, ""};
    t.run(self_exe);
  }
  std::cerr << "bench_dist: " << seconds_since(t_start) << " s\n";
  return 0;
}

// ------------------------------------------------------------------ the worker

void say(const std::string& line) {
  std::fputs((line + "\n").c_str(), stdout);
  std::fflush(stdout);
}

int worker_main(bool quick) {
  const bench_config cfg = make_config(quick);
  try {
    auto kv = kvactor::create("dist_sync");
    const int rank = kv.rank();
    say("JOINED " + std::to_string(rank));
    std::vector<kvactor::key> keys;
    std::vector<kvactor::tensor> values;
    std::vector<std::vector<kvactor::tensor>> outs(cfg.sizes.size());  // per size, per slot
    for (std::size_t i = 0; i < cfg.sizes.size(); ++i) {
      keys.push_back(key_of(i));
      values.push_back(
          kvactor::tensor::zeros({static_cast<std::int64_t>(cfg.sizes[i] / sizeof(float))}));
    }
    auto slots = [&](std::size_t si, std::size_t n) -> std::vector<kvactor::tensor>& {
      while (outs[si].size() < n)
        outs[si].push_back(kvactor::tensor::zeros(values[si].shape()));
      return outs[si];
    };
    auto issue = [&](op_kind o, std::size_t si, const kvactor::tensor& out) {
      switch (o) {
        case op_kind::push:
          return kv.push(keys[si], values[si]);
        case op_kind::pull:
          return kv.pull(keys[si], out);
        default:
          return kv.pushpull(keys[si], values[si], out);
      }
    };
    auto run_ops = [&](op_kind o, std::size_t si, std::size_t n, std::size_t window,
                       std::vector<long long>* lat) {
      auto& out = slots(si, window);
      std::vector<kvactor::future<void>> fl(window);
      for (std::size_t i = 0; i < n; ++i) {
        const std::size_t slot = i % window;
        if (fl[slot].valid()) fl[slot].get();
        const long long t = lat ? mono_ns() : 0;
        fl[slot] = issue(o, si, out[slot]);
        if (lat) {
          fl[slot].get();
          lat->push_back(mono_ns() - t);
        }
      }
      for (auto& f : fl)
        if (f.valid()) f.get();
    };

    std::string line;
    while (std::getline(std::cin, line)) {
      const auto t = split(line);
      if (t.empty()) continue;
      if (t[0] == "init") {
        kv.init(keys, values).get();
        kv.barrier().get();
        for (std::size_t i = 0; i < cfg.sizes.size(); ++i)
          slots(i, 1);
        say("READY");
      } else if (t[0] == "mem" && t.size() == 2) {
        const int rounds = std::stoi(t[1]);
        std::vector<kvactor::tensor> out0;
        for (std::size_t i = 0; i < cfg.sizes.size(); ++i)
          out0.push_back(slots(i, 1)[0]);
        for (int r = 0; r < rounds; ++r) {
          auto p = kv.push(keys, values);
          kv.pull(keys, out0).get();
          kv.pushpull(keys, values, out0).get();
          p.get();
        }
        say("DONE");
      } else if ((t[0] == "warm" && t.size() == 5) || (t[0] == "run" && t.size() == 6)) {
        const op_kind o = parse_op(t[1]);
        const std::size_t si = std::stoul(t[2]), n = std::stoul(t[3]), window = std::stoul(t[4]);
        if (si >= cfg.sizes.size() || window == 0) die("bad command: " + line);
        if (t[0] == "warm") {
          run_ops(o, si, n, window, nullptr);
          say("WARM");
          continue;
        }
        const bool want_lat = t[5] == "1";
        std::vector<long long> lat;
        lat.reserve(want_lat ? n : 0);
        kv.barrier().get();
        const long long c0 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
        const long long s0 = self_cswitches();
        const long long t0 = mono_ns();
        run_ops(o, si, n, window, want_lat ? &lat : nullptr);
        const long long t1 = mono_ns();
        const long long c1 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
        const long long s1 = self_cswitches();
        std::string res = "RES " + std::to_string(rank) + " " + std::to_string(t0) + " " +
                          std::to_string(t1) + " " + std::to_string(c1 - c0) + " " +
                          std::to_string(s1 - s0);
        for (long long l : lat)
          res += " " + std::to_string(l);
        say(res);
      } else if (t[0] == "quit") {
        break;
      } else {
        die("worker: unknown command: " + line);
      }
    }
  } catch (const kvactor::error& e) {
    die(std::string{"worker: kvactor::error: "} + e.what());
  }
  return 0;  // the store is gone: rank 0 has stopped the servers
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, worker = false, tls = false;
  std::string filter, topology;
  int blocks = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--tls") {
      tls = true;
    } else if (a == "--worker") {
      worker = true;
    } else if (a == "--filter" && i + 1 < argc) {
      filter = argv[++i];
    } else if (a == "--topology" && i + 1 < argc) {
      topology = argv[++i];
    } else if (a == "--blocks" && i + 1 < argc) {
      blocks = std::atoi(argv[++i]);
    } else {
      std::cerr
          << "usage: bench_dist [--quick] [--tls] [--topology 1x1|2x2] [--filter TEXT] [--blocks "
             "N]\n";
      return 2;
    }
  }
  return worker ? worker_main(quick) : driver_main(quick, tls, filter, topology, blocks);
}
