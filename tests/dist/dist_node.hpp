// The scenarios of dist_node, the worker program of the multi-process tests (dist_test.cpp,
// flood_test.cpp, listen_test.cpp, tls_cluster_test.cpp), by theme: store semantics
// (dist_node_sync.cpp), sparse, device and compressed values (dist_node_values.cpp), faults
// and limits (dist_node_faults.cpp), fusion (dist_node_fusion.cpp) and streamed pushes
// (dist_node_stream.cpp); dist_node.cpp names them and picks the store type.
// Each checks exact results inside a real cluster and fails through node::fail.
// Thread-safety: the program's main thread only.
#pragma once

#include <ctime>
#include <string>

#include "kvactor/kvstore.hpp"
#include "node_util.hpp"

namespace kvactor::testing::dist_node {

/// Every element of t is v.
inline void expect_all(const tensor& t, double v, const std::string& what) {
  auto xs = t.to_vector();
  for (std::size_t i = 0; i < xs.size(); ++i)
    if (xs[i] != v)
      node::fail(what + ": element " + std::to_string(i) + " is " + std::to_string(xs[i]) +
                 ", expected " + std::to_string(v));
}

/// CLOCK_MONOTONIC in ns, comparable across the cluster's processes (printed in fault lines).
inline long long monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

// dist_node_sync.cpp: rounds, string keys, dist_async, server commands, priority, checkpoints.
void sync_rounds(kvstore& kv);
void string_keys(kvstore& kv);
void async_updates(kvstore& kv);
void commands(kvstore& kv);
void priority(kvstore& kv);
void checkpoint(kvstore& kv);

// dist_node_values.cpp: row-sparse values, device values (sync and async), compression.
void sparse(kvstore& kv);
void device_values(kvstore& kv);
void device_async(kvstore& kv);
void compressed(kvstore& kv);

// dist_node_faults.cpp: failures, a steady job for hostile tests, message caps, refused
// rounds and departed workers.
void until_failure(kvstore& kv);
void steady(kvstore& kv);
void limits(kvstore& kv);
void refused_round(kvstore& kv);
void departed(kvstore& kv);

// dist_node_fusion.cpp: many small keys, their order and priorities, one key's error.
void fusion(kvstore& kv);

// dist_node_stream.cpp: big pushes summed into their round as they arrive.
void streamed_rounds(kvstore& kv);

}  // namespace kvactor::testing::dist_node
