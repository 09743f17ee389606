// Starts real kvactor clusters for tests: a scheduler and servers (kvactor-server) and worker
// processes, on loopback, each with its output captured. Every wait is bounded; whatever is
// still running when a cluster object goes away is killed.
//
// Thread-safety: one test thread drives a cluster; the reader threads it starts touch only
// their output_log, under its mutex. Processes are started with kvactor::detail::spawn, which
// is safe while those reader threads run.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kvactor/detail/spawn.hpp"

namespace kvactor::testing {

/// Output of one process, collected by a reader thread from a pipe.
struct output_log {
  std::mutex mu;
  std::condition_variable cv;
  std::string text;
  bool closed = false;
};

struct process {
  std::string role;  // "scheduler", "server 0", "worker 1"
  pid_t pid = -1;
  kvactor::detail::child_process child;  // leads its own process group
  int stdin_fd = -1;                     // write end of the process's stdin
  std::shared_ptr<output_log> log;
  std::thread reader;

  /// Exit code, or 128 + signal, or -1 while running.
  int exit_code() const;
  /// stdout and stderr so far.
  std::string output() const;
};

class cluster {
 public:
  /// Starts 1 scheduler, `servers` servers (server_program) and `workers` workers
  /// (worker_program with worker_args), with the DMLC_* and KVACTOR_* environment plus
  /// `extra_env`.
  cluster(const std::string& server_program, const std::string& worker_program,
          std::vector<std::string> worker_args, int servers, int workers,
          std::map<std::string, std::string> extra_env = {});
  ~cluster();
  cluster(const cluster&) = delete;
  cluster& operator=(const cluster&) = delete;

  std::vector<process>& procs() { return procs_; }
  process& scheduler() { return procs_[0]; }
  process& server(int i) { return procs_[1 + i]; }
  process& worker(int i) { return procs_[1 + servers_ + i]; }

  /// Waits until every process has exited or `limit` passed; returns whether all exited.
  bool wait_all(std::chrono::milliseconds limit);
  /// Waits until p's output contains `text` (or p exits, or `limit` passes).
  bool wait_for_output(process& p, const std::string& text, std::chrono::milliseconds limit);
  /// Waits for p to exit; false after `limit`.
  bool wait(process& p, std::chrono::milliseconds limit);
  void signal(process& p, int sig);
  /// Starts one more process with the cluster's environment, changed by `overrides`.
  process& start_extra(const std::string& label, const std::string& role,
                       const std::vector<std::string>& argv,
                       const std::map<std::string, std::string>& overrides);
  /// Writes a line to p's stdin.
  void send_line(process& p, const std::string& line);
  /// Everyone's output, labelled, for failure messages.
  std::string dump() const;

 private:
  void stop_all();
  process& start(const std::string& label, const std::string& role,
                 const std::vector<std::string>& argv, std::map<std::string, std::string> env);
  int servers_;
  std::map<std::string, std::string> env_;
  std::vector<process> procs_;
};

/// A TCP port that was free a moment ago, outside the ephemeral range (see
/// kvactor/detail/local_port.hpp); throws std::runtime_error when there is none.
int free_port();

/// The port a server process printed in its "accepting workers on HOST:PORT" line; -1 before.
int server_port(const process& p);
/// CLOCK_MONOTONIC in nanoseconds (the same clock in every process of this machine).
long long monotonic_ns();

}  // namespace kvactor::testing
