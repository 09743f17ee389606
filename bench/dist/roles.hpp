// bench_dist's two roles: the driver (the program as started: clusters, raw baseline,
// figures on stdout) and the worker (the program re-executed with --worker by the driver).
// Thread-safety: each is a program's main, run once on its main thread.
#pragma once

#include <string>

namespace kvbench::dist {

/// Runs every case of the selected topologies and prints one JSON line per figure.
int driver_main(bool quick, bool tls, bool timeline, const std::string& filter,
                const std::string& topology, int blocks);

/// Joins the cluster as a dist_sync worker and answers the driver's commands on stdin.
int worker_main(bool quick);

}  // namespace kvbench::dist
