// What bench_dist measures of processes and threads: the shared monotonic clock, CPU time,
// context switches and memory, from clock_gettime, getrusage and /proc/<pid>.
// Thread-safety: free functions without state; safe from any thread.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <ctime>

namespace kvbench::dist {

/// CLOCK_MONOTONIC in ns: the clock every process of the run shares.
long long mono_ns();
/// Clock c (CLOCK_PROCESS_CPUTIME_ID, ...) in ns.
long long cpu_ns(clockid_t c);
/// Context switches (voluntary + involuntary) of every live thread of pid.
long long proc_cswitches(pid_t pid);
/// Context switches of this process.
long long self_cswitches();
/// CPU time of every live thread of pid (ns), from /proc/<pid>/task/*/schedstat.
long long proc_cpu_ns(pid_t pid);

struct proc_figures {
  std::size_t rss = 0, hwm = 0;
};
/// VmRSS and VmHWM of pid, in bytes.
proc_figures read_mem(pid_t pid);

}  // namespace kvbench::dist
