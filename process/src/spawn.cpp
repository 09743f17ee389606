#include "kvactor/detail/spawn.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <set>
#include <utility>

extern char** environ;

namespace kvactor::detail {

namespace {

// What the child reports through the exec pipe when it gives up. A step is a number, not a
// string, because the child must not touch anything that could allocate.
enum step_code : int { step_setpgid = 1, step_dup, step_chdir, step_execve };

const char* step_text(int step) {
  switch (step) {
    case step_setpgid:
      return "setpgid";
    case step_dup:
      return "dup2";
    case step_chdir:
      return "chdir";
    default:
      return "execve";
  }
}

// No waitpid status is negative: this one marks a child that someone else reaped.
constexpr int unknown_status = -1;

struct child_report {
  int step;
  int err;
};

void close_quietly(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// An fd of ours must not be 0, 1 or 2 in the child, where dup2 would overwrite it: with one
// of those closed in this process, pipe() or open() may return it.
int above_stdio(int fd) {
  if (fd < 0 || fd > 2) return fd;
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  int err = errno;
  ::close(fd);
  errno = err;
  return moved;
}

// Where argv[0] may be, in the order execvp tries them.
std::vector<std::string> candidates(const spawn_options& o) {
  const std::string& name = o.argv[0];
  if (!o.search_path || name.find('/') != std::string::npos) return {name};
  std::string path = "/bin:/usr/bin";
  for (const auto& e : o.env)
    if (e.compare(0, 5, "PATH=") == 0) path = e.substr(5);
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    std::size_t colon = path.find(':', start);
    std::string dir = path.substr(start, colon == std::string::npos ? colon : colon - start);
    out.push_back(dir.empty() ? name : dir + "/" + name);  // empty entry: the current dir
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return out;
}

[[noreturn]] void child_fail(int report_fd, int step, int err) {
  child_report r{step, err};
  [[maybe_unused]] ssize_t n = ::write(report_fd, &r, sizeof r);
  ::_exit(127);
}

// Runs in the child between fork and execve: async-signal-safe calls only, on data prepared
// before fork. `sources` are the fds for 0, 1, 2 (or inherit_fd).
[[noreturn]] void child_main(const spawn_options& o, const int sources[3], int report_fd,
                             pid_t parent, char* const* argv, char* const* envp,
                             char* const* paths) {
  if (o.new_process_group && ::setpgid(0, 0) != 0) child_fail(report_fd, step_setpgid, errno);
  if (o.die_with_parent) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    // The parent died before the line above: nobody would send the signal now.
    if (::getppid() != parent) ::_exit(127);
  }
  // Handlers of this process must not run here, and an ignored SIGPIPE or SIGINT must not be
  // passed on to the program.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig)
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);

  // First every source to a fresh fd above 2, then onto 0, 1, 2: a source that is itself 0,
  // 1 or 2 (stdout_fd = 2, say) is not overwritten before it is used.
  int moved[3];
  for (int i = 0; i < 3; ++i) {
    moved[i] = sources[i];
    if (sources[i] >= 0 && (moved[i] = ::fcntl(sources[i], F_DUPFD_CLOEXEC, 3)) < 0)
      child_fail(report_fd, step_dup, errno);
  }
  for (int i = 0; i < 3; ++i)
    if (moved[i] >= 0 && ::dup2(moved[i], i) < 0) child_fail(report_fd, step_dup, errno);

  if (!o.working_dir.empty() && ::chdir(o.working_dir.c_str()) != 0)
    child_fail(report_fd, step_chdir, errno);

