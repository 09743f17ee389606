// Starting child processes safely from a multi-threaded program: the one spawner of the
// tests, the benchmarks and kvactor-launch. Linux only (pidfd, PR_SET_PDEATHSIG, close_range).
//
// Why not a plain fork/exec: after fork only the calling thread exists in the child, and any
// lock another thread held at that moment (malloc's, the environment's, a sanitizer's) stays
// locked for ever. spawn() therefore prepares everything the child needs (argv and envp
// arrays, the candidate paths of a PATH search, the fds) before fork, and the child makes
// only async-signal-safe system calls until execve.
//
// Thread-safety: spawn(), environment_with(), exit_code() and signal_name() may be called
// from any thread at the same time (environment_with reads `environ`: not while another
// thread calls setenv). A child_process is not synchronised: one owner at a time.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <system_error>
#include <vector>

namespace kvactor::detail {

/// Values of spawn_options' stdin_fd, stdout_fd and stderr_fd besides a real fd.
inline constexpr int inherit_fd = -1;   ///< the child gets this process's fd 0, 1 or 2
inline constexpr int dev_null_fd = -2;  ///< /dev/null (read-only for stdin, else write-only)

struct spawn_options {
  /// argv[0] is the program: a path, or (with search_path and no '/' in it) a name looked up
  /// in the PATH of `env` (default "/bin:/usr/bin"), like execvp but without its fallback of
  /// running a file that is not an executable format through /bin/sh.
  std::vector<std::string> argv;
  /// The child's complete environment, "NAME=VALUE" each; see environment_with().
  std::vector<std::string> env;
  bool search_path = false;
  /// A real fd (dup2'ed onto 0, 1 or 2; the same fd may serve several), inherit_fd or
  /// dev_null_fd. The caller keeps its own fds and closes them after spawn() returns.
  int stdin_fd = inherit_fd;
  int stdout_fd = inherit_fd;
  int stderr_fd = inherit_fd;
  /// The child leads a process group of its own (pgid = pid), so that kill(-pid, sig) reaches
  /// it and its descendants, and a Ctrl-C at the terminal does not.
  bool new_process_group = false;
  /// PR_SET_PDEATHSIG = SIGKILL. The kernel sends it when the THREAD that called spawn()
  /// exits, not the process: spawn from a thread that lives as long as the children should
  /// (the main thread, usually). A child whose parent died before this took effect exits at
  /// once instead of running orphaned.
  bool die_with_parent = false;
  /// Every fd other than 0, 1 and 2 is closed in the child (close_range), also fds that
  /// other threads opened without O_CLOEXEC.
  bool close_other_fds = true;
  /// The child's working directory; empty: this process's.
  std::string working_dir;
};

/// Why spawn() failed: code() is the errno, step() what failed ("pipe", "fork", "execve",
/// "chdir", ...). exec_failed() tells "the program could not be run" (a wrong path, no
/// permission: the caller's fault or the user's) from a failure of the machinery.
class spawn_error : public std::system_error {
 public:
  spawn_error(int err, std::string step, const std::string& program);
  const std::string& step() const noexcept { return step_; }
  bool exec_failed() const noexcept { return step_ == "execve"; }

 private:
  std::string step_;
};

/// Starts the program and returns its pid once it runs, i.e. once execve succeeded; any
/// failure before that, in this process or in the child, throws spawn_error, and the failed
/// child is reaped. The child starts with default dispositions for every signal and an empty
/// signal mask, whatever this thread had. The caller reaps the returned pid (waitpid, or a
/// child_process).
///
/// spawn() waits for the child's execve through an O_CLOEXEC pipe: should another thread of
/// this process fork at the same time without exec'ing (spawn() itself always execs or
/// exits), this call waits until that other child exits.
pid_t spawn(const spawn_options& options);

/// This process's environment ("NAME=VALUE", in environ's order) without the variables named
/// in `unset` or in `overrides`, followed by `overrides` (in name order).
std::vector<std::string> environment_with(const std::map<std::string, std::string>& overrides,
                                          const std::vector<std::string>& unset = {});

/// The shell's rule: WEXITSTATUS for an exit, 128 + S for a death by signal S; -1 for a
/// status that is neither (stopped, continued).
int exit_code(int wait_status);
/// The same rule for waitid's report of an exit (si_code CLD_EXITED, CLD_KILLED, CLD_DUMPED).
int exit_code(const siginfo_t& info);

/// "SIGKILL", "SIGSEGV", ...; "signal N" for a number without a name.
std::string signal_name(int sig);

/// Owns a spawned child until it is reaped: a bounded wait through a pidfd, and on
/// destruction SIGKILL (to its process group too, when it leads one) and a blocking reap, so
/// that nothing outlives its owner unreaped. While unreaped its pid cannot be reused, so
/// signal() never hits a stranger.
class child_process {
 public:
  child_process() = default;
  /// Takes over a child of this process (from spawn()).
  explicit child_process(pid_t pid);
  /// Starts one: spawn(options), then takes it over.
  explicit child_process(const spawn_options& options);
  child_process(child_process&& other) noexcept;
  child_process& operator=(child_process&& other) noexcept;
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  ~child_process();

  pid_t pid() const noexcept { return pid_; }
  /// Readable (POLLIN) once the child has exited; -1 without a child.
  int pidfd() const noexcept { return pidfd_; }
  bool reaped() const noexcept { return reaped_; }
  /// The waitpid status once reaped.
  int wait_status() const noexcept { return status_; }
  /// exit_code(wait_status()) once reaped; -1 before, and when someone else reaped it (reap
  /// a child_process's child only through it).
  int exit_code() const noexcept;

  /// Reaps the child if it has exited; returns reaped().
  bool try_reap();
  /// Waits up to `limit` for the child to exit and reaps it; returns reaped().
  bool wait_for(std::chrono::milliseconds limit);
  /// Sends sig to the child (to its process group with `group`); nothing once reaped.
  void signal(int sig, bool group = false) const;
  /// SIGKILL (to the group, if it leads one) and a blocking reap; nothing once reaped.
  void kill_and_reap();

 private:
  void reset() noexcept;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int status_ = 0;
  bool reaped_ = false;
};

}  // namespace kvactor::detail
