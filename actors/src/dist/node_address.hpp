// Where the scheduler and the servers listen, and the address a server gives its workers.
// Nothing listens on every interface unless told to: in local mode (the scheduler on a loopback
// address, as kvactor-launch's local mode sets) every listener is on loopback; on hosts each
// node listens on KVACTOR_NODE_HOST, or on the address its peers reach it by:
//   the scheduler: the address DMLC_PS_ROOT_URI names, when it is one of this host's; else
//                  (behind NAT, a virtual service address) the local address of the route to it
//   a server:      the local address of its connection to the scheduler (the interface that
//                  routes to the scheduler)
// KVACTOR_NODE_HOST=0.0.0.0 (or ::) listens on every interface; a server then gives workers the
// address of its scheduler connection.
// Thread-safety: pure functions (name resolution aside).
#pragma once

#include <string>

#include "cluster_config.hpp"
#include "kvactor/result.hpp"

namespace kvactor::detail {

struct listen_address {
  std::string bind;       ///< a literal address to listen on
  std::string advertise;  ///< what peers are told to connect to
  std::string note;       ///< non-empty: why this choice needs the user's eye (logged)
};

/// The scheduler's. invalid_argument naming DMLC_PS_ROOT_URI and KVACTOR_NODE_HOST when
/// DMLC_PS_ROOT_URI does not resolve or no route leads to it.
result<listen_address> scheduler_address(const cluster_config& cfg);

/// A server's, given the local address of its connection to the scheduler.
listen_address server_address(const cluster_config& cfg, const std::string& routed_host);

/// Whether `host` is a name the user wrote meaning this machine only: a loopback literal or
/// "localhost" (no name resolution).
bool is_loopback_name(const std::string& host);

/// Whether `host` is a literal address of every interface (0.0.0.0, ::).
bool is_wildcard_address(const std::string& host);

}  // namespace kvactor::detail
