// Runs the processes of one job and watches them: prefixes their output, propagates their
// exit status, and tears the whole job down on a failure, a signal or a timeout. Linux only
// (parent-death signal, child subreaper, /proc). Single-threaded: one poll loop.
#pragma once

#include <string>
#include <vector>

namespace kvactor::launch {

struct process_spec {
  std::string name;  ///< "scheduler", "server 0", "worker 3"; the output prefix is "[name] "
  bool worker = false;
  std::vector<std::string> argv;  ///< argv[0] is looked up in PATH
  std::vector<std::string> env;   ///< the complete environment, "K=V" each
  std::string stdin_data;         ///< written to stdin, then EOF; empty: stdin is /dev/null
};

struct supervise_settings {
  double timeout_s = 0;     ///< whole job; 0: none
  double grace_s = 10;      ///< scheduler and servers after the last worker
  double kill_after_s = 2;  ///< SIGTERM to SIGKILL
};

/// Starts the processes in order and returns the launcher's exit status (see --help).
int supervise(std::vector<process_spec> specs, const supervise_settings& settings);

}  // namespace kvactor::launch
