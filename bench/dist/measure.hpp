// bench_dist's measurement arithmetic: the times of one block (a warm-up, then n timed
// operations per client or worker), its rates, and a case's figures over its blocks.
// Thread-safety: plain values; a case_stats is filled by one thread.
#pragma once

#include <cstddef>
#include <vector>

namespace kvbench::dist {

struct block_times {
  std::vector<long long> t0, t1;  // per client / worker
  std::vector<long long> lat;     // ns, all clients / workers
  long long cpu_ns = 0;           // all processes / threads involved, timed part only
  long long cswitches = 0;        // context switches of the same
  std::size_t ops_per_client = 0;
};

struct rates {
  double per_client = 0;  // mean of the clients' B/s
  double aggregate = 0;   // all bytes / (last end - first start)
  double op_s = 0;        // mean seconds per op of a client
};
rates block_rates(const block_times& b, std::size_t bytes_per_op);

struct case_stats {
  std::vector<double> per_client, aggregate, op_s;
  std::vector<double> lat_us;
  double cpu_ns = 0, wall_ns = 0, ops = 0, cswitches = 0;
  void add(const block_times& b, std::size_t bytes_per_op);
  double cpu_us_per_op() const { return cpu_ns * 1e-3 / ops; }
  double cpu_cores() const { return cpu_ns / wall_ns; }
  double cswitches_per_op() const { return cswitches / ops; }
};

}  // namespace kvbench::dist
