// bench_dist's one-big-key memory case: a cluster of its own, 1 server x 1 worker, whose only
// key is big_key_bytes (1 GiB; --quick: 64 MiB). The worker inits it, then runs R rounds of
// push, pull and pushpull of it, one call at a time ("big BYTES R", worker.cpp).
//
// Figure "1x1 big_key SIZE server mem_peak": the server's VmHWM / the key's bytes, limit
// mem_bound (2.0, lower is better). Extras: peak and stored bytes, the RSS before the key
// existed, (peak - that) / stored, rounds.
#include <iostream>
#include <string>

#include "bench_common.hpp"
#include "cluster.hpp"
#include "config.hpp"
#include "proc_stats.hpp"
#include "roles.hpp"

namespace kvbench::dist {

void big_key_case(const bench_config& cfg, const std::string& self_exe) {
  const std::size_t bytes = big_key_bytes(cfg.quick);
  const std::string name = "1x1 big_key " + size_name(bytes) + " server mem_peak";
  if (!cfg.filter.empty() && name.find(cfg.filter) == std::string::npos) return;
  const int rounds = cfg.quick ? 2 : 3;
  cluster cl(1, 1, self_exe, cfg.quick, false);
  cl.collect("JOINED", 60000);
  const std::size_t base_rss = read_mem(cl.server(0).pid).rss;
  cl.send_all("big " + std::to_string(bytes) + " " + std::to_string(rounds));
  cl.collect("DONE", 300000);
  const proc_figures m = read_mem(cl.server(0).pid);
  emit(figure{"dist",
              name,
              double(m.hwm) / double(bytes),
              "x stored bytes",
              mem_bound,
              std::nullopt,
              true,
              {{"peak_B", json_number(double(m.hwm))},
               {"stored_B", json_number(double(bytes))},
               {"rss_before_init_B", json_number(double(base_rss))},
               {"incremental_x", json_number((double(m.hwm) - double(base_rss)) / double(bytes))},
               {"rounds", json_number(rounds)}}});
  if (!cl.shut_down(60000)) die("big_key: the cluster did not shut down in order");
}

}  // namespace kvbench::dist
