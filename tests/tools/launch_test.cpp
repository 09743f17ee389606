// kvactor-launch run for real: launch_probe stands in for the scheduler, the servers and the
// workers and reports what it got. Synchronisation is by the output the probes print and by
// FIFOs; the only bound on time is a limit that fails a test going wrong.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

const std::string kLaunch = KVACTOR_LAUNCH;
const std::string kProbe = KVACTOR_LAUNCH_PROBE;
// Fails a test that goes wrong instead of hanging it; passing tests take a fraction of it.
constexpr auto kLimit = std::chrono::seconds(20);

// One word for sh, as --server-cmd and the fake ssh read it.
std::string q(const std::string& word) {
  std::string r = "'";
  for (char c : word)
    r += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return r + "'";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& text, fs::perms mode) {
  std::ofstream(path, std::ios::binary) << text;
  fs::permissions(path, mode);
}

bool is_hex(const std::string& s, std::size_t n) {
  return s.size() == n && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

bool starts_with(const std::string& s, const std::string& p) {
  return s.rfind(p, 0) == 0;
}

// Alive and not a zombie waiting for its reaper.
bool running(pid_t pid) {
  if (::kill(pid, 0) != 0) return false;
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto rp = stat.rfind(')');
  return !(rp != std::string::npos && rp + 2 < stat.size() && stat[rp + 2] == 'Z');
}

// Waits, without polling in a loop, until pid has exited; false after the limit.
bool wait_gone(pid_t pid, std::chrono::milliseconds limit) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return errno == ESRCH;
  pollfd p{fd, POLLIN, 0};
  int n = ::poll(&p, 1, static_cast<int>(limit.count()));
  ::close(fd);
  return n == 1;
}

