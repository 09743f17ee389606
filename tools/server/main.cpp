// kvactor-server: runs the scheduler or a server of a kvactor cluster, as DMLC_ROLE says
// (see kvactor/cluster.hpp). kvactor-launch starts it for those roles.
#include <cstring>
#include <iostream>

#include "kvactor/cluster.hpp"

int main(int argc, char** argv) {
  if (argc > 1 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h"))) {
    std::cout << "usage: kvactor-server\n"
                 "Runs the scheduler or a server of a kvactor cluster; the role and the "
                 "cluster come from the environment\n(DMLC_ROLE, DMLC_PS_ROOT_URI, "
                 "DMLC_PS_ROOT_PORT, DMLC_NUM_SERVER, DMLC_NUM_WORKER, KVACTOR_SECRET).\n"
                 "kvactor-launch sets them. Exits 0 when the cluster stopped in order.\n";
    return 0;
  }
  return kvactor::run_node_from_env();
}
