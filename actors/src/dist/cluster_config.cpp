#include "cluster_config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <vector>

#include "node_address.hpp"

namespace kvactor::detail {

namespace {

// A secret file holds one line; anything much longer is not what the user meant to name.
constexpr std::size_t kMaxSecretFileBytes = 64 * 1024;

status bad(const std::string& what) {
  return status{errc::invalid_argument, what};
}

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
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' '))
    s.pop_back();
  return s;
}

}  // namespace

result<int> open_private_file(const std::string& path, const std::string& name) {
  // O_NOFOLLOW is not used: a secret kept behind a symlink is common (e.g. mounted secrets);
  // the mode that counts is the file's, which fstat of the opened file gives without a race.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return bad(name + " cannot be read: " + std::strerror(errno));
  struct ::stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return bad(name + " is not a regular file");
  }
  // As ssh does for private keys: a secret others can read is no secret, and one others can
  // write lets them choose it.
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return bad(name + " has mode " + mode +
               ": it must not be accessible by group or others (chmod 600 " + path + ")");
  }
  return fd;
}

result<std::string> read_secret_file(const std::string& path) {
  const std::string name = "KVACTOR_SECRET_FILE=" + path;
  auto opened = open_private_file(path, name);
  if (!opened) return opened.error();
  const int fd = *opened;
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return bad(name + " cannot be read: " + std::strerror(err));
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > kMaxSecretFileBytes) {
      ::close(fd);
      return bad(name + " is larger than " + std::to_string(kMaxSecretFileBytes) +
                 " bytes; a secret file holds one line");
    }
  }
  ::close(fd);
  text = trim(std::move(text));
  if (text.empty()) return bad(name + " is empty");
  return text;
}

env_lookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    if (const char* v = std::getenv(name.c_str())) return std::string{v};
    return std::nullopt;
  };
}