class temp_dir {
 public:
  explicit temp_dir(const std::string& stem = "kvactor-launch-test") {
    std::string t = (fs::temp_directory_path() / (stem + ".XXXXXX")).string();
    if (::mkdtemp(t.data()) != nullptr) path_ = fs::canonical(t).string();
    EXPECT_FALSE(path_.empty()) << "mkdtemp: " << std::strerror(errno);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A probe's report, as the launcher printed it again.
struct report {
  std::string prefix;  // "scheduler", "server 0", "worker 2"
  std::map<std::string, std::string> field;
  std::string args;
};

// kvactor-launch in a child process, its stdout and stderr read through pipes.
class launch_run {
 public:
  explicit launch_run(const std::vector<std::string>& args,
                      const std::vector<std::string>& env = {}, const std::string& cwd = {},
                      const std::string& launcher = kLaunch) {
    std::vector<std::string> argv_s = {launcher};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::set<std::string> overridden;
    for (const auto& kv : env)
      overridden.insert(kv.substr(0, kv.find('=')));
    std::vector<std::string> env_s;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string kv = *e;
      if (overridden.count(kv.substr(0, kv.find('='))) == 0) env_s.push_back(kv);
    }
    env_s.insert(env_s.end(), env.begin(), env.end());
    std::vector<char*> argv, envp;
    for (auto& a : argv_s)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env_s)
      envp.push_back(e.data());
    envp.push_back(nullptr);

    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) std::abort();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) ::_exit(126);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    streams_[0].fd = out[0];
    streams_[1].fd = err[0];
    deadline_ = clock_type::now() + kLimit;
  }

  ~launch_run() {
    for (auto& s : streams_)
      if (s.fd >= 0) ::close(s.fd);
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  /// Reads output until pred() holds; false when the output ended or the limit passed first.
  bool read_until(const std::function<bool()>& pred) {
    while (!pred())
      if (!read_some()) return pred();
    return true;
  }

  /// Reads all output, reaps the launcher and returns its exit status (128 + signal).
  int wait() {
    while (read_some()) {
    }
    if (streams_[0].fd >= 0 || streams_[1].fd >= 0) ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    reaped_ = true;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }

  void signal(int sig) { ::kill(pid_, sig); }
  pid_t pid() const { return pid_; }
  const std::vector<std::string>& out_lines() const { return streams_[0].lines; }
  const std::vector<std::string>& err_lines() const { return streams_[1].lines; }
  const std::string& out_text() const { return streams_[0].text; }
  const std::string& err_text() const { return streams_[1].text; }
  std::string output() const { return "stdout:\n" + out_text() + "stderr:\n" + err_text(); }

  std::vector<report> reports() const {
    std::vector<report> r;
    for (const auto& line : out_lines()) {
      auto close = line.find("] probe role=");
      if (line.empty() || line[0] != '[' || close == std::string::npos) continue;
      report rep;
      rep.prefix = line.substr(1, close - 1);
      std::string rest = line.substr(close + 2);
      auto args = rest.find(" args=");
      rep.args = rest.substr(args + 6);
      std::istringstream words(rest.substr(0, args));
      std::string w;
      while (words >> w)
        if (auto eq = w.find('='); eq != std::string::npos)
          rep.field[w.substr(0, eq)] = w.substr(eq + 1);
      r.push_back(std::move(rep));
    }
    return r;
  }

  std::size_t count_out(const std::string& needle) const {
    std::size_t n = 0;
    for (const auto& l : out_lines())
      n += l.find(needle) != std::string::npos;
    return n;
  }

  bool has_err_line(const std::string& line) const {
    for (const auto& l : err_lines())
      if (l == line) return true;
    return false;
  }

  /// Every pid a probe reported: the probes and their grandchildren.
  std::vector<pid_t> probe_pids() const {
    std::vector<pid_t> pids;
    for (const auto& r : reports())
      pids.push_back(std::stoi(r.field.at("pid")));
    for (const auto& l : out_lines())
      if (auto at = l.find("probe-grandchild pid="); at != std::string::npos)
        pids.push_back(std::stoi(l.substr(at + 21)));
    return pids;
  }

 private:
  struct stream {
    int fd = -1;
    std::string text, partial;
    std::vector<std::string> lines;
  };

  bool read_some() {
    pollfd fds[2];
    int n = 0;
    for (auto& s : streams_)
      if (s.fd >= 0) fds[n++] = {s.fd, POLLIN, 0};
    if (n == 0) return false;
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - clock_type::now());
    if (left.count() <= 0 ||
        ::poll(fds, static_cast<nfds_t>(n), static_cast<int>(left.count())) == 0) {
      ADD_FAILURE() << "kvactor-launch took longer than the test's limit\n" << output();
      return false;
    }
    for (auto& s : streams_) {
      if (s.fd < 0) continue;
      pollfd p{s.fd, POLLIN, 0};
      if (::poll(&p, 1, 0) != 1) continue;
      char buf[65536];
      ssize_t got = ::read(s.fd, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        ::close(s.fd);
        s.fd = -1;
        continue;
      }
      s.text.append(buf, static_cast<std::size_t>(got));
      s.partial.append(buf, static_cast<std::size_t>(got));
      for (auto nl = s.partial.find('\n'); nl != std::string::npos; nl = s.partial.find('\n')) {
        s.lines.push_back(s.partial.substr(0, nl));
        s.partial.erase(0, nl + 1);
      }
    }
    return true;
  }

  pid_t pid_ = -1;
  bool reaped_ = false;
  stream streams_[2];
  clock_type::time_point deadline_;
};

// "scheduler" -> "scheduler", "server 1" -> "server", "worker 0" -> "worker".
std::string role_of(const std::string& prefix) {
  return prefix.substr(0, prefix.find(' '));
}

std::vector<std::string> secrets_in(const std::string& dir) {
  std::vector<std::string> secrets;
  for (const auto& e : fs::directory_iterator(dir))
    if (starts_with(e.path().filename().string(), "secret."))
      secrets.push_back(read_file(e.path()));
  return secrets;
}

void expect_all_gone(const std::vector<pid_t>& pids) {
  for (pid_t pid : pids)
    EXPECT_FALSE(running(pid)) << "pid " << pid << " outlived the launcher";
}

