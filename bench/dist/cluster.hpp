// One kvactor cluster of bench_dist on loopback: the scheduler and S servers (kvactor-server)
// and W workers (bench_dist --worker), started as process-group leaders that die with the
// driver. The driver talks to the workers through their stdin and stdout (one command, one
// answer line each; see worker.cpp) and reads the servers' /proc figures.
// Thread-safety: the driver's main thread only.
#pragma once

#include <sys/types.h>

#include <kvactor/detail/spawn.hpp>

#include <cstddef>
#include <string>
#include <vector>

#include "config.hpp"
#include "measure.hpp"

#ifndef KVACTOR_SERVER
#error "KVACTOR_SERVER must name the kvactor-server program (bench/CMakeLists.txt sets it)"
#endif

namespace kvbench::dist {

struct child {
  std::string label;
  pid_t pid = -1;
  kvactor::detail::child_process proc;  // leads its own process group
  int out = -1;                         // its stdout (workers only)
  int in = -1;                          // its stdin (workers only)
  std::string buf;
};

class cluster {
 public:
  /// Starts the processes (KVACTOR_TLS on or off; KVACTOR_TIMELINE=timeline unless empty;
  /// KVACTOR_SHM=1 with shm, else 0: every case but --shm measures the TCP store); the
  /// workers are self_exe --worker.
  cluster(int servers, int workers, const std::string& self_exe, bool quick, bool tls,
          const std::string& timeline = {}, bool shm = false);
  ~cluster();
  child& server(int i) { return procs_[1 + static_cast<std::size_t>(i)]; }
  child& worker(int i) { return procs_[1 + static_cast<std::size_t>(servers_ + i)]; }
  int servers() const { return servers_; }
  int workers() const { return workers_; }

  /// Writes `line` to every worker.
  void send_all(const std::string& line);
  /// One line from every worker, each starting with `tag`.
  std::vector<std::string> collect(const std::string& tag, int limit_ms);
  /// CPU time and context switches of the servers' live threads.
  long long servers_cpu_ns();
  long long servers_cswitches();
  /// Workers finish (rank 0 stops the servers), then everyone exits.
  bool shut_down(int limit_ms);

 private:
  int servers_ = 0, workers_ = 0;
  std::vector<child> procs_;
};

/// One store block: a "warm" command (untimed), then a "run" command (a barrier, then n timed
/// operations per worker); CPU and context switches of the workers and the servers. `op` is
/// an operation's name (op_name) or "many" (then size_index is a many-keys case).
block_times run_store_block(cluster& cl, const std::string& op, std::size_t size_index,
                            std::size_t n, std::size_t window, std::size_t warm, bool want_lat);
inline block_times run_store_block(cluster& cl, op_kind o, std::size_t size_index, std::size_t n,
                                   std::size_t window, std::size_t warm, bool want_lat) {
  return run_store_block(cl, op_name(o), size_index, n, window, warm, want_lat);
}

}  // namespace kvbench::dist
