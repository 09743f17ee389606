// The three kinds of cluster node. The scheduler and server run until the cluster stops and
// return the process's exit status; a worker is a kvstore.
#pragma once

#include <memory>
#include <string>

#include "cluster_config.hpp"
#include "kvactor/options.hpp"

namespace kvactor::detail {

class store_impl;

/// Assigns ranks, publishes the node table, runs barriers, watches every node; returns 0
/// when all nodes finished in order, 1 when one was lost or the cluster never assembled.
int run_scheduler(const cluster_config& cfg);

/// Hosts shard actors for this server's parts; returns 0 after the stop command, 1 when the
/// cluster broke.
int run_server(const cluster_config& cfg, const options& opts);

/// Joins the cluster as a worker (blocks until it has assembled) and returns the store; with
/// device_values (dist_*_device), values and outputs may be on CUDA devices. Throws
/// kvactor::error when the cluster cannot be joined.
std::shared_ptr<store_impl> make_dist_store(std::string type, const options& opts,
                                            const cluster_config& cfg, bool device_values);

}  // namespace kvactor::detail
