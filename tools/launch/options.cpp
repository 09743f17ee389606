#include "options.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace kvactor::launch {

namespace {

// Limits match what the library accepts (actors/src/dist/cluster_config.cpp).
constexpr int kMaxWorkers = 65536;
constexpr int kMaxServers = 4096;

int parse_count(const std::string& name, const std::string& text, int lo, int hi) {
  errno = 0;
  char* end = nullptr;
  long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || v < lo || v > hi)
    throw usage_error(name + " needs a whole number from " + std::to_string(lo) + " to " +
                      std::to_string(hi) + ", got '" + text + "'");
  return static_cast<int>(v);
}

double parse_seconds(const std::string& name, const std::string& text, bool allow_zero) {
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  // A week is far beyond any job this tool runs and keeps deadline arithmetic in range.
  if (text.empty() || *end != '\0' || errno != 0 || !std::isfinite(v) || v < 0 ||
      (v == 0 && !allow_zero) || v > 7 * 24 * 3600.0)
    throw usage_error(name + " needs a number of seconds" + (allow_zero ? "" : " above 0") +
                      ", got '" + text + "'");
  return v;
}

bool valid_env_name(const std::string& k) {
  if (k.empty() || (k[0] >= '0' && k[0] <= '9')) return false;
  for (char c : k)
    if (!(c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
      return false;
  return true;
}

std::pair<std::string, std::string> parse_env(const std::string& text) {
  // K=V; MXNet's launch.py writes K:V, accepted when there is no '='.
  auto sep = text.find('=');
  if (sep == std::string::npos) sep = text.find(':');
  if (sep == std::string::npos) throw usage_error("--env needs NAME=VALUE, got '" + text + "'");
  std::string k = text.substr(0, sep), v = text.substr(sep + 1);
  if (!valid_env_name(k)) throw usage_error("--env: '" + k + "' is not a variable name");
  for (const auto& r : reserved_env_names())
    if (k == r) throw usage_error("--env cannot set " + k + ": kvactor-launch sets it itself");
  return {k, v};
}

// Blanks in a hostfile line: the same set trims the line and separates its words, so that a
// host never keeps one (the fuzzer found "a\r b" giving the host "a\r").
constexpr const char* kBlanks = " \t\r\n\v\f";

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(kBlanks);
  if (b == std::string::npos) return {};
  auto e = s.find_last_not_of(kBlanks);
  return s.substr(b, e - b + 1);
}

}  // namespace

const std::vector<std::string>& reserved_env_names() {
  static const std::vector<std::string> names = {
      "DMLC_ROLE",       "DMLC_PS_ROOT_URI",   "DMLC_PS_ROOT_PORT", "DMLC_NUM_SERVER",
      "DMLC_NUM_WORKER", "KVACTOR_CLUSTER_ID", "KVACTOR_SECRET",    "KVACTOR_LAUNCHER"};
  return names;
}

