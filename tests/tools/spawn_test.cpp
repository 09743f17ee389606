// The process module: what a spawned child gets (argv, environment, fds, directory, signals,
// process group), how failures reach the caller, that spawning from a process whose other
// threads allocate all the time never hangs (a child forked while another thread held a
// malloc lock could deadlock before exec), and the port picker for local clusters.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "kvactor/detail/local_port.hpp"
#include "kvactor/detail/spawn.hpp"

namespace kvactor::detail {
namespace {

using namespace std::chrono_literals;

// Bounds every wait; a passing test takes a small fraction of it.
constexpr auto kLimit = std::chrono::milliseconds(20000);

struct pipe_fds {
  int r = -1, w = -1;
  pipe_fds() {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) std::abort();
    r = p[0];
    w = p[1];
  }
  ~pipe_fds() {
    close_read();
    close_write();
  }
  void close_read() {
    if (r >= 0) ::close(r);
    r = -1;
  }
  void close_write() {
    if (w >= 0) ::close(w);
    w = -1;
  }
};

// Everything the other end writes until it closes (or the limit passes).
std::string read_all(int fd) {
  std::string text;
  const auto end = std::chrono::steady_clock::now() + kLimit;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      ADD_FAILURE() << "no end of output within the limit; got: " << text;
      return text;
    }
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return text;
    text.append(buf, static_cast<std::size_t>(n));
  }
}

// Runs argv with env, returns its stdout; *code gets its exit code.
std::string run(spawn_options o, int* code = nullptr) {
  pipe_fds out;
  o.stdout_fd = out.w;
  child_process c(o);
  out.close_write();
  std::string text = read_all(out.r);
  EXPECT_TRUE(c.wait_for(kLimit));
  if (code != nullptr) *code = c.exit_code();
  return text;
}

spawn_options sh(const std::string& script, std::vector<std::string> env = {}) {
  spawn_options o;
  o.argv = {"/bin/sh", "-c", script, "arg0", "one two"};
  o.env = std::move(env);
  return o;
}

TEST(spawn, passes_argv_and_exactly_the_given_environment) {
  int code = -1;
  EXPECT_EQ(run(sh("printf '%s|%s|%s' \"$0\" \"$1\" \"$#\""), &code), "arg0|one two|1");
  EXPECT_EQ(code, 0);
  spawn_options o;
  o.argv = {"/usr/bin/env"};
  o.env = {"A=1", "B=x y"};
  EXPECT_EQ(run(o, &code), "A=1\nB=x y\n");
  EXPECT_EQ(code, 0);
}

TEST(spawn, environment_with_replaces_adds_and_removes_variables) {
  ASSERT_EQ(::setenv("KVACTOR_SPAWN_TEST_KEEP", "k", 1), 0);
  ASSERT_EQ(::setenv("KVACTOR_SPAWN_TEST_SET", "old", 1), 0);
  ASSERT_EQ(::setenv("KVACTOR_SPAWN_TEST_DROP", "d", 1), 0);
  auto env = environment_with({{"KVACTOR_SPAWN_TEST_SET", "new"}, {"KVACTOR_SPAWN_TEST_NEW", "n"}},
                              {"KVACTOR_SPAWN_TEST_DROP"});
  auto count = [&](const std::string& prefix) {
    int n = 0;
    for (const auto& e : env)
      n += e.rfind(prefix, 0) == 0;
    return n;
  };
  EXPECT_EQ(count("KVACTOR_SPAWN_TEST_KEEP=k"), 1);
  EXPECT_EQ(count("KVACTOR_SPAWN_TEST_SET="), 1);
  EXPECT_EQ(count("KVACTOR_SPAWN_TEST_SET=new"), 1);
  EXPECT_EQ(count("KVACTOR_SPAWN_TEST_NEW=n"), 1);
  EXPECT_EQ(count("KVACTOR_SPAWN_TEST_DROP="), 0);
  for (const char* v :
       {"KVACTOR_SPAWN_TEST_KEEP", "KVACTOR_SPAWN_TEST_SET", "KVACTOR_SPAWN_TEST_DROP"})
    ::unsetenv(v);
}

