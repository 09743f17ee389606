// bench_dist: a real dist_sync cluster on loopback (scheduler and servers: kvactor-server;
// workers: this program, re-executed) against raw TCP doing the same message pattern over
// the same connections, measured by the same program in the same run, interleaved
// (raw, store, raw, store, ...).
//
//   bench_dist [--quick] [--tls | --timeline | --shm] [--topology 1x1|2x2] [--filter TEXT]
//              [--blocks N]
//
// --quick: 4 B, 1 MiB, 16 MiB, 2 blocks, 3 memory rounds (a few seconds). --topology runs one
// topology; --filter runs only the timing cases whose name contains TEXT (and skips the memory
// figures), except --filter memory, which runs the memory phases alone (the key set's and the
// one big key's); --blocks overrides the number of interleaved blocks per case (for profiling).
// --tls: the cost of TLS instead. Two clusters run side by side, one with KVACTOR_TLS=on and
// one with it off, and each block pair is (plaintext store, TLS store): the figures are named
// "SxW tls OP SIZE ..." with the TLS store's value and the plaintext store's as limit (target
// 0.7 from 1 MiB up for throughput); no raw TCP, no memory figures.
// --timeline: the cost of the timeline (KVACTOR_TIMELINE), the same way: a cluster whose every
// process records against one that does not, figures "SxW timeline OP SIZE ...", target 0.95
// from 1 MiB up; the timeline files go to a fresh /tmp directory, removed at the end.
// --shm: the co-located shared-memory path (KVACTOR_SHM=1) against the TCP store and a memcpy
// of the same bytes (shm_case.cpp). Every other case runs its clusters with KVACTOR_SHM=0: the
// store they measure against raw TCP is the TCP store.
//
// Topologies: 1 server x 1 worker ("1x1") and 2 servers x 2 workers ("2x2"). Operations:
// push, pull, pushpull of one float32 key per size (4 B, 4 KiB, 1 MiB, 16 MiB, 64 MiB; the
// keys are separate). A key of at least KVACTOR_BIGARRAY_BOUND elements (default 1e6, so
// 16 MiB and 64 MiB) is split into one part per server; a smaller one lives whole on server
// hash(key) mod S. Without an updater a dist_sync round replaces the value with the sum of the
// workers' pushes (values are zeros, so nothing overflows).
//
// Figures (one JSON line each, see bench_common.hpp); bytes are payload bytes on the wire per
// operation and worker: push n (up), pull n (down), pushpull 2n (n up, n down):
//   "SxW OP SIZE throughput" (W = 1), "2x2 OP SIZE throughput per_worker" and
//   "... throughput aggregate": value = B/s of a stream of operations with a window of
//       `window` outstanding (2 from 1 MiB up, 8 below); per_worker = the workers' mean rate
//       in a block, aggregate = all workers' bytes / (last end - first start). limit = the
//       same for raw TCP: each raw client has one connection per raw server, sends a 16-byte
//       request header + the part's up bytes to the part's server, which answers with an
//       8-byte header + the part's down bytes, with the same window and the same parts
//       (split and placement as the store's). Median over blocks. Targets from 1 MiB up
//       (issue 13): 0.9 at 1x1, 0.85 for the 2x2 pushpull aggregate; at 1x1 also CPU per
//       operation <= 1.3x raw's (extras cpu_ratio, cpu_target).
//   "SxW OP SIZE rtt": value = median round trip of one operation at a time (issue, wait),
//       microseconds, lower is better; limit = raw TCP ping-pong of the same parts. Target
//       2.0 for every operation up to 4 KiB, with CPU per operation <= 3x raw's (issue 13;
//       extras cpu_ratio, cpu_target).
//   Extra keys: op_us / limit_op_us (median time per operation of one worker / raw client),
//       cpu_us_per_op (CPU of the workers and servers over the timed parts / operations; from
//       CLOCK_PROCESS_CPUTIME_ID and /proc/<pid>/task/*/schedstat) and limit_cpu_us_per_op (raw
//       client and server threads), cpu_cores (that CPU / wall time), cswitch_per_op and
//       limit_cswitch_per_op (voluntary + involuntary context switches per operation: every
//       thread hand-off costs one), paired_ratio (+ _min, _max): the median over blocks of
//       the ratio of each (raw, store) block pair, which ran back to back — a second estimate,
//       less sensitive to load that drifts during a case — p99_us, window, ops_per_block,
//       blocks, parts.
//   "SxW many_keys CASE pushpull throughput": one pushpull call of every key of a set (1000
//       keys of 4 B, of 4 KiB, and of sizes spread from 4 B to 4 KiB; --quick: 100 spread), one
//       call at a time; value = B/s (2 x the set's bytes per call); limit = raw TCP moving the
//       same bytes as one message per server (up and down). Target 0.6 (issue 13, fusion of
//       small keys). Extras: keys, bytes_per_call, op_us / limit_op_us, cpu_us_per_op.
//   "SxW server I mem_peak": that server process's VmHWM / the bytes it stores (its parts of
//       all keys), after the memory phase (R rounds of push, pull, pushpull of every key, one
//       call at a time); limit 2.0 (issue 13), lower is better. Extras: peak and stored bytes, the
//       RSS the server had before any key existed, and (peak - that) / stored.
//   "SxW server I rss_growth": (RSS after round R - RSS after round 1) / (R - 1), bytes per
//       round; should be 0 (flat).
//   "SxW server I mem_peak whole_run": VmHWM at the end, after every timing case (windows of
//       2-8 operations in flight hold more buffers), / stored bytes; limit 2.0.
//   "SxW big_key 1024MiB server I mem_peak": the same for a cluster of its own whose only key
//       is 1 GiB (--quick: 64 MiB), after 3 rounds of push, pull, pushpull (big_key.cpp).
//
// Process model. Run without --worker, the program is the driver: per topology it creates the
// raw mesh (threads of this process: one poll loop per raw client, one blocking thread per
// raw server connection, all buffers pooled and touched beforehand), then starts the
// scheduler and servers (KVACTOR_SERVER, compiled in) and W workers (this program with
// --worker), talks to the workers through their stdin/stdout (one command / one answer line
// each) and reads the servers' /proc/<pid>/{status,task/*/schedstat}. Every store block is a
// "warm" command (the block's window of operations, untimed: buffers get allocated and
// touched there) and a "run" command (a barrier, then the timed operations); every raw block
// likewise. Each worker times itself on CLOCK_MONOTONIC, the clock every process shares.
// Every wait has a deadline; children die with the driver (PR_SET_PDEATHSIG).
//
// Files: config (cases and key parts), proc_stats (clocks, CPU, context switches, memory),
// raw_mesh (the raw TCP baseline), cluster (the processes and the worker protocol), measure
// (block rates and case statistics), driver (the cases and their figures), big_key (the
// one-big-key memory case), worker (the worker role), main (the options).
#include <cstdlib>
#include <iostream>
#include <string>

#include "roles.hpp"

int main(int argc, char** argv) {
  bool quick = false, worker = false, tls = false, timeline = false, shm = false;
  std::string filter, topology;
  int blocks = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--tls") {
      tls = true;
    } else if (a == "--timeline") {
      timeline = true;
    } else if (a == "--shm") {
      shm = true;
    } else if (a == "--worker") {
      worker = true;
    } else if (a == "--filter" && i + 1 < argc) {
      filter = argv[++i];
    } else if (a == "--topology" && i + 1 < argc) {
      topology = argv[++i];
    } else if (a == "--blocks" && i + 1 < argc) {
      blocks = std::atoi(argv[++i]);
    } else {
      std::cerr << "usage: bench_dist [--quick] [--tls | --timeline | --shm] [--topology 1x1|2x2] "
                   "[--filter TEXT] [--blocks N]\n";
      return 2;
    }
  }
  if (int(tls) + int(timeline) + int(shm) > 1) {
    std::cerr << "bench_dist: --tls, --timeline and --shm each compare against a baseline; pick "
                 "one\n";
    return 2;
  }
  return worker ? kvbench::dist::worker_main(quick)
                : kvbench::dist::driver_main(quick, tls, timeline, filter, topology, blocks, shm);
}
