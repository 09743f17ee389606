// A process's place in a cluster, read from the environment. MXNet's launcher variables
// (DMLC_ROLE, DMLC_PS_ROOT_URI, DMLC_PS_ROOT_PORT, DMLC_NUM_SERVER, DMLC_NUM_WORKER) plus
// kvactor's own:
//   KVACTOR_SECRET / KVACTOR_SECRET_FILE  shared secret for authentication (required); the
//                                         file must not be accessible by group or others
//   KVACTOR_CLUSTER_ID                    bound into authentication (default "kvactor")
//   KVACTOR_NODE_HOST                     address this node binds and advertises (default:
//                                         see node_address.hpp; loopback in local mode)
//   KVACTOR_PROFILE_DIR                   servers: the only directory profiles are written to
//                                         (default: none, profile files are refused)
//   KVACTOR_STATES_DIR                    servers: the only directory optimizer states are
//                                         saved to and loaded from (default: none, refused;
//                                         kvactor-launch in local mode: its working directory)
//   KVACTOR_BIGARRAY_BOUND / MXNET_KVSTORE_BIGARRAY_BOUND
//                                         elements from which a key is split over all servers
//   KVACTOR_CONNECT_TIMEOUT_MS            how long the cluster may take to assemble
//   KVACTOR_MAX_MESSAGE_BYTES             payload cap of one message (default 4 GiB; the
//                                         same on every node); bigger keys travel in parts
//   KVACTOR_FUSION_KEY_BYTES, KVACTOR_FUSION_BYTES, KVACTOR_FUSION_WINDOW_US
//                                         workers: fusion of small keys (options.hpp's
//                                         fusion_key_bytes, fusion_bytes, fusion_window; the
//                                         variables win over the options)
//   KVACTOR_TLS                           on | off | auto (default): TLS 1.3 between nodes,
//                                         keyed from the secret; auto is on unless
//                                         DMLC_PS_ROOT_URI is loopback (local mode, where
//                                         every node is on this host). The same on every node
//   KVACTOR_TLS_CERT, KVACTOR_TLS_KEY, KVACTOR_TLS_CA
//                                         TLS with certificates instead of the PSK (PEM files:
//                                         this node's certificate chain, its private key, the
//                                         CA that signed every node's certificate); all three
//                                         or none; they turn TLS on; the key file must not be
//                                         accessible by group or others
// Without DMLC_ROLE, a rank from mpirun (OMPI_COMM_WORLD_RANK, PMI_RANK) or Slurm
// (SLURM_PROCID) picks the role: rank 0 is the scheduler, ranks 1..S the servers, the rest
// workers (DMLC_NUM_WORKER then defaults to size - 1 - S).
// Thread-safety: pure functions over a value.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "kvactor/result.hpp"

namespace kvactor::detail {

struct cluster_config {
  std::string role;  ///< "scheduler", "server" or "worker"
  std::string root_host;
  std::uint16_t root_port = 0;
  std::uint32_t num_servers = 0;
  std::uint32_t num_workers = 0;
  std::string cluster_id = "kvactor";
  std::string secret;
  std::string node_host;    ///< empty: derive from the scheduler connection
  std::string profile_dir;  ///< empty: a server writes no profile files
  std::string states_dir;   ///< empty: a server saves and loads no optimizer states
  std::int64_t rank_hint = -1;
  std::uint64_t big_array_bound = 1000000;
  std::chrono::milliseconds connect_timeout{60000};
  std::uint64_t max_message_bytes = std::uint64_t{4} << 30;
  std::optional<std::uint64_t> fusion_key_bytes;  ///< set: overrides options::fusion_key_bytes
  std::optional<std::uint64_t> fusion_bytes;      ///< set: overrides options::fusion_bytes
  std::optional<std::chrono::microseconds> fusion_window;  ///< set: overrides options'
  bool tls = false;           ///< KVACTOR_TLS resolved (read_cluster_config decides auto)
  std::string tls_cert_file;  ///< KVACTOR_TLS_CERT/KEY/CA: all set, or all empty (PSK)
  std::string tls_key_file;
  std::string tls_ca_file;
};

/// Looks a variable up; nullopt when unset.
using env_lookup = std::function<std::optional<std::string>(const std::string&)>;
/// The process environment.
env_lookup process_env();

/// The secret in the file at `path` (trailing newline and spaces trimmed), or invalid_argument
/// naming the file: unreadable, not a regular file, empty, or accessible by group or others
/// (its mode named, as ssh refuses such private keys).
result<std::string> read_secret_file(const std::string& path);

/// The file at `path` opened for reading (a descriptor the caller closes), or invalid_argument
/// naming it as `name`: unreadable, not a regular file, or accessible by group or others.
result<int> open_private_file(const std::string& path, const std::string& name);

/// The configuration, or one invalid_argument naming every missing or malformed variable (so
/// that a broken environment is fixed in one go).
result<cluster_config> read_cluster_config(const env_lookup& env);

}  // namespace kvactor::detail