TEST(spawn, connects_stdin_stdout_and_stderr_as_asked) {
  pipe_fds in, out, err;
  spawn_options o = sh("read line; echo \"out:$line\"; echo \"err:$line\" >&2");
  o.stdin_fd = in.r;
  o.stdout_fd = out.w;
  o.stderr_fd = err.w;
  child_process c(o);
  in.close_read();
  out.close_write();
  err.close_write();
  ASSERT_EQ(::write(in.w, "hello\n", 6), 6);
  in.close_write();
  EXPECT_EQ(read_all(out.r), "out:hello\n");
  EXPECT_EQ(read_all(err.r), "err:hello\n");
  ASSERT_TRUE(c.wait_for(kLimit));
  EXPECT_EQ(c.exit_code(), 0);
}

TEST(spawn, dev_null_gives_an_empty_stdin) {
  spawn_options o;
  o.argv = {"/bin/cat"};
  o.stdin_fd = dev_null_fd;
  int code = -1;
  EXPECT_EQ(run(o, &code), "");
  EXPECT_EQ(code, 0);
}

TEST(spawn, runs_in_the_working_directory) {
  spawn_options o = sh("pwd");
  o.working_dir = "/";
  EXPECT_EQ(run(o), "/\n");
}

TEST(spawn, searches_the_path_of_the_childs_environment) {
  spawn_options o;
  o.argv = {"sh", "-c", "echo found"};
  o.env = {"PATH=/nonexistent:/bin"};
  o.search_path = true;
  EXPECT_EQ(run(o), "found\n");

  o.env = {"PATH=/nonexistent"};
  try {
    child_process c(o);
    ADD_FAILURE() << "started sh without it in PATH";
  } catch (const spawn_error& e) {
    EXPECT_TRUE(e.exec_failed());
    EXPECT_EQ(e.code().value(), ENOENT) << e.what();
  }
}

TEST(spawn, reports_exec_failures_with_their_errno) {
  auto error_of = [](spawn_options o) {
    try {
      child_process c(o);
    } catch (const spawn_error& e) {
      return std::make_pair(e.step(), e.code().value());
    }
    return std::make_pair(std::string("started"), 0);
  };
  spawn_options o;
  o.argv = {"/nonexistent/program"};
  EXPECT_EQ(error_of(o), std::make_pair(std::string("execve"), ENOENT));

  char path[] = "/tmp/kvactor-spawn-test.XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  o.argv = {path};  // mode 0600: not executable
  EXPECT_EQ(error_of(o), std::make_pair(std::string("execve"), EACCES));
  ::unlink(path);

  o.argv = {"/bin/true"};
  o.working_dir = "/nonexistent";
  EXPECT_EQ(error_of(o), std::make_pair(std::string("chdir"), ENOENT));
}

TEST(spawn, the_child_starts_with_default_signals_and_an_empty_mask) {
  // This process ignores SIGPIPE (as the test clusters do) and blocks SIGUSR1.
  struct sigaction ign {
  }, old_pipe{};
  ign.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGPIPE, &ign, &old_pipe), 0);
  sigset_t usr1, old_mask;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &usr1, &old_mask), 0);

  spawn_options o;
  o.argv = {"/bin/grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"};
  std::string text = run(o);
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ::sigaction(SIGPIPE, &old_pipe, nullptr);
  EXPECT_EQ(text, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
}

TEST(spawn, closes_fds_that_lack_close_on_exec) {
  const int leaked = ::fcntl(1, F_DUPFD, 100);  // no FD_CLOEXEC, as a careless thread might
  ASSERT_GE(leaked, 100);
  std::string text = run(sh("ls /proc/self/fd"));
  ::close(leaked);
  EXPECT_NE(text.find("0\n1\n2\n"), std::string::npos) << text;
  EXPECT_EQ(text.find(std::to_string(leaked) + "\n"), std::string::npos) << text;
}