void open_gate(const std::string& fifo) {
  int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
  ASSERT_GE(fd, 0) << "nobody waits at " << fifo << ": " << std::strerror(errno);
  ASSERT_EQ(::write(fd, "x", 1), 1);
  ::close(fd);
}

TEST(launch, gives_every_role_the_dmlc_and_kvactor_environment) {
  temp_dir d;
  launch_run r({"-n",
                "3",
                "-s",
                "2",
                "--env",
                "FOO=bar=baz",
                "--env",
                "QUX:a:b",
                "--server-cmd",
                q(kProbe) + " --dir " + q(d.path()) + " --show FOO --show QUX --tail server-tail",
                "--",
                kProbe,
                "--dir",
                d.path(),
                "--show",
                "FOO",
                "--show",
                "QUX",
                "--tail",
                "worker-tail"},
               {"DMLC_ROLE=bogus", "DMLC_NUM_WORKER=99", "KVACTOR_SECRET=inherited-not-hex"});
  ASSERT_EQ(r.wait(), 0) << r.output();

  auto reports = r.reports();
  ASSERT_EQ(reports.size(), 6u) << r.output();
  std::multiset<std::string> prefixes;
  std::set<std::string> clusters, ports;
  for (auto& rep : reports) {
    prefixes.insert(rep.prefix);
    EXPECT_EQ(rep.field["role"], role_of(rep.prefix));
    EXPECT_EQ(rep.field["uri"], "127.0.0.1");
    EXPECT_EQ(rep.field["nserver"], "2");
    EXPECT_EQ(rep.field["nworker"], "3");
    EXPECT_EQ(rep.field["secret"], "ok");
    EXPECT_EQ(rep.field["launcher"], "1");
    EXPECT_EQ(rep.field["FOO"], "bar=baz");
    EXPECT_EQ(rep.field["QUX"], "a:b");
    clusters.insert(rep.field["cluster"]);
    ports.insert(rep.field["port"]);
  }
  EXPECT_EQ(prefixes, (std::multiset<std::string>{"scheduler", "server 0", "server 1", "worker 0",
                                                  "worker 1", "worker 2"}));
  ASSERT_EQ(clusters.size(), 1u);
  EXPECT_TRUE(is_hex(*clusters.begin(), 16)) << *clusters.begin();
  ASSERT_EQ(ports.size(), 1u);
  int port = std::stoi(*ports.begin());
  EXPECT_TRUE(port > 0 && port < 65536);

  // One secret for the whole job, never printed.
  auto secrets = secrets_in(d.path());
  ASSERT_EQ(secrets.size(), 6u);
  for (const auto& s : secrets) {
    EXPECT_EQ(s, secrets[0]);
    EXPECT_EQ(r.out_text().find(s), std::string::npos);
    EXPECT_EQ(r.err_text().find(s), std::string::npos);
  }
  EXPECT_TRUE(is_hex(secrets[0], 64));

  // stdout to stdout, stderr to stderr, each with its prefix; last partial lines flushed.
  for (const auto& p : prefixes) {
    std::string role = role_of(p);
    EXPECT_EQ(r.count_out("[" + p + "] probe role=" + role + " "), 1u) << p;
    bool err_seen = false;
    for (const auto& l : r.err_lines())
      err_seen |= starts_with(l, "[" + p + "] probe-stderr role=" + role);
    EXPECT_TRUE(err_seen) << p << "\n" << r.output();
    std::string tail = role == "worker" ? "worker-tail" : "server-tail";
    EXPECT_EQ(r.count_out("[" + p + "] " + tail), 1u) << r.output();
  }
  for (const auto& l : r.out_lines())
    EXPECT_TRUE(starts_with(l, "[")) << l;
  EXPECT_EQ(r.out_text().find("probe-stderr"), std::string::npos);
}

