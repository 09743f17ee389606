#include "cluster.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <random>
#include <regex>
#include <stdexcept>

#include "kvactor/detail/local_port.hpp"

namespace kvactor::testing {

namespace {

std::string random_hex(std::size_t n) {
  std::random_device rd;
  std::string s;
  const char* digits = "0123456789abcdef";
  for (std::size_t i = 0; i < n; ++i)
    s += digits[rd() % 16];
  return s;
}

void read_all(int fd, std::shared_ptr<output_log> log) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    std::lock_guard<std::mutex> g(log->mu);
    if (n <= 0) {
      log->closed = true;
      log->cv.notify_all();
      break;
    }
    log->text.append(buf, static_cast<std::size_t>(n));
    log->cv.notify_all();
  }
  ::close(fd);
}

}  // namespace

int process::exit_code() const {
  return child.exit_code();
}

std::string process::output() const {
  std::lock_guard<std::mutex> g(log->mu);
  return log->text;
}

int server_port(const process& p) {
  std::smatch m;
  const std::string out = p.output();
  if (!std::regex_search(out, m, std::regex("accepting workers on [^:]+:([0-9]+)"))) return -1;
  return std::stoi(m[1]);
}

int free_port() {
  const int port = detail::unused_tcp_port();
  if (port <= 0) throw std::runtime_error("no free TCP port");
  return port;
}

long long monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

cluster::cluster(const std::string& server_program, const std::string& worker_program,
                 std::vector<std::string> worker_args, int servers, int workers,
                 std::map<std::string, std::string> extra_env)
    : servers_(servers) {
  ::signal(SIGPIPE, SIG_IGN);  // a child that died must not take the test with it
  procs_.reserve(static_cast<std::size_t>(1 + servers + workers + 8));
  std::map<std::string, std::string> env = {
      {"DMLC_PS_ROOT_URI", "127.0.0.1"},
      {"DMLC_PS_ROOT_PORT", std::to_string(free_port())},
      {"DMLC_NUM_SERVER", std::to_string(servers)},
      {"DMLC_NUM_WORKER", std::to_string(workers)},
      {"KVACTOR_SECRET", random_hex(64)},
      {"KVACTOR_CLUSTER_ID", "test-" + random_hex(8)},
      {"KVACTOR_CONNECT_TIMEOUT_MS", "20000"},
  };
  for (const auto& [k, v] : extra_env)
    env[k] = v;
  env_ = env;
  try {
    start("scheduler", "scheduler", {server_program}, env_);
    for (int i = 0; i < servers; ++i)
      start("server " + std::to_string(i), "server", {server_program}, env_);
    std::vector<std::string> wargv = {worker_program};
    wargv.insert(wargv.end(), worker_args.begin(), worker_args.end());
    for (int i = 0; i < workers; ++i)
      start("worker " + std::to_string(i), "worker", wargv, env_);
  } catch (...) {
    stop_all();  // no destructor runs for a half-built cluster
    throw;
  }
}

process& cluster::start(const std::string& label, const std::string& role,
                        const std::vector<std::string>& argv,
                        std::map<std::string, std::string> env) {
  if (procs_.size() == procs_.capacity())
    throw std::runtime_error("cluster: no room for another process");  // references stay valid
  env["DMLC_ROLE"] = role;
  procs_.emplace_back();
  process& p = procs_.back();
  p.role = label;
  p.log = std::make_shared<output_log>();
  int out[2], in[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  if (::pipe2(in, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    throw std::runtime_error("pipe failed");
  }
  detail::spawn_options o;
  o.argv = argv;
  o.env = detail::environment_with(env);
  o.stdin_fd = in[0];
  o.stdout_fd = out[1];
  o.stderr_fd = out[1];
  o.new_process_group = true;  // ~cluster kills each process with its descendants
  o.die_with_parent = true;    // never outlive the test, even when it is killed
  try {
    p.child = detail::child_process(o);
  } catch (...) {
    for (int fd : {out[0], out[1], in[0], in[1]})
      ::close(fd);
    procs_.pop_back();
    throw;
  }
  ::close(out[1]);
  ::close(in[0]);
  p.pid = p.child.pid();
  p.stdin_fd = in[1];
  p.reader = std::thread(read_all, out[0], p.log);
  return p;
}

process& cluster::start_extra(const std::string& label, const std::string& role,
                              const std::vector<std::string>& argv,
                              const std::map<std::string, std::string>& overrides) {
  auto env = env_;
  for (const auto& [k, v] : overrides)
    env[k] = v;
  return start(label, role, argv, env);
}

cluster::~cluster() {
  stop_all();
}

void cluster::stop_all() {
  for (auto& p : procs_)
    p.child.signal(SIGKILL, true);
  for (auto& p : procs_) {
    p.child.kill_and_reap();
    if (p.reader.joinable()) p.reader.join();
    if (p.stdin_fd >= 0) ::close(p.stdin_fd);
    p.stdin_fd = -1;
  }
}

bool cluster::wait(process& p, std::chrono::milliseconds limit) {
  if (!p.child.wait_for(limit)) return false;
  // The reader thread may not have drained the pipe yet (a loaded machine): output() must hold
  // everything the process wrote before it exited.
  std::unique_lock<std::mutex> lk(p.log->mu);
  p.log->cv.wait_for(lk, std::chrono::seconds(5), [&] { return p.log->closed; });
  return true;
}

bool cluster::wait_all(std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  for (auto& p : procs_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    if (!wait(p, std::max(left, std::chrono::milliseconds(0)))) return false;
  }
  return true;
}

bool cluster::wait_for_output(process& p, const std::string& text,
                              std::chrono::milliseconds limit) {
  std::unique_lock<std::mutex> lk(p.log->mu);
  return p.log->cv.wait_for(lk, limit, [&] {
    return p.log->closed || p.log->text.find(text) != std::string::npos;
  }) && p.log->text.find(text) != std::string::npos;
}

void cluster::signal(process& p, int sig) {
  p.child.signal(sig);
}

void cluster::send_line(process& p, const std::string& line) {
  const std::string l = line + "\n";
  ssize_t n = ::write(p.stdin_fd, l.data(), l.size());
  (void)n;
}

std::string cluster::dump() const {
  std::string s;
  for (const auto& p : procs_) {
    s += "----- " + p.role + " (exit " + std::to_string(p.exit_code()) + ")\n";
    s += p.output();
  }
  return s;
}

}  // namespace kvactor::testing
