// Running cluster nodes. A kvactor cluster is one scheduler, S servers and W workers, placed
// by kvactor-launch, by MXNet's launcher, or by mpirun/Slurm; each process learns its role
// from the environment:
//   DMLC_ROLE                scheduler | server | worker (or a rank from OMPI_COMM_WORLD_RANK,
//                            PMI_RANK or SLURM_PROCID: 0 scheduler, 1..S servers, the rest
//                            workers)
//   DMLC_PS_ROOT_URI/PORT    where the scheduler listens
//   DMLC_NUM_SERVER/WORKER   S and W
//   KVACTOR_SECRET or KVACTOR_SECRET_FILE   the shared secret every connection proves (the
//                            file must not be accessible by group or others: chmod 600)
//   KVACTOR_CLUSTER_ID       bound into authentication (default "kvactor")
//   KVACTOR_NODE_HOST        the address this node listens on and announces, when the
//                            default is not the one peers should use (default: loopback in
//                            local mode; else the address peers reach: see README)
//   KVACTOR_PROFILE_DIR      servers: the only directory profile files are written to
//   KVACTOR_BIGARRAY_BOUND   elements from which a key is split over all servers (1e6)
//   KVACTOR_CONNECT_TIMEOUT_MS  how long a node waits for the cluster to assemble (60000);
//                            a waiting node says so on stderr every 3 s
//   KVACTOR_TLS              on | off | auto (default): TLS 1.3 between nodes, keyed from the
//                            secret; auto is on unless DMLC_PS_ROOT_URI is loopback
//   KVACTOR_TLS_CERT, KVACTOR_TLS_KEY, KVACTOR_TLS_CA
//                            TLS with certificates (PEM) instead: this node's certificate,
//                            its key (mode 0600), the CA every node's certificate is from
// A bad environment is reported whole: one error naming every missing or malformed variable.
// Workers call kvactor::create("dist_sync" | "dist_async"); the kvactor-server program (or any
// program that calls run_node_from_env or create) runs the other roles.
// Thread-safety: call once per process.
#pragma once

#include <string>

#include "kvactor/options.hpp"

namespace kvactor {

/// The DMLC_ROLE this process has (from the environment, as described above), or "" when it
/// has none.
std::string node_role_from_env();

/// Runs this process's scheduler or server role until the cluster stops; returns the exit
/// status (0 when the cluster stopped in order). A worker role or a bad environment prints
/// why on stderr and returns 2.
int run_node_from_env(const options& opts = {});

}  // namespace kvactor