TEST(launch, each_job_gets_its_own_cluster_id_and_secret) {
  temp_dir d1, d2;
  auto job = [&](const temp_dir& d) {
    launch_run r(
        {"-n", "1", "-s", "1", "--server-cmd", q(kProbe), "--", kProbe, "--dir", d.path()});
    EXPECT_EQ(r.wait(), 0) << r.output();
    auto reports = r.reports();
    return reports.empty() ? std::string() : reports[0].field["cluster"];
  };
  std::string c1 = job(d1), c2 = job(d2);
  EXPECT_TRUE(is_hex(c1, 16) && is_hex(c2, 16));
  EXPECT_NE(c1, c2);
  auto s1 = secrets_in(d1.path()), s2 = secrets_in(d2.path());
  ASSERT_FALSE(s1.empty());
  ASSERT_FALSE(s2.empty());
  EXPECT_NE(s1[0], s2[0]);
}

TEST(launch, port_option_and_as_many_servers_as_workers_by_default) {
  launch_run r({"-n", "2", "--port", "45321", "--server-cmd", q(kProbe), "--", kProbe});
  ASSERT_EQ(r.wait(), 0) << r.output();
  auto reports = r.reports();
  ASSERT_EQ(reports.size(), 5u) << r.output();
  for (auto& rep : reports) {
    EXPECT_EQ(rep.field["port"], "45321");
    EXPECT_EQ(rep.field["nserver"], "2");
  }
  EXPECT_EQ(r.count_out("[server 1] probe role=server"), 1u);
}

TEST(launch, a_failing_worker_stops_the_job_with_its_status) {
  temp_dir d;
  ASSERT_EQ(::mkfifo((d / "fail.gate").c_str(), 0600), 0);
  launch_run r({"-n", "2", "-s", "1", "--server-cmd", q(kProbe) + " --scheduler hang --server hang",
                "--", kProbe, "--dir", d.path(), "--worker", "exit:3@fail"});
  ASSERT_TRUE(r.read_until([&] { return r.reports().size() == 4; })) << r.output();
  auto pids = r.probe_pids();
  std::string failing;
  for (auto& rep : r.reports())
    if (rep.field["winner"] == "1") failing = rep.prefix;
  ASSERT_TRUE(starts_with(failing, "worker "));
  open_gate(d / "fail.gate");

  EXPECT_EQ(r.wait(), 3) << r.output();
  EXPECT_TRUE(
      r.has_err_line("kvactor-launch: " + failing + " exited with status 3; stopping the job"))
      << r.output();
  expect_all_gone(pids);
}

TEST(launch, a_crashing_server_tears_the_job_down) {
  temp_dir d;
  ASSERT_EQ(::mkfifo((d / "crash.gate").c_str(), 0600), 0);
  launch_run r({"-n", "2", "-s", "2", "--server-cmd",
                q(kProbe) + " --dir " + q(d.path()) + " --scheduler hang --server abort@crash",
                "--", kProbe, "--worker", "hang"});
  ASSERT_TRUE(r.read_until([&] { return r.reports().size() == 5; })) << r.output();
  auto pids = r.probe_pids();
  std::string failing;
  for (auto& rep : r.reports())
    if (rep.field["winner"] == "1") failing = rep.prefix;
  ASSERT_TRUE(starts_with(failing, "server "));
  open_gate(d / "crash.gate");

  EXPECT_EQ(r.wait(), 1) << r.output();
  EXPECT_TRUE(r.has_err_line("kvactor-launch: " + failing +
                             " exited with status 134 (signal 6, Aborted); stopping the job"))
      << r.output();
  expect_all_gone(pids);
}

TEST(launch, sigint_stops_every_process_and_its_children) {
  launch_run r({"-n", "2", "-s", "1", "--server-cmd", q(kProbe) + " --scheduler tree --server tree",
                "--", kProbe, "--worker", "tree"});
  ASSERT_TRUE(r.read_until([&] {
    return r.reports().size() == 4 && r.count_out("probe-grandchild pid=") == 4;
  })) << r.output();
  auto pids = r.probe_pids();
  ASSERT_EQ(pids.size(), 8u);
  for (pid_t pid : pids)
    ASSERT_TRUE(running(pid));
  r.signal(SIGINT);

  EXPECT_EQ(r.wait(), 130) << r.output();
  EXPECT_TRUE(r.has_err_line("kvactor-launch: received SIGINT; stopping the job")) << r.output();
  expect_all_gone(pids);
}

