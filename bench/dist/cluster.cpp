#include "cluster.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <kvactor/detail/local_port.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <map>
#include <random>

#include "proc_stats.hpp"

namespace kvbench::dist {

namespace {

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

}  // namespace

cluster::cluster(int servers, int workers, const std::string& self_exe, bool quick, bool tls,
                 const std::string& timeline, bool shm) {
  ::signal(SIGPIPE, SIG_IGN);
  std::map<std::string, std::string> env = {
      {"KVACTOR_TLS", tls ? "on" : "off"},
      {"KVACTOR_SHM", shm ? "1" : "0"},
      {"DMLC_PS_ROOT_URI", "127.0.0.1"},
      {"DMLC_PS_ROOT_PORT", std::to_string(free_port())},
      {"DMLC_NUM_SERVER", std::to_string(servers)},
      {"DMLC_NUM_WORKER", std::to_string(workers)},
      {"KVACTOR_SECRET", random_hex(64)},
      {"KVACTOR_CLUSTER_ID", "bench-" + random_hex(8)},
      {"KVACTOR_CONNECT_TIMEOUT_MS", "30000"},
  };
  if (!timeline.empty()) env["KVACTOR_TIMELINE"] = timeline;
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
cluster::~cluster() {
  for (auto& p : procs_) {
    p.proc.kill_and_reap();
    if (p.out >= 0) ::close(p.out);
    if (p.in >= 0) ::close(p.in);
  }
}

void cluster::send_all(const std::string& line) {
  for (int w = 0; w < workers_; ++w) {
    const std::string l = line + "\n";
    if (::write(worker(w).in, l.data(), l.size()) != static_cast<ssize_t>(l.size()))
      die("cannot write to " + worker(w).label);
  }
}

std::vector<std::string> cluster::collect(const std::string& tag, int limit_ms) {
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
long long cluster::servers_cpu_ns() {
  long long s = 0;
  for (int i = 0; i < servers_; ++i)
    s += proc_cpu_ns(server(i).pid);
  return s;
}
long long cluster::servers_cswitches() {
  long long s = 0;
  for (int i = 0; i < servers_; ++i)
    s += proc_cswitches(server(i).pid);
  return s;
}

bool cluster::shut_down(int limit_ms) {
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

block_times run_store_block(cluster& cl, const std::string& op, std::size_t size_index,
                            std::size_t n, std::size_t window, std::size_t warm, bool want_lat) {
  const std::string args = op + " " + std::to_string(size_index) + " ";
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

}  // namespace kvbench::dist