  if (o.close_other_fds) {
    // Ours are O_CLOEXEC already; this catches fds other threads opened without it. Without
    // close_range (Linux < 5.9) those stay open, as they would with posix_spawn.
    if (report_fd > 3) ::syscall(SYS_close_range, 3u, static_cast<unsigned>(report_fd - 1), 0u);
    ::syscall(SYS_close_range, static_cast<unsigned>(report_fd + 1), ~0u, 0u);
  }

  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  // execvp's rules: a directory that lacks the program, or that we may not search, is
  // skipped; EACCES is reported only when no later candidate runs; other errors stop.
  int err = ENOENT;
  bool denied = false;
  for (char* const* p = paths; *p != nullptr; ++p) {
    ::execve(*p, argv, envp);
    err = errno;
    if (err == EACCES) {
      denied = true;
    } else if (err != ENOENT && err != ENOTDIR && err != ESTALE && err != ENODEV &&
               err != ETIMEDOUT) {
      break;
    }
  }
  child_fail(report_fd, step_execve, denied && (err == ENOENT || err == ENOTDIR) ? EACCES : err);
}

// Blocks every signal in this thread while alive: a handler of ours must not run in the
// child before it has reset the dispositions.
class all_signals_blocked {
 public:
  all_signals_blocked() {
    sigset_t all;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old_);
  }
  ~all_signals_blocked() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  all_signals_blocked(const all_signals_blocked&) = delete;
  all_signals_blocked& operator=(const all_signals_blocked&) = delete;

 private:
  sigset_t old_;
};

}  // namespace

spawn_error::spawn_error(int err, std::string step, const std::string& program)
    : std::system_error(err, std::generic_category(), "cannot start '" + program + "': " + step),
      step_(std::move(step)) {}

pid_t spawn(const spawn_options& o) {
  const std::string program = o.argv.empty() ? std::string() : o.argv[0];
  if (o.argv.empty() || o.argv[0].empty()) throw spawn_error(EINVAL, "argv", program);

  // Everything the child reads, built now: it may not allocate.
  std::vector<char*> argv, envp, paths;
  for (const auto& a : o.argv)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : o.env)
    envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const std::vector<std::string> candidate_paths = candidates(o);
  for (const auto& p : candidate_paths)
    paths.push_back(const_cast<char*>(p.c_str()));
  paths.push_back(nullptr);

  int sources[3] = {o.stdin_fd, o.stdout_fd, o.stderr_fd};
  int dev_null[2] = {-1, -1};  // read-only for stdin, write-only for the others
  int report[2] = {-1, -1};
  auto close_all = [&] {
    for (int* fd : {&dev_null[0], &dev_null[1], &report[0], &report[1]})
      close_quietly(*fd);
  };
  for (int i = 0; i < 3; ++i) {
    if (sources[i] != dev_null_fd) continue;
    int& fd = dev_null[i == 0 ? 0 : 1];
    if (fd < 0) fd = ::open("/dev/null", (i == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      close_all();
      throw spawn_error(err, "open /dev/null", program);
    }
    sources[i] = fd;
  }
  if (::pipe2(report, O_CLOEXEC) != 0 || (report[0] = above_stdio(report[0])) < 0 ||
      (report[1] = above_stdio(report[1])) < 0) {
    int err = errno;
    close_all();
    throw spawn_error(err, "pipe", program);
  }

  const pid_t parent = ::getpid();
  pid_t pid;
  int fork_errno = 0;
  {
    all_signals_blocked blocked;
    pid = ::fork();
    if (pid == 0) child_main(o, sources, report[1], parent, argv.data(), envp.data(), paths.data());
    fork_errno = errno;
  }
  close_quietly(report[1]);
  close_quietly(dev_null[0]);
  close_quietly(dev_null[1]);
  if (pid < 0) {
    close_all();
    throw spawn_error(fork_errno, "fork", program);
  }

  // End of file: execve succeeded and closed the pipe. A report: the child gave up.
  child_report r{};
  ssize_t n;
  do {
    n = ::read(report[0], &r, sizeof r);
  } while (n < 0 && errno == EINTR);
  close_quietly(report[0]);
  if (n == static_cast<ssize_t>(sizeof r)) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    throw spawn_error(r.err, step_text(r.step), program);
  }
  return pid;
}

std::vector<std::string> environment_with(const std::map<std::string, std::string>& overrides,
                                          const std::vector<std::string>& unset) {
  const std::set<std::string> drop(unset.begin(), unset.end());
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string kv = *e;
    std::string name = kv.substr(0, kv.find('='));
    if (drop.count(name) == 0 && overrides.count(name) == 0) env.push_back(std::move(kv));
  }
  for (const auto& [name, value] : overrides)
    env.push_back(name + "=" + value);
  return env;
}

int exit_code(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}