TEST(launch, sigterm_is_followed_by_sigkill_for_a_process_that_ignores_it) {
  launch_run r({"-n", "1", "-s", "1", "--server-cmd",
                q(kProbe) + " --scheduler hang --server stubborn", "--", kProbe, "--worker",
                "hang"});
  ASSERT_TRUE(r.read_until([&] { return r.reports().size() == 3; })) << r.output();
  auto pids = r.probe_pids();
  r.signal(SIGTERM);

  EXPECT_EQ(r.wait(), 143) << r.output();
  EXPECT_TRUE(r.has_err_line("kvactor-launch: received SIGTERM; stopping the job")) << r.output();
  EXPECT_TRUE(
      r.has_err_line("kvactor-launch: server 0 still running 2 s after SIGTERM; sending "
                     "SIGKILL"))
      << r.output();
  expect_all_gone(pids);
}

TEST(launch, children_die_with_a_launcher_killed_by_sigkill) {
  // Orphaned probes come to this process, which can then see them die and reap them.
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  launch_run r({"-n", "2", "-s", "1", "--server-cmd", q(kProbe) + " --scheduler hang --server hang",
                "--", kProbe, "--worker", "hang"});
  ASSERT_TRUE(r.read_until([&] { return r.reports().size() == 4; })) << r.output();
  auto pids = r.probe_pids();
  r.signal(SIGKILL);
  EXPECT_EQ(r.wait(), 128 + SIGKILL);
  for (pid_t pid : pids) {
    if (!wait_gone(pid, std::chrono::seconds(5))) {
      ADD_FAILURE() << "pid " << pid << " survived the launcher";
      ::kill(pid, SIGKILL);  // leave nothing behind, even when failing
    }
    ::waitpid(pid, nullptr, 0);
  }
  expect_all_gone(pids);
}

TEST(launch, timeout_stops_the_job_with_124) {
  launch_run r({"-n", "2", "-s", "1", "--timeout", "0.5", "--server-cmd",
                q(kProbe) + " --scheduler hang --server hang", "--", kProbe, "--worker", "hang"});
  EXPECT_EQ(r.wait(), 124) << r.output();
  EXPECT_TRUE(r.has_err_line("kvactor-launch: the job ran past --timeout 0.5 s; stopping it"))
      << r.output();
  expect_all_gone(r.probe_pids());
}

TEST(launch, servers_still_running_after_the_grace_period_fail_the_job) {
  launch_run r({"-n", "2", "-s", "1", "--grace", "0.2", "--server-cmd",
                q(kProbe) + " --scheduler hang --server hang", "--", kProbe});
  EXPECT_EQ(r.wait(), 1) << r.output();
  EXPECT_TRUE(
      r.has_err_line("kvactor-launch: scheduler, server 0 still running 0.2 s after the "
                     "last worker exited; stopping the job"))
      << r.output();
  expect_all_gone(r.probe_pids());
}

TEST(launch, a_failing_server_fails_a_job_whose_workers_succeeded) {
  launch_run r(
      {"-n", "2", "-s", "1", "--server-cmd", q(kProbe) + " --server exit:5", "--", kProbe});
  EXPECT_EQ(r.wait(), 1) << r.output();
  EXPECT_TRUE(r.has_err_line("kvactor-launch: server 0 exited with status 5; stopping the job"))
      << r.output();
}

TEST(launch, a_program_that_cannot_start_stops_the_job_with_127) {
  launch_run r({"-n", "1", "-s", "1", "--server-cmd", q(kProbe) + " --scheduler hang --server hang",
                "--", "/nonexistent/kvactor-probe"});
  EXPECT_EQ(r.wait(), 127) << r.output();
  EXPECT_TRUE(
      r.has_err_line("kvactor-launch: cannot start worker 0 ('/nonexistent/kvactor-probe'): "
                     "No such file or directory; stopping the job"))
      << r.output();
  expect_all_gone(r.probe_pids());
}