options parse_options(int argc, char** argv) {
  options o;
  bool workers_given = false, servers_given = false, launcher_given = false, dashdash = false;
  std::string server_cmd_text;
  bool server_cmd_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      dashdash = true;
      o.program.assign(argv + i + 1, argv + argc);
      break;
    }
    std::string name = arg, inline_value;
    bool has_inline = false;
    if (arg.rfind("--", 0) == 0) {
      if (auto eq = arg.find('='); eq != std::string::npos) {
        name = arg.substr(0, eq);
        inline_value = arg.substr(eq + 1);
        has_inline = true;
      }
    }
    auto value = [&]() -> std::string {
      if (has_inline) return inline_value;
      if (i + 1 >= argc) throw usage_error(name + " needs a value");
      return argv[++i];
    };
    if (name == "-h" || name == "--help") {
      o.help = true;
      return o;
    } else if (name == "-n" || name == "--num-workers") {
      o.num_workers = parse_count(name, value(), 1, kMaxWorkers);
      workers_given = true;
    } else if (name == "-s" || name == "--num-servers") {
      o.num_servers = parse_count(name, value(), 1, kMaxServers);
      servers_given = true;
    } else if (name == "--launcher") {
      auto v = value();
      if (v == "local")
        o.launcher = launcher_kind::local;
      else if (v == "ssh")
        o.launcher = launcher_kind::ssh;
      else
        throw usage_error("--launcher must be local or ssh, got '" + v + "'");
      launcher_given = true;
    } else if (name == "-H" || name == "--hostfile") {
      o.hostfile = value();
      if (o.hostfile.empty()) throw usage_error(name + " needs a file name");
    } else if (name == "--env") {
      o.env.push_back(parse_env(value()));
    } else if (name == "--server-cmd") {
      server_cmd_text = value();
      server_cmd_given = true;
    } else if (name == "--port") {
      o.port = parse_count(name, value(), 1, 65535);
    } else if (name == "--timeout") {
      o.timeout_s = parse_seconds(name, value(), false);
    } else if (name == "--grace") {
      o.grace_s = parse_seconds(name, value(), true);
    } else if (!arg.empty() && arg[0] == '-') {
      throw usage_error("unknown option '" + arg + "'");
    } else {
      throw usage_error("unexpected argument '" + arg + "': put the program after '--'");
    }
  }
  if (!dashdash) throw usage_error("missing '--' before the program to run");
  if (o.program.empty()) throw usage_error("no program after '--'");
  if (!workers_given) throw usage_error("missing -n W (the number of workers)");
  if (!servers_given) o.num_servers = std::min(o.num_workers, kMaxServers);
  if (server_cmd_given) {
    o.server_cmd = shell_split(server_cmd_text);
    if (o.server_cmd.empty()) throw usage_error("--server-cmd is empty");
  }
  // As in MXNet's launch.py, a hostfile means ssh unless --launcher says otherwise.
  if (!launcher_given && !o.hostfile.empty()) o.launcher = launcher_kind::ssh;
  if (o.launcher == launcher_kind::local && !o.hostfile.empty())
    throw usage_error("-H/--hostfile is only used with --launcher ssh");
  if (o.launcher == launcher_kind::ssh) {
    if (o.hostfile.empty()) throw usage_error("--launcher ssh needs -H HOSTFILE");
    o.hosts = read_hostfile(o.hostfile);
  }
  return o;
}

std::vector<std::string> read_hostfile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw usage_error("cannot read hostfile '" + path + "': " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw usage_error("cannot read hostfile '" + path + "'");
  return parse_hostfile_text(text.str(), path);
}

std::vector<std::string> parse_hostfile_text(const std::string& text, const std::string& origin) {
  std::istringstream in(text);
  std::vector<std::string> hosts;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    line = trim(line);
    if (line.empty()) continue;
    // First word only: "host slots=4" (MPICH/Open MPI style) names the host first.
    std::string host = line.substr(0, line.find_first_of(kBlanks));
    if (auto colon = host.find(':');
        colon != std::string::npos && host.find(':', colon + 1) == std::string::npos &&
        colon + 1 < host.size() &&
        host.find_first_not_of("0123456789", colon + 1) == std::string::npos)
      host.erase(colon);
    // A leading '-' would reach ssh as an option; control bytes belong in no host name and
    // would reach ssh's command line and the launcher's log lines.
    const bool control = std::any_of(host.begin(), host.end(), [](char c) {
      return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
    });
    if (host.empty() || host[0] == '-' || control)
      throw usage_error("hostfile '" + origin + "' line " + std::to_string(line_no) +
                        ": bad host '" + host + "'");
    hosts.push_back(host);
  }
  if (hosts.empty()) throw usage_error("hostfile '" + origin + "' names no host");
  return hosts;
}

