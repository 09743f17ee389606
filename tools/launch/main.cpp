// kvactor-launch: starts a scheduler, servers and workers with MXNet's DMLC_* environment,
// locally or over ssh, and supervises them (see --help, text in options.cpp).
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kvactor/detail/local_port.hpp"
#include "kvactor/detail/spawn.hpp"
#include "options.hpp"
#include "supervisor.hpp"

namespace {

using namespace kvactor::launch;

void print(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

int fail(const std::string& msg) {
  print(2, "kvactor-launch: " + msg + "\n");
  return 1;
}

// With fd 0, 1 or 2 closed, a pipe could land there and be clobbered by dup2 in a child.
void ensure_std_fds() {
  for (int fd = 0; fd < 3; ++fd)
    if (::fcntl(fd, F_GETFD) < 0) ::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
}

// Two pipes per process: large local jobs need more than the usual soft limit of 1024.
void raise_fd_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
}

bool random_hex(std::size_t bytes, std::string& out) {
  int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::vector<unsigned char> buf(bytes);
  std::size_t got = 0;
  while (got < bytes) {
    ssize_t n = ::read(fd, buf.data() + got, bytes - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (got != bytes) return false;
  static const char digits[] = "0123456789abcdef";
  out.clear();
  for (unsigned char b : buf) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return true;
}

// kvactor-server installed next to this executable, or "" when there is none.
std::string server_next_to_launcher() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return {};
  std::string self(buf, static_cast<std::size_t>(n));
  auto slash = self.rfind('/');
  if (slash == std::string::npos) return {};
  std::string candidate = self.substr(0, slash + 1) + "kvactor-server";
  struct stat st {};
  if (::stat(candidate.c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
      ::access(candidate.c_str(), X_OK) != 0)
    return {};
  return candidate;
}

std::string current_dir() {
  std::vector<char> buf(PATH_MAX);
  if (::getcwd(buf.data(), buf.size()) == nullptr) return {};
  return buf.data();
}

}  // namespace

int main(int argc, char** argv) {
  ensure_std_fds();
  options o;
  try {
    o = parse_options(argc, argv);
  } catch (const usage_error& e) {
    print(2, std::string("kvactor-launch: ") + e.what() + "\n" + usage_text());
    return 2;
  }
  if (o.help) {
    print(1, help_text());
    return 0;
  }
  raise_fd_limit();

  const bool ssh = o.launcher == launcher_kind::ssh;
  std::string cluster_id, secret;
  if (!random_hex(8, cluster_id) || !random_hex(32, secret))
    return fail(std::string("cannot read /dev/urandom: ") + std::strerror(errno));
  // Another process may take the port before the scheduler binds it (--port is the way out
  // when that matters); one outside the ephemeral range is at least not handed out by the
  // kernel meanwhile.
  const int port = o.port != 0 ? o.port : kvactor::detail::unused_tcp_port();
  if (port <= 0) return fail(std::string("cannot find a free port: ") + std::strerror(errno));
  std::string root_uri = "127.0.0.1";
  if (ssh) {
    root_uri = o.hosts.front();
    if (auto at = root_uri.rfind('@'); at != std::string::npos) root_uri.erase(0, at + 1);
  }

  std::vector<std::string> server_argv = o.server_cmd;
  if (server_argv.empty()) {
    if (auto server = server_next_to_launcher(); !server.empty())
      server_argv = {server};
    else
      server_argv = o.program;  // MXNet style: one binary, the role from DMLC_ROLE
  }

  const std::string cwd = current_dir();
  if (ssh && cwd.empty()) return fail(std::string("getcwd: ") + std::strerror(errno));
  std::string ssh_program = "ssh";
  if (ssh) {
    if (const char* s = std::getenv("KVACTOR_SSH"); s != nullptr && *s != '\0') ssh_program = s;
  }
  // Servers save optimizer states only under KVACTOR_STATES_DIR; a local job that did not
  // choose one keeps them where it was launched, as before that rule. Set, even empty, it is
  // the user's choice.
  bool states_dir_given = std::getenv("KVACTOR_STATES_DIR") != nullptr || cwd.empty();
  for (const auto& [k, v] : o.env)
    states_dir_given |= k == "KVACTOR_STATES_DIR";

  // Locally every process gets our environment with the job's variables on top; over ssh
  // the ssh process gets ours minus any secret, and the job's travel on the command line,
  // except the secret, which goes through ssh's stdin.
  std::vector<std::string> ours = reserved_env_names();
  for (const auto& [k, v] : o.env)
    ours.push_back(k);
  const std::vector<std::string> local_base = kvactor::detail::environment_with({}, ours);
  const std::vector<std::string> ssh_base =
      kvactor::detail::environment_with({}, {"KVACTOR_SECRET"});

  std::vector<process_spec> specs;
  auto add = [&](const std::string& role, const std::string& name, bool worker,
                 const std::vector<std::string>& cmd, const std::string& host) {
    std::vector<std::string> vars = {"DMLC_ROLE=" + role,
                                     "DMLC_PS_ROOT_URI=" + root_uri,
                                     "DMLC_PS_ROOT_PORT=" + std::to_string(port),
                                     "DMLC_NUM_SERVER=" + std::to_string(o.num_servers),
                                     "DMLC_NUM_WORKER=" + std::to_string(o.num_workers),
                                     "KVACTOR_CLUSTER_ID=" + cluster_id,
                                     "KVACTOR_LAUNCHER=1"};
    for (const auto& [k, v] : o.env)
      vars.push_back(k + "=" + v);
    if (!ssh && role == "server" && !states_dir_given) vars.push_back("KVACTOR_STATES_DIR=" + cwd);
    process_spec p;
    p.name = name;
    p.worker = worker;
    if (!ssh) {
      p.argv = cmd;
      p.env = local_base;
      p.env.insert(p.env.end(), vars.begin(), vars.end());
      p.env.push_back("KVACTOR_SECRET=" + secret);
    } else {
      std::string remote = "read -r KVACTOR_SECRET && export KVACTOR_SECRET && cd " +
                           shell_quote(cwd) + " && exec env";
      for (const auto& v : vars)
        remote += " " + shell_quote(v);
      for (const auto& a : cmd)
        remote += " " + shell_quote(a);
      p.argv = {ssh_program, "-o",  "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new",
                host,        remote};
      p.env = ssh_base;
      p.stdin_data = secret + "\n";
    }
    specs.push_back(std::move(p));
  };
  auto host_of = [&](int i) {
    return ssh ? o.hosts[static_cast<std::size_t>(i) % o.hosts.size()] : std::string();
  };
  add("scheduler", "scheduler", false, server_argv, host_of(0));
  for (int i = 0; i < o.num_servers; ++i)
    add("server", "server " + std::to_string(i), false, server_argv, host_of(i));
  for (int i = 0; i < o.num_workers; ++i)
    add("worker", "worker " + std::to_string(i), true, o.program, host_of(i));

  supervise_settings settings;
  settings.timeout_s = o.timeout_s;
  settings.grace_s = o.grace_s;
  return supervise(std::move(specs), settings);
}