result<cluster_config> read_cluster_config(const env_lookup& env) {
  // Every problem is collected, so that a newcomer fixes the environment in one go instead of
  // meeting one missing variable per run.
  std::vector<std::string> problems;
  auto get_int = [&](const std::string& name, std::int64_t lo, std::int64_t hi) {
    std::optional<std::int64_t> out;
    auto v = env(name);
    if (!v) return out;
    out = parse_int(*v, lo, hi);
    if (!out)
      problems.push_back(name + "=\"" + *v + "\" is not a whole number in [" + std::to_string(lo) +
                         ", " + std::to_string(hi) + "]");
    return out;
  };
  // The first of several alternative variables that is set (each one checked as it is read).
  auto first_int = [&](std::initializer_list<const char*> names, std::int64_t lo, std::int64_t hi) {
    std::optional<std::int64_t> out;
    for (const char* name : names) {
      if (!env(name)) continue;
      out = get_int(name, lo, hi);
      break;
    }
    return out;
  };

  cluster_config c;
  auto servers = get_int("DMLC_NUM_SERVER", 1, 4096);
  auto workers = get_int("DMLC_NUM_WORKER", 1, 65536);
  const auto port = get_int("DMLC_PS_ROOT_PORT", 1, 65535);
  const auto bound = first_int({"KVACTOR_BIGARRAY_BOUND", "MXNET_KVSTORE_BIGARRAY_BOUND"}, 1,
                               std::int64_t{1} << 50);
  const auto timeout = get_int("KVACTOR_CONNECT_TIMEOUT_MS", 1, 3600000);
  const auto max_message = get_int("KVACTOR_MAX_MESSAGE_BYTES", 4096, std::int64_t{4} << 30);
  const auto fusion_key = get_int("KVACTOR_FUSION_KEY_BYTES", 0, std::int64_t{1} << 30);
  const auto fusion_bytes = get_int("KVACTOR_FUSION_BYTES", 1, std::int64_t{1} << 30);
  const auto fusion_window = get_int("KVACTOR_FUSION_WINDOW_US", 0, 1000000);
  const bool servers_set = env("DMLC_NUM_SERVER").has_value();
  const bool workers_set = env("DMLC_NUM_WORKER").has_value();

  std::optional<std::int64_t> rank, size;
  if (auto role = env("DMLC_ROLE")) {
    c.role = *role;
    if (c.role != "scheduler" && c.role != "server" && c.role != "worker")
      problems.push_back("DMLC_ROLE=\"" + c.role + "\": expected scheduler, server or worker");
  } else {
    // Placed by mpirun or Slurm: the rank decides the role.
    rank = first_int({"OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"}, 0, 1 << 20);
    size = first_int({"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"}, 1, 1 << 20);
    if (!rank)
      problems.push_back(
          "DMLC_ROLE is not set (and no mpirun or Slurm rank is): this process needs "
          "DMLC_ROLE=scheduler|server|worker, e.g. from kvactor-launch");
  }
  const bool from_ranks = rank.has_value();
  // Unset here; a set but malformed value was reported when read.
  if (!servers_set)
    problems.push_back(from_ranks ? "DMLC_NUM_SERVER must be set when ranks come from mpirun/Slurm"
                                  : "DMLC_NUM_SERVER is not set");
  if (!workers_set) {
    if (!from_ranks)
      problems.push_back("DMLC_NUM_WORKER is not set");
    else if (servers && size && *size >= 2 + *servers)
      workers = *size - 1 - *servers;
    else if (servers)  // without a server count the job size cannot be split at all
      problems.push_back(
          "DMLC_NUM_WORKER is not set and the job size (OMPI_COMM_WORLD_SIZE, PMI_SIZE or "
          "SLURM_NTASKS) does not leave room for workers");
  }
  if (from_ranks && servers) {
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
  if (!env("DMLC_PS_ROOT_PORT")) problems.push_back("DMLC_PS_ROOT_PORT is not set");
  const auto root = env("DMLC_PS_ROOT_URI");
  if (!root || root->empty()) problems.push_back("DMLC_PS_ROOT_URI is not set");

  if (auto s = env("KVACTOR_SECRET"); s && !s->empty()) {
    c.secret = *s;
  } else if (auto f = env("KVACTOR_SECRET_FILE"); f && !f->empty()) {
    auto s = read_secret_file(*f);
    if (s)
      c.secret = *s;
    else
      problems.push_back(s.error().message());
  } else {
    problems.push_back(
        "no shared secret: set KVACTOR_SECRET or KVACTOR_SECRET_FILE (kvactor-launch makes "
        "one per job)");
  }
  // Checked where they are used only: workers may get the variables without the directories.
  for (const char* var : {"KVACTOR_PROFILE_DIR", "KVACTOR_STATES_DIR"}) {
    auto d = env(var);
    if (!d || d->empty() || c.role != "server") continue;
    struct ::stat st {};
    if (::stat(d->c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      problems.push_back(std::string(var) + "=" + *d + " is not a directory");
  }
  const auto tls = env("KVACTOR_TLS");
  if (tls && *tls != "on" && *tls != "off" && *tls != "auto" && !tls->empty())
    problems.push_back("KVACTOR_TLS=\"" + *tls + "\": expected on, off or auto");
  // Certificates: all three or none; given, they mean TLS (unless it is explicitly off, a
  // contradiction worth a question rather than a guess).
  const auto cert = env("KVACTOR_TLS_CERT");
  const auto key = env("KVACTOR_TLS_KEY");
  const auto ca = env("KVACTOR_TLS_CA");
  const int certs_given = (cert && !cert->empty()) + (key && !key->empty()) + (ca && !ca->empty());
  if (certs_given != 0 && certs_given != 3)
    problems.push_back("KVACTOR_TLS_CERT, KVACTOR_TLS_KEY and KVACTOR_TLS_CA go together: " +
                       std::to_string(certs_given) + " of 3 are set");
  if (certs_given == 3 && tls && *tls == "off")
    problems.push_back("KVACTOR_TLS_CERT/KEY/CA are set but KVACTOR_TLS=off");
  if (certs_given == 3) {
    auto opened = open_private_file(*key, "KVACTOR_TLS_KEY=" + *key);
    if (opened)
      ::close(*opened);
    else
      problems.push_back(opened.error().message());
  }
  if (!c.secret.empty() && c.secret.size() < 16)
    problems.push_back("the shared secret is shorter than 16 bytes; use a long random secret");

  if (problems.size() == 1) return bad(problems.front());
  if (!problems.empty()) {
    std::string all =
        std::to_string(problems.size()) + " problems with the cluster's environment: ";
    for (std::size_t i = 0; i < problems.size(); ++i)
      all += (i ? "; " : "") + problems[i];
    return bad(all);
  }
  c.root_host = *root;
  c.root_port = static_cast<std::uint16_t>(*port);
  c.num_servers = static_cast<std::uint32_t>(*servers);
  c.num_workers = static_cast<std::uint32_t>(*workers);
  if (bound) c.big_array_bound = static_cast<std::uint64_t>(*bound);
  if (timeout) c.connect_timeout = std::chrono::milliseconds(*timeout);
  if (max_message) c.max_message_bytes = static_cast<std::uint64_t>(*max_message);
  if (fusion_key) c.fusion_key_bytes = static_cast<std::uint64_t>(*fusion_key);
  if (fusion_bytes) c.fusion_bytes = static_cast<std::uint64_t>(*fusion_bytes);
  if (fusion_window) c.fusion_window = std::chrono::microseconds(*fusion_window);
  if (auto id = env("KVACTOR_CLUSTER_ID"); id && !id->empty()) c.cluster_id = *id;
  if (auto h = env("KVACTOR_NODE_HOST"); h && !h->empty()) c.node_host = *h;
  if (auto d = env("KVACTOR_PROFILE_DIR"); d && !d->empty()) c.profile_dir = *d;
  if (auto d = env("KVACTOR_STATES_DIR"); d && !d->empty()) c.states_dir = *d;
  // auto: every node of a local-mode job is on this host, where nobody is on the path.
  c.tls = tls && *tls == "on"    ? true
          : tls && *tls == "off" ? false
          : certs_given == 3     ? true
                                 : !is_loopback_name(c.root_host);
  if (certs_given == 3) {
    c.tls_cert_file = *cert;
    c.tls_key_file = *key;
    c.tls_ca_file = *ca;
  }
  return c;
}

}  // namespace kvactor::detail