TEST(launch, output_lines_are_never_torn_or_mixed) {
  launch_run r({"-n", "4", "-s", "1", "--server-cmd", q(kProbe), "--", kProbe, "--spam", "3000"});
  ASSERT_EQ(r.wait(), 0) << r.err_text();
  std::map<std::string, std::string> prefix_of;  // pid -> prefix
  for (auto& rep : r.reports())
    prefix_of[rep.field["pid"]] = rep.prefix;
  std::map<std::string, long> next;  // pid -> next line number
  const std::string filler(300, 'x');
  std::size_t spam = 0;
  for (const auto& l : r.out_lines()) {
    auto at = l.find("] spam ");
    if (at == std::string::npos) continue;
    ++spam;
    std::istringstream in(l.substr(at + 7));
    std::string pid, rest;
    long n = -1;
    in >> pid >> n >> rest;
    ASSERT_EQ(l.substr(0, at + 1), "[" + prefix_of[pid] + "]") << l;
    ASSERT_EQ(n, next[pid]++) << l;
    ASSERT_EQ(rest, filler) << l;
    ASSERT_TRUE(in.eof() || (in >> std::ws).eof()) << l;
  }
  EXPECT_EQ(spam, 4u * 3000u);
}

TEST(launch, server_cmd_is_split_into_words_like_a_shell_does) {
  launch_run r({"-n", "1", "-s", "1", "--server-cmd",
                q(kProbe) + " --tag 'two words' \"q\\\"d\" back\\ slash ''", "--", kProbe,
                "--from-program"});
  ASSERT_EQ(r.wait(), 0) << r.output();
  for (auto& rep : r.reports())
    EXPECT_EQ(rep.args,
              rep.field["role"] == "worker" ? "--from-program" : "--tag|two words|q\"d|back slash|")
        << rep.prefix;
}

// Runs a copy of the launcher from dir/bin, where a kvactor-server may or may not be.
std::vector<report> roles_of_copied_launcher(const temp_dir& d, bool with_server) {
  fs::create_directories(d / "bin");
  fs::copy_file(kLaunch, d / "bin/kvactor-launch");
  fs::permissions(d / "bin/kvactor-launch", fs::perms::owner_all);
  if (with_server)
    write_file(d / "bin/kvactor-server",
               "#!/bin/sh\nexec " + q(kProbe) + " --from-kvactor-server\n", fs::perms::owner_all);
  launch_run r({"-n", "1", "-s", "1", "--", kProbe, "--from-program"}, {}, {},
               d / "bin/kvactor-launch");
  EXPECT_EQ(r.wait(), 0) << r.output();
  return r.reports();
}

TEST(launch, scheduler_and_servers_run_kvactor_server_from_the_launchers_directory) {
  temp_dir d;
  auto reports = roles_of_copied_launcher(d, true);
  ASSERT_EQ(reports.size(), 3u);
  for (auto& rep : reports)
    EXPECT_EQ(rep.args, rep.field["role"] == "worker" ? "--from-program" : "--from-kvactor-server")
        << rep.prefix;
}

TEST(launch, without_kvactor_server_every_role_runs_the_program) {
  temp_dir d;
  auto reports = roles_of_copied_launcher(d, false);
  ASSERT_EQ(reports.size(), 3u);
  for (auto& rep : reports)
    EXPECT_EQ(rep.args, "--from-program") << rep.prefix;
}

