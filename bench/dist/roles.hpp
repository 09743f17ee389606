// bench_dist's two roles: the driver (the program as started: clusters, raw baseline,
// figures on stdout) and the worker (the program re-executed with --worker by the driver).
// Thread-safety: each is a program's main, run once on its main thread.
#pragma once

#include <cstddef>
#include <string>

namespace kvbench::dist {

/// Runs every case of the selected topologies and prints one JSON line per figure.
int driver_main(bool quick, bool tls, bool timeline, const std::string& filter,
                const std::string& topology, int blocks, bool shm = false);

struct bench_config;
/// --shm: the shared-memory store against the TCP store and memcpy (shm_case.cpp).
int shm_main(const bench_config& cfg, const std::string& self_exe);

/// The one-big-key memory case: an SxW cluster of its own (big_key.cpp).
void big_key_case(const bench_config& cfg, const std::string& self_exe, int S, int W);

/// Prints figure `name`: a server's peak RSS over the bytes it stores (limit 2.0, lower is
/// better), with the peak, the stored bytes, the RSS before any key existed, (peak - that) /
/// stored and the rounds run (driver.cpp).
void emit_mem_peak(const std::string& name, std::size_t peak, std::size_t stored,
                   std::size_t rss_before, int rounds);

/// Joins the cluster as a dist_sync worker and answers the driver's commands on stdin.
int worker_main(bool quick);

}  // namespace kvbench::dist