std::vector<std::string> shell_split(std::string_view text) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) words.push_back(std::move(cur));
      cur.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\'') {
      auto end = text.find('\'', i + 1);
      if (end == std::string_view::npos) throw usage_error("unbalanced ' in --server-cmd");
      cur.append(text.substr(i + 1, end - i - 1));
      i = end;
    } else if (c == '"') {
      std::size_t j = i + 1;
      for (; j < text.size() && text[j] != '"'; ++j) {
        if (text[j] == '\\' && j + 1 < text.size() && std::strchr("\"\\$`", text[j + 1]) != nullptr)
          ++j;
        cur += text[j];
      }
      if (j >= text.size()) throw usage_error("unbalanced \" in --server-cmd");
      i = j;
    } else if (c == '\\') {
      if (i + 1 >= text.size()) throw usage_error("--server-cmd ends with a backslash");
      cur += text[++i];
    } else {
      cur += c;
    }
  }
  if (in_word) words.push_back(std::move(cur));
  return words;
}

std::string shell_quote(std::string_view word) {
  bool safe = !word.empty();
  for (char c : word)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          std::strchr("_@%+=:,./-", c) != nullptr)) {
      safe = false;
      break;
    }
  if (safe) return std::string(word);
  std::string q = "'";
  for (char c : word) {
    if (c == '\'')
      q += "'\\''";
    else
      q += c;
  }
  q += '\'';
  return q;
}

std::string usage_text() {
  return "Usage: kvactor-launch -n W [-s S] [--launcher local|ssh] [-H HOSTFILE] [--env K=V]...\n"
         "                      [--server-cmd \"CMD ARGS\"] [--port P] [--timeout SECONDS]\n"
         "                      [--grace SECONDS] -- PROGRAM [ARGS...]\n"
         "Run 'kvactor-launch --help' for details.\n";
}