TEST(launch, ssh_mode_quotes_everything_and_sends_the_secret_on_stdin) {
  temp_dir base("kvactor launch ssh");  // a blank in every path
  const std::string cwd = base / "it's here", probe_dir = base / "probe dir",
                    log_dir = base / "ssh logs", hostfile = base / "hosts",
                    fake_ssh = base / "fake ssh";
  for (const auto& p : {cwd, probe_dir, log_dir})
    fs::create_directory(p);
  write_file(hostfile, "# the cluster\nuser@hostA\n\n  hostB:4   # second host\n",
             fs::perms::owner_read | fs::perms::owner_write);
  // Stands in for ssh: records how it was called, then runs the remote command right here.
  write_file(fake_ssh,
             "#!/bin/sh\n"
             "for a in \"$@\"; do host=$last; last=$a; done\n"
             "{ printf 'host=%s secret_in_env=%s\\n' \"$host\" \"${KVACTOR_SECRET+1}\"\n"
             "  printf '%s\\n' \"$@\"; } > \"$FAKE_SSH_LOG_DIR/ssh.$$\"\n"
             "export FAKE_SSH_HOST=\"$host\"\n"
             "exec sh -c \"$last\"\n",
             fs::perms::owner_all);

  launch_run r({"-n",
                "3",
                "-s",
                "2",
                "-H",
                hostfile,
                "--server-cmd",
                q(kProbe) + " --dir " + q(probe_dir) +
                    " --scheduler hang --server hang --show FAKE_SSH_HOST",
                "--",
                kProbe,
                "--dir",
                probe_dir,
                "--worker",
                "hang",
                "--show",
                "FAKE_SSH_HOST",
                "a b",
                "it's",
                "$HOME",
                "x\"y",
                ""},
               {"KVACTOR_SSH=" + fake_ssh, "FAKE_SSH_LOG_DIR=" + log_dir,
                "KVACTOR_SECRET=inherited-not-hex"},
               cwd);
  ASSERT_TRUE(r.read_until([&] { return r.count_out("probe-cwd=") == 6; })) << r.output();

  const std::map<std::string, std::string> expected_host = {
      {"scheduler", "user@hostA"}, {"server 0", "user@hostA"}, {"server 1", "hostB"},
      {"worker 0", "user@hostA"},  {"worker 1", "hostB"},      {"worker 2", "user@hostA"}};
  auto reports = r.reports();
  ASSERT_EQ(reports.size(), 6u);
  for (auto& rep : reports) {
    EXPECT_EQ(rep.field["FAKE_SSH_HOST"], expected_host.at(rep.prefix)) << rep.prefix;
    EXPECT_EQ(rep.field["uri"], "hostA");
    EXPECT_EQ(rep.field["nserver"], "2");
    EXPECT_EQ(rep.field["nworker"], "3");
    EXPECT_EQ(rep.field["secret"], "ok");
    if (rep.field["role"] == "worker") {
      EXPECT_EQ(rep.args,
                "--dir|" + probe_dir + "|--worker|hang|--show|FAKE_SSH_HOST|a b|it's|$HOME|x\"y|");
    }
  }
  EXPECT_EQ(r.count_out("] probe-cwd=" + cwd), 6u) << r.output();

  auto secrets = secrets_in(probe_dir);
  ASSERT_EQ(secrets.size(), 6u);
  const std::string secret = secrets[0];
  for (const auto& s : secrets)
    EXPECT_EQ(s, secret);
  ASSERT_TRUE(is_hex(secret, 64));

  // The secret is on no command line: not ssh's, not the remote shell's, not any process's
  // now; and ssh never had it in its environment.
  int logs = 0;
  for (const auto& e : fs::directory_iterator(log_dir)) {
    ++logs;
    std::string log = read_file(e.path());
    EXPECT_EQ(log.find(secret), std::string::npos);
    EXPECT_NE(log.find("secret_in_env=\n"), std::string::npos) << log;
    EXPECT_NE(log.find("\n-o\nBatchMode=yes\n-o\nStrictHostKeyChecking=accept-new\n"),
              std::string::npos)
        << log;
  }
  EXPECT_EQ(logs, 6);
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    EXPECT_EQ(read_file(e.path() / "cmdline").find(secret), std::string::npos) << "pid " << name;
  }

  auto pids = r.probe_pids();
  r.signal(SIGTERM);
  EXPECT_EQ(r.wait(), 143) << r.output();
  expect_all_gone(pids);
}

