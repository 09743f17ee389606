// bench_dist's one-big-key memory case: per topology, a cluster of its own whose only key is
// big_key_bytes (1 GiB; --quick: 64 MiB; split over the servers like any big key). Each worker
// inits it, then runs R rounds of push, pull and pushpull of it, one call at a time ("big BYTES
// R", worker.cpp).
//
// Figure "SxW big_key SIZE server I mem_peak": server I's VmHWM / its part of the key's bytes,
// limit mem_bound (2.0, lower is better). Extras: peak and stored bytes, the RSS before the key
// existed, (peak - that) / stored, rounds.
#include <iostream>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "cluster.hpp"
#include "config.hpp"
#include "proc_stats.hpp"
#include "roles.hpp"

namespace kvbench::dist {

void big_key_case(const bench_config& cfg, const std::string& self_exe, int S, int W) {
  const std::size_t bytes = big_key_bytes(cfg.quick);
  const std::string prefix =
      std::to_string(S) + "x" + std::to_string(W) + " big_key " + size_name(bytes);
  if (!cfg.filter.empty() && cfg.filter != "memory" && prefix.find(cfg.filter) == std::string::npos)
    return;
  std::vector<std::size_t> stored(static_cast<std::size_t>(S), 0);
  for (const part& p : plan_parts(big_key, bytes, static_cast<std::uint32_t>(S)))
    stored[p.server] += p.bytes;
  const int rounds = cfg.quick ? 2 : 3;
  cluster cl(S, W, self_exe, cfg.quick, false);
  cl.collect("JOINED", 60000);
  std::vector<std::size_t> base_rss;
  for (int s = 0; s < S; ++s)
    base_rss.push_back(read_mem(cl.server(s).pid).rss);
  cl.send_all("big " + std::to_string(bytes) + " " + std::to_string(rounds));
  cl.collect("DONE", 300000);
  for (int s = 0; s < S; ++s) {
    // A server holding no part of the key has no ratio to report.
    if (stored[s] == 0) continue;
    emit_mem_peak(prefix + " server " + std::to_string(s) + " mem_peak",
                  read_mem(cl.server(s).pid).hwm, stored[s], base_rss[s], rounds);
  }
  if (!cl.shut_down(60000)) die(prefix + ": the cluster did not shut down in order");
}

}  // namespace kvbench::dist