std::string help_text() {
  return R"(Usage: kvactor-launch -n W [-s S] [--launcher local|ssh] [-H HOSTFILE] [--env K=V]...
                      [--server-cmd "CMD ARGS"] [--port P] [--timeout SECONDS]
                      [--grace SECONDS] -- PROGRAM [ARGS...]

Starts a distributed kvactor (or MXNet-style) job: one scheduler, S servers and W workers.
Workers run PROGRAM ARGS. The scheduler and the servers run --server-cmd if given, else the
program kvactor-server from the directory kvactor-launch itself is in, else PROGRAM ARGS
(MXNet style: one binary that takes its role from DMLC_ROLE).

Options:
  -n, --num-workers W   number of workers, 1 to 65536 (required)
  -s, --num-servers S   number of servers, 1 to 4096 (default: W, as MXNet's launch.py)
  --launcher MODE       local: every process on this machine, on loopback (the default
                        without -H); ssh: on the hosts of HOSTFILE (the default with -H)
  -H, --hostfile FILE   one host per line ([user@]host; "host:slots" and "host slots=N"
                        are accepted, the slots ignored); blank lines and # comments are
                        skipped. The scheduler runs on the first host; servers and workers
                        go round robin over all hosts, each list starting at the first.
  --env K=V             set K=V for every process (repeatable; K:V is accepted too)
  --server-cmd "CMD"    command line of the scheduler and the servers, split into words
                        like a shell does ('...', "...", backslash; no expansions)
  --port P              DMLC_PS_ROOT_PORT (default: a port free on this machine now)
  --timeout SECONDS     stop the whole job after SECONDS, exit status 124 (default: none)
  --grace SECONDS       once every worker has exited 0, how long the scheduler and the
                        servers may take to exit by themselves before they are stopped
                        and the job fails (default: 10)
  -h, --help            print this text

Environment of every process:
  DMLC_ROLE             scheduler, server or worker
  DMLC_PS_ROOT_URI      127.0.0.1 (local) or the first host of HOSTFILE without user@ (ssh)
  DMLC_PS_ROOT_PORT     the port above
  DMLC_NUM_SERVER       S
  DMLC_NUM_WORKER       W
  KVACTOR_CLUSTER_ID    16 random hex digits, the same for every process of the job
  KVACTOR_SECRET        64 random hex digits from /dev/urandom, new for every job; never
                        printed, and in ssh mode never on a command line (see below)
  KVACTOR_LAUNCHER      1
and every --env. Ranks are assigned by the scheduler, not by the launcher. In local mode
the servers also get KVACTOR_STATES_DIR=<the current directory> (where they save and load
optimizer states), unless KVACTOR_STATES_DIR is in the environment or given with --env; in
ssh mode set it yourself (e.g. --env KVACTOR_STATES_DIR=/shared/ckpt), or servers refuse
save_optimizer_states.

Output: each line a process prints is printed again with "[scheduler] ", "[server I] " or
"[worker I] " in front (I counts in launch order; it is not the rank), its stdout on
stdout and its stderr on stderr, whole lines only. A last line without a newline is
printed when the process closes its output; lines over 64 KiB are split. Standard input
is /dev/null (in ssh mode: the secret, then end of file).

Exit status:
  0         every worker exited 0, then the scheduler and the servers exited 0
  N         the first worker that failed exited with N (128+S when killed by signal S)
  1         the scheduler or a server failed, or did not exit within --grace
  2         bad arguments
  124       --timeout expired
  127       a program could not be started
  129, 130, 143  kvactor-launch received SIGHUP, SIGINT or SIGTERM
When a process fails, kvactor-launch sends SIGTERM to the process group of every process
it started (each runs in its own group), SIGKILL 2 s later, and returns once all of them
and their children are gone. Whatever the processes leave running when the job ends, even
in another process group, is killed too. When kvactor-launch itself is killed, its
children get SIGKILL from the kernel (Linux parent-death signal). A second SIGINT or
SIGTERM during the teardown sends SIGKILL at once.

ssh mode: each process runs as
  $KVACTOR_SSH -o BatchMode=yes -o StrictHostKeyChecking=accept-new HOST \
    'read -r KVACTOR_SECRET && export KVACTOR_SECRET && cd DIR && exec env K=V... CMD ARGS'
where every word is quoted for sh, DIR is the current directory, and the secret is written
to ssh's standard input, so it never appears on a command line (ssh itself does not get
it in its environment either). KVACTOR_SSH names the ssh program (default: ssh). The
login shell on the hosts must be sh-compatible; DIR and the programs must exist there
(kvactor-server is looked for on this machine only); --env values do appear on the
remote command line. If ssh is stopped, a remote process notices only through its peers
or its output going away.

Without kvactor-launch (mpirun, srun, or any tool that starts 1+S+W copies): leave
DMLC_ROLE unset and export DMLC_PS_ROOT_URI (the host of rank 0), DMLC_PS_ROOT_PORT,
DMLC_NUM_SERVER and DMLC_NUM_WORKER, and KVACTOR_SECRET (or KVACTOR_SECRET_FILE, a file
readable only by you on every host). The rank from OMPI_COMM_WORLD_RANK, PMI_RANK or
SLURM_PROCID picks the role: rank 0 is the scheduler, ranks 1..S the servers, the rest
workers. For example, 2 servers and 4 workers:
  export DMLC_PS_ROOT_URI=node1 DMLC_PS_ROOT_PORT=9091 DMLC_NUM_SERVER=2 DMLC_NUM_WORKER=4
  export KVACTOR_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
  mpirun -np 7 -x DMLC_PS_ROOT_URI -x DMLC_PS_ROOT_PORT -x DMLC_NUM_SERVER \
         -x DMLC_NUM_WORKER -x KVACTOR_SECRET ./train
  mpirun -np 3 -x ... kvactor-server : -np 4 -x ... ./train      (separate programs)
  srun -n 7 --export=ALL ./train
)";
}

}  // namespace kvactor::launch
