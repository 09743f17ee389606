#include <cstdio>

#include "kvactor/cluster.hpp"
#include "nodes.hpp"

namespace kvactor {

std::string node_role_from_env() {
  auto cfg = detail::read_cluster_config(detail::process_env());
  return cfg ? cfg->role : std::string{};
}

int run_node_from_env(const options& opts) {
  auto cfg = detail::read_cluster_config(detail::process_env());
  if (!cfg) {
    std::fprintf(stderr, "kvactor: %s\n", cfg.error().to_string().c_str());
    return 2;
  }
  if (cfg->role == "scheduler") return detail::run_scheduler(*cfg);
  if (cfg->role == "server") return detail::run_server(*cfg, opts);
  std::fprintf(stderr,
               "kvactor: DMLC_ROLE=worker: workers are programs that call "
               "kvactor::create(\"dist_sync\"); this runs schedulers and servers\n");
  return 2;
}

}  // namespace kvactor