TEST(launch, help_explains_the_options_environment_and_mpirun) {
  launch_run r({"--help"});
  EXPECT_EQ(r.wait(), 0);
  for (const char* s : {"Usage: kvactor-launch -n W", "--server-cmd", "DMLC_PS_ROOT_URI",
                        "KVACTOR_SECRET", "KVACTOR_SSH", "mpirun", "srun", "SLURM_PROCID"})
    EXPECT_NE(r.out_text().find(s), std::string::npos) << s;
  EXPECT_TRUE(r.err_text().empty());
}

TEST(launch, rejects_bad_arguments_with_status_2_and_the_usage) {
  temp_dir d;
  write_file(d / "empty", "# nothing\n\n", fs::perms::owner_read | fs::perms::owner_write);
  write_file(d / "hosts", "hostA\n", fs::perms::owner_read | fs::perms::owner_write);
  write_file(d / "evil", "-oProxyCommand=x\n", fs::perms::owner_read | fs::perms::owner_write);
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{}, "missing '--' before the program"},
      {{"-n", "2"}, "missing '--' before the program"},
      {{"-n", "2", kProbe}, "unexpected argument"},
      {{"-n", "1", "--"}, "no program after '--'"},
      {{"-s", "1", "--", kProbe}, "missing -n W"},
      {{"-n"}, "-n needs a value"},
      {{"-n", "0", "--", kProbe}, "-n needs a whole number from 1 to 65536, got '0'"},
      {{"-n", "two", "--", kProbe}, "-n needs a whole number"},
      {{"-n", "1", "-s", "0", "--", kProbe}, "-s needs a whole number"},
      {{"-n", "1", "--bogus", "--", kProbe}, "unknown option '--bogus'"},
      {{"-n", "1", "-H", d / "missing", "--", kProbe}, "cannot read hostfile"},
      {{"-n", "1", "-H", d / "empty", "--", kProbe}, "names no host"},
      {{"-n", "1", "-H", d / "evil", "--", kProbe}, "bad host '-oProxyCommand=x'"},
      {{"-n", "1", "--launcher", "ssh", "--", kProbe}, "--launcher ssh needs -H"},
      {{"-n", "1", "--launcher", "mpi", "--", kProbe}, "--launcher must be local or ssh"},
      {{"-n", "1", "--launcher", "local", "-H", d / "hosts", "--", kProbe}, "only used with"},
      {{"-n", "1", "--env", "NOVALUE", "--", kProbe}, "--env needs NAME=VALUE"},
      {{"-n", "1", "--env", "1X=2", "--", kProbe}, "is not a variable name"},
      {{"-n", "1", "--env", "KVACTOR_SECRET=x", "--", kProbe}, "--env cannot set KVACTOR_SECRET"},
      {{"-n", "1", "--port", "70000", "--", kProbe}, "--port needs a whole number"},
      {{"-n", "1", "--timeout", "0", "--", kProbe}, "--timeout needs a number of seconds"},
      {{"-n", "1", "--grace", "-1", "--", kProbe}, "--grace needs a number of seconds"},
      {{"-n", "1", "--server-cmd", "'open", "--", kProbe}, "unbalanced '"},
      {{"-n", "1", "--server-cmd", " ", "--", kProbe}, "--server-cmd is empty"},
  };
  for (const auto& [args, message] : cases) {
    std::string joined;
    for (const auto& a : args)
      joined += " " + a;
    launch_run r(args);
    EXPECT_EQ(r.wait(), 2) << joined;
    EXPECT_TRUE(starts_with(r.err_text(), "kvactor-launch: ")) << joined << "\n" << r.err_text();
    EXPECT_NE(r.err_text().find(message), std::string::npos) << joined << "\n" << r.err_text();
    EXPECT_NE(r.err_text().find("Usage: kvactor-launch"), std::string::npos) << joined;
    EXPECT_TRUE(r.out_text().empty()) << joined;
  }
}

}  // namespace
