#include "cluster_config.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace kvactor::detail {

namespace {

status bad(const std::string& what) { return status{errc::invalid_argument, what}; }

// A whole decimal number in [lo, hi], or nullopt.
std::optional<std::int64_t> parse_int(const std::string& s, std::int64_t lo, std::int64_t hi) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  std::int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (v < lo || v > hi) return std::nullopt;
  return v;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

env_lookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    if (const char* v = std::getenv(name.c_str())) return std::string{v};
    return std::nullopt;
  };
}

result<cluster_config> read_cluster_config(const env_lookup& env) {
  cluster_config c;
  auto get_int = [&](const std::string& name, std::int64_t lo, std::int64_t hi,
                     std::optional<std::int64_t>& out) -> status {
    out.reset();
    auto v = env(name);
    if (!v) return {};
    out = parse_int(*v, lo, hi);
    if (!out)
      return bad(name + "=\"" + *v + "\" is not a whole number in [" + std::to_string(lo) + ", " +
                 std::to_string(hi) + "]");
    return {};
  };

  std::optional<std::int64_t> servers, workers, port, bound, timeout;
  if (auto s = get_int("DMLC_NUM_SERVER", 1, 4096, servers); !s) return s;
  if (auto s = get_int("DMLC_NUM_WORKER", 1, 65536, workers); !s) return s;
  if (auto s = get_int("DMLC_PS_ROOT_PORT", 1, 65535, port); !s) return s;
  if (auto s = get_int("KVACTOR_BIGARRAY_BOUND", 1, std::int64_t{1} << 50, bound); !s) return s;
  if (!bound)
    if (auto s = get_int("MXNET_KVSTORE_BIGARRAY_BOUND", 1, std::int64_t{1} << 50, bound); !s)
      return s;
  if (auto s = get_int("KVACTOR_CONNECT_TIMEOUT_MS", 1, 3600000, timeout); !s) return s;

  if (auto role = env("DMLC_ROLE")) {
    c.role = *role;
  } else {
    // Placed by mpirun or Slurm: the rank decides the role.
    std::optional<std::int64_t> rank, size;
    for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"}) {
      if (auto s = get_int(name, 0, 1 << 20, rank); !s) return s;
      if (rank) break;
    }
    for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"}) {
      if (auto s = get_int(name, 1, 1 << 20, size); !s) return s;
      if (size) break;
    }
    if (!rank)
      return bad("DMLC_ROLE is not set (and no mpirun or Slurm rank is): this process needs "
                 "DMLC_ROLE=scheduler|server|worker, e.g. from kvactor-launch");
    if (!servers) return bad("DMLC_NUM_SERVER must be set when ranks come from mpirun/Slurm");
    if (!workers) {
      if (!size || *size < 2 + *servers)
        return bad("DMLC_NUM_WORKER is not set and the job size does not leave room for workers");
      workers = *size - 1 - *servers;
    }
    if (*rank == 0) {
      c.role = "scheduler";
    } else if (*rank <= *servers) {
      c.role = "server";
      c.rank_hint = *rank - 1;
    } else {
      c.role = "worker";
      c.rank_hint = *rank - 1 - *servers;
    }
  }
  if (c.role != "scheduler" && c.role != "server" && c.role != "worker")
    return bad("DMLC_ROLE=\"" + c.role + "\": expected scheduler, server or worker");
  if (!servers) return bad("DMLC_NUM_SERVER is not set");
  if (!workers) return bad("DMLC_NUM_WORKER is not set");
  if (!port) return bad("DMLC_PS_ROOT_PORT is not set");
  auto root = env("DMLC_PS_ROOT_URI");
  if (!root || root->empty()) return bad("DMLC_PS_ROOT_URI is not set");
  c.root_host = *root;
  c.root_port = static_cast<std::uint16_t>(*port);
  c.num_servers = static_cast<std::uint32_t>(*servers);
  c.num_workers = static_cast<std::uint32_t>(*workers);
  if (bound) c.big_array_bound = static_cast<std::uint64_t>(*bound);
  if (timeout) c.connect_timeout = std::chrono::milliseconds(*timeout);
  if (auto id = env("KVACTOR_CLUSTER_ID"); id && !id->empty()) c.cluster_id = *id;
  if (auto h = env("KVACTOR_NODE_HOST"); h && !h->empty()) c.node_host = *h;

  if (auto s = env("KVACTOR_SECRET"); s && !s->empty()) {
    c.secret = *s;
  } else if (auto f = env("KVACTOR_SECRET_FILE"); f && !f->empty()) {
    std::ifstream in(*f, std::ios::binary);
    if (!in) return bad("KVACTOR_SECRET_FILE=" + *f + " cannot be read");
    std::ostringstream ss;
    ss << in.rdbuf();
    c.secret = trim(ss.str());
    if (c.secret.empty()) return bad("KVACTOR_SECRET_FILE=" + *f + " is empty");
  } else {
    return bad("no shared secret: set KVACTOR_SECRET or KVACTOR_SECRET_FILE (kvactor-launch "
               "makes one per job)");
  }
  if (c.secret.size() < 16)
    return bad("the shared secret is shorter than 16 bytes; use a long random secret");
  return c;
}

}  // namespace kvactor::detail
