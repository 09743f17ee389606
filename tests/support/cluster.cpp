#include "cluster.hpp"

#include <signal.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <stdexcept>

namespace kvactor::testing {

namespace {

std::string random_hex(std::size_t n) {
  std::random_device rd;
  std::string s;
  const char* digits = "0123456789abcdef";
  for (std::size_t i = 0; i < n; ++i) s += digits[rd() % 16];
  return s;
}

// Starts argv with env; its stdout and stderr go to a pipe whose read end is returned in
// *out_fd, and its stdin comes from a pipe whose write end is returned in *in_fd.
pid_t spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
            int* out_fd, int* in_fd) {
  int fds[2], ins[2];
  if (::pipe2(fds, O_CLOEXEC) != 0 || ::pipe2(ins, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe failed");
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
    setpgid(0, 0);
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    dup2(ins[0], 0);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    std::perror("execv");
    _exit(127);
  }
  ::close(fds[1]);
  ::close(ins[0]);
  setpgid(pid, pid);
  *out_fd = fds[0];
  *in_fd = ins[1];
  return pid;
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
  if (!reaped) return -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::string process::output() const {
  std::lock_guard<std::mutex> g(log->mu);
  return log->text;
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
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
  for (const auto& [k, v] : extra_env) env[k] = v;
  env_ = env;
  start("scheduler", "scheduler", {server_program}, env_);
  for (int i = 0; i < servers; ++i)
    start("server " + std::to_string(i), "server", {server_program}, env_);
  std::vector<std::string> wargv = {worker_program};
  wargv.insert(wargv.end(), worker_args.begin(), worker_args.end());
  for (int i = 0; i < workers; ++i) start("worker " + std::to_string(i), "worker", wargv, env_);
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
  int fd = -1;
  p.pid = spawn(argv, env, &fd, &p.stdin_fd);
  p.pidfd = static_cast<int>(::syscall(SYS_pidfd_open, p.pid, 0));
  p.reader = std::thread(read_all, fd, p.log);
  return p;
}

process& cluster::start_extra(const std::string& label, const std::string& role,
                              const std::vector<std::string>& argv,
                              const std::map<std::string, std::string>& overrides) {
  auto env = env_;
  for (const auto& [k, v] : overrides) env[k] = v;
  return start(label, role, argv, env);
}

cluster::~cluster() {
  for (auto& p : procs_)
    if (!p.reaped) ::kill(-p.pid, SIGKILL);
  for (auto& p : procs_) {
    if (!p.reaped) reap(p, true);
    if (p.reader.joinable()) p.reader.join();
    if (p.pidfd >= 0) ::close(p.pidfd);
    if (p.stdin_fd >= 0) ::close(p.stdin_fd);
  }
}

void cluster::reap(process& p, bool block) {
  if (p.reaped) return;
  int st = 0;
  pid_t r = ::waitpid(p.pid, &st, block ? 0 : WNOHANG);
  if (r == p.pid) {
    p.status = st;
    p.reaped = true;
  }
}

bool cluster::wait(process& p, std::chrono::milliseconds limit) {
  reap(p, false);
  if (p.reaped) return true;
  // A pidfd becomes readable when its process exits: a wait with a deadline on one child.
  pollfd pfd{p.pidfd, POLLIN, 0};
  int r;
  do {
    r = ::poll(&pfd, 1, static_cast<int>(limit.count()));
  } while (r < 0 && errno == EINTR);
  if (r <= 0) return false;
  reap(p, true);
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
  if (!p.reaped) ::kill(p.pid, sig);
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