TEST(spawn, a_new_process_group_is_led_by_the_child) {
  pipe_fds in;
  spawn_options o;
  o.argv = {"/bin/cat"};
  o.stdin_fd = in.r;
  o.stdout_fd = dev_null_fd;
  o.new_process_group = true;
  child_process c(o);
  in.close_read();
  EXPECT_EQ(::getpgid(c.pid()), c.pid());
  EXPECT_FALSE(c.wait_for(10ms));  // cat waits for its input
  in.close_write();
  ASSERT_TRUE(c.wait_for(kLimit));
  EXPECT_EQ(c.exit_code(), 0);
}

// PR_SET_PDEATHSIG fires when the spawning thread exits, as the header warns.
TEST(spawn, die_with_parent_kills_the_child_when_the_spawning_thread_exits) {
  pipe_fds in;
  pid_t pid = -1;
  std::thread t([&] {
    spawn_options o;
    o.argv = {"/bin/cat"};
    o.stdin_fd = in.r;
    o.die_with_parent = true;
    pid = spawn(o);
  });
  t.join();
  ASSERT_GT(pid, 0);
  child_process c(pid);
  ASSERT_TRUE(c.wait_for(kLimit));
  EXPECT_EQ(c.exit_code(), 128 + SIGKILL);
}

TEST(spawn, exit_codes_follow_the_shell_rule_and_signals_have_names) {
  int code = -1;
  run(sh("exit 3"), &code);
  EXPECT_EQ(code, 3);
  run(sh("kill -TERM $$"), &code);
  EXPECT_EQ(code, 128 + SIGTERM);
  // waitid's report, as kvactor-launch reads it.
  const pid_t pid = spawn(sh("kill -KILL $$"));
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED), 0);
  EXPECT_EQ(exit_code(info), 128 + SIGKILL);
  EXPECT_EQ(signal_name(SIGKILL), "SIGKILL");
  EXPECT_EQ(signal_name(SIGSEGV), "SIGSEGV");
  EXPECT_EQ(signal_name(SIGRTMIN + 1), "signal " + std::to_string(SIGRTMIN + 1));
}

TEST(spawn, a_child_process_is_killed_and_reaped_with_its_owner) {
  pipe_fds in;
  pid_t pid;
  {
    spawn_options o;
    o.argv = {"/bin/cat"};
    o.stdin_fd = in.r;
    child_process c(o);
    pid = c.pid();
  }
  EXPECT_NE(::kill(pid, 0), 0);  // gone and reaped: no such process any more
  EXPECT_EQ(errno, ESRCH);
}

// The deadlock the spawner exists for: other threads allocate without pause while children
// are started. With allocation between fork and exec, a child could hang for ever on a malloc
// lock held by one of them at fork time.
TEST(spawn, never_hangs_while_other_threads_allocate) {
  constexpr int kRounds = 30;  // a fork costs ~50 ms under ASan
  std::atomic<bool> stop{false};
  std::vector<std::thread> churn;
  for (int i = 0; i < 3; ++i)
    churn.emplace_back([&stop] {
      std::vector<std::unique_ptr<std::string>> keep(64);
      for (std::size_t n = 0; !stop.load(std::memory_order_relaxed); ++n)
        keep[n % keep.size()] = std::make_unique<std::string>(n % 4096 + 1, 'x');
    });
  int started = 0;
  for (int i = 0; i < kRounds; ++i) {
    spawn_options o;
    o.argv = {"/bin/true"};
    o.env = environment_with({{"KVACTOR_SPAWN_TEST_ROUND", std::to_string(i)}});
    child_process c(o);
    if (!c.wait_for(kLimit)) break;
    started += c.exit_code() == 0;
  }
  stop = true;
  for (auto& t : churn)
    t.join();
  EXPECT_EQ(started, kRounds);
}

// The scheduler's port comes from outside the ephemeral range, so that no bind(0) or outgoing
// connection of another process is given it before the scheduler binds it.
TEST(local_port, is_free_and_outside_the_ephemeral_range) {
  int lo = 0, hi = 0;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> lo >> hi;
  ASSERT_GT(lo, 0);
  const int port = unused_tcp_port();
  ASSERT_GT(port, 0);
  if (lo > 10000) {
    EXPECT_TRUE(port < lo || port > hi) << port << " in " << lo << "-" << hi;
  }
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
  ::close(fd);
}

}  // namespace
}  // namespace kvactor::detail