int exit_code(const siginfo_t& info) {
  if (info.si_code == CLD_EXITED) return info.si_status;
  if (info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED) return 128 + info.si_status;
  return -1;
}

std::string signal_name(int sig) {
  // sigabbrev_np (glibc 2.32) would do, but is not in every C library this builds with.
  static const std::pair<int, const char*> names[] = {
      {SIGHUP, "SIGHUP"},       {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"},   {SIGILL, "SIGILL"},
      {SIGTRAP, "SIGTRAP"},     {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},     {SIGFPE, "SIGFPE"},
      {SIGKILL, "SIGKILL"},     {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"},   {SIGUSR2, "SIGUSR2"},
      {SIGPIPE, "SIGPIPE"},     {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"},   {SIGCHLD, "SIGCHLD"},
      {SIGCONT, "SIGCONT"},     {SIGSTOP, "SIGSTOP"}, {SIGTSTP, "SIGTSTP"},   {SIGTTIN, "SIGTTIN"},
      {SIGTTOU, "SIGTTOU"},     {SIGURG, "SIGURG"},   {SIGXCPU, "SIGXCPU"},   {SIGXFSZ, "SIGXFSZ"},
      {SIGVTALRM, "SIGVTALRM"}, {SIGPROF, "SIGPROF"}, {SIGWINCH, "SIGWINCH"}, {SIGIO, "SIGIO"},
      {SIGSYS, "SIGSYS"}};
  for (const auto& [number, name] : names)
    if (number == sig) return name;
  return "signal " + std::to_string(sig);
}

// ------------------------------------------------------------------ child_process

child_process::child_process(pid_t pid) : pid_(pid) {
  // Without a pidfd (Linux < 5.3) wait_for() falls back to polling waitpid.
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

child_process::child_process(const spawn_options& options) : child_process(spawn(options)) {}

child_process::child_process(child_process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::exchange(other.pidfd_, -1)),
      status_(other.status_),
      reaped_(other.reaped_) {}

child_process& child_process::operator=(child_process&& other) noexcept {
  if (this != &other) {
    reset();
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::exchange(other.pidfd_, -1);
    status_ = other.status_;
    reaped_ = other.reaped_;
  }
  return *this;
}

child_process::~child_process() {
  reset();
}

void child_process::reset() noexcept {
  kill_and_reap();
  close_quietly(pidfd_);
  pid_ = -1;
}

int child_process::exit_code() const noexcept {
  return reaped_ && status_ != unknown_status ? detail::exit_code(status_) : -1;
}

bool child_process::try_reap() {
  if (pid_ < 0 || reaped_) return reaped_;
  int st = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &st, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    status_ = st;
    reaped_ = true;
  } else if (r < 0 && errno == ECHILD) {
    status_ = unknown_status;  // reaped behind our back: nothing left to wait for
    reaped_ = true;
  }
  return reaped_;
}

bool child_process::wait_for(std::chrono::milliseconds limit) {
  if (pid_ < 0 || try_reap()) return reaped_;
  const auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto left =
        std::chrono::ceil<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) return try_reap();
    if (pidfd_ >= 0) {
      pollfd p{pidfd_, POLLIN, 0};
      int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), INT_MAX)));
      if (n < 0 && errno != EINTR) return try_reap();
    } else {
      pollfd none{-1, 0, 0};
      ::poll(&none, 1, static_cast<int>(std::min<long long>(left.count(), 10)));
    }
    if (try_reap()) return true;
  }
}

void child_process::signal(int sig, bool group) const {
  // An unreaped child keeps its pid, and a pid that names a live process group is never
  // given to a new process, so neither call can reach a stranger.
  if (pid_ > 0 && !reaped_) ::kill(group ? -pid_ : pid_, sig);
}

void child_process::kill_and_reap() {
  if (pid_ <= 0 || reaped_) return;
  ::kill(-pid_, SIGKILL);  // ESRCH when it leads no group
  ::kill(pid_, SIGKILL);
  int st = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &st, 0);
  } while (r < 0 && errno == EINTR);
  status_ = r == pid_ ? st : unknown_status;
  reaped_ = true;
}

}  // namespace kvactor::detail
