// bench_transport_tls: what TLS costs the transport alone, without the store above it. Two
// runtimes in one process (one I/O thread each) over loopback; the sender keeps `window`
// messages of SIZE bytes in flight and the receiver answers each with an empty message, so
// the figure is one direction's bytes per second. Every block pair is (plaintext, TLS) back
// to back on two connections opened side by side: value = TLS, limit = plaintext, ratio =
// TLS / plaintext (target 0.7 from 1 MiB up, as for bench_dist --tls). Also printed: the
// process's CPU seconds per MiB moved by each (both ends together).
//
//   bench_transport_tls [--quick] [--blocks N] [--size BYTES]   (--size: that size only)
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <future>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "kvactor/net/transport.hpp"

namespace {

namespace net = kvactor::net;
using kvbench::clock;

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

// One sender/receiver pair over one connection.
class link {
 public:
  link(net::runtime& a, net::runtime& b, bool tls) {
    net::identity id;
    id.cluster_id = "bench";
    id.secret = "bench-secret";
    id.role = "node";
    id.rank = 0;
    id.tls = tls;
    net::handlers server;
    server.on_message = [](const net::connection_ptr& c, net::message&& m) {
      net::outgoing ack;
      ack.type = 17;
      ack.id = m.id;
      c->send(std::move(ack));
    };
    listener_ = a.listen("127.0.0.1", 0, id, net::caps{}, server).value();
    net::handlers client;
    client.on_message = [this](const net::connection_ptr&, net::message&&) {
      std::lock_guard<std::mutex> g(mu_);
      --in_flight_;
      cv_.notify_one();
    };
    std::promise<kvactor::result<net::connection_ptr>> p;
    auto f = p.get_future();
    b.connect("127.0.0.1", listener_->port(), id, net::caps{}, client,
              clock::now() + std::chrono::seconds(10),
              [&p](kvactor::result<net::connection_ptr> r) { p.set_value(std::move(r)); });
    auto r = f.get();
    if (!r) throw std::runtime_error("connect: " + r.error().message());
    conn_ = *r;
  }

  // Sends n messages of `size` bytes with at most `window` unanswered; seconds.
  double run(const std::vector<std::uint8_t>& data, int n, int window) {
    const auto t0 = clock::now();
    for (int i = 0; i < n; ++i) {
      {
        std::unique_lock<std::mutex> g(mu_);
        cv_.wait(g, [&] { return in_flight_ < window; });
        ++in_flight_;
      }
      net::outgoing m;
      m.type = 16;
      m.id = static_cast<std::uint64_t>(i);
      m.payload = data.data();
      m.payload_size = data.size();
      conn_->send(std::move(m));
    }
    std::unique_lock<std::mutex> g(mu_);
    cv_.wait(g, [&] { return in_flight_ == 0; });
    return kvbench::seconds_since(t0);
  }

 private:
  std::shared_ptr<net::listener> listener_;
  net::connection_ptr conn_;
  std::mutex mu_;
  std::condition_variable cv_;
  int in_flight_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  int blocks = 5;
  std::size_t only_size = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--blocks" && i + 1 < argc) {
      blocks = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--size" && i + 1 < argc) {
      only_size = std::strtoull(argv[++i], nullptr, 10);
    } else {
      std::cerr << "usage: bench_transport_tls [--quick] [--blocks N] [--size BYTES]\n";
      return 2;
    }
  }
  if (quick) blocks = 1;
  net::runtime a(1), b(1);
  link plain(a, b, false), tls(a, b, true);
  const std::vector<std::size_t> sizes =
      only_size ? std::vector<std::size_t>{only_size}
      : quick   ? std::vector<std::size_t>{4096, 1 << 20}
                : std::vector<std::size_t>{4096, 64 << 10, 1 << 20, 16 << 20};
  for (const std::size_t size : sizes) {
    const std::vector<std::uint8_t> data(size, 0x5a);
    const double bytes_per_block = quick ? 16e6 : 256e6;
    const int n = std::max(8, static_cast<int>(bytes_per_block / static_cast<double>(size)));
    for (int window : {1, 4}) {
      plain.run(data, std::max(2, n / 8), window);  // warm-up: buffers, pools, caches
      tls.run(data, std::max(2, n / 8), window);
      std::vector<double> plain_s, tls_s, plain_cpu, tls_cpu, ratios;
      for (int k = 0; k < blocks; ++k) {
        double c0 = cpu_seconds();
        const double p = plain.run(data, n, window);
        double c1 = cpu_seconds();
        const double t = tls.run(data, n, window);
        double c2 = cpu_seconds();
        plain_s.push_back(p);
        tls_s.push_back(t);
        plain_cpu.push_back(c1 - c0);
        tls_cpu.push_back(c2 - c1);
        ratios.push_back(p / t);
      }
      const double mib = static_cast<double>(size) * n / (1 << 20);
      kvbench::figure f;
      f.bench = "transport_tls";
      f.case_name = "send " + kvbench::size_name(size) + " window " + std::to_string(window);
      f.value = static_cast<double>(size) * n / kvbench::median(tls_s) / 1e6;
      f.limit = static_cast<double>(size) * n / kvbench::median(plain_s) / 1e6;
      f.unit = "MB/s";
      if (size >= (1u << 20)) f.target = 0.7;
      f.extra.push_back(
          {"ratio_min", kvbench::json_number(*std::min_element(ratios.begin(), ratios.end()))});
      f.extra.push_back(
          {"ratio_max", kvbench::json_number(*std::max_element(ratios.begin(), ratios.end()))});
      f.extra.push_back(
          {"cpu_ms_per_mib_tls", kvbench::json_number(kvbench::median(tls_cpu) * 1e3 / mib)});
      f.extra.push_back(
          {"cpu_ms_per_mib_plain", kvbench::json_number(kvbench::median(plain_cpu) * 1e3 / mib)});
      kvbench::emit(f);
    }
  }
  return 0;
}
