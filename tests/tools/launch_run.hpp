// What the kvactor-launch tests share: kvactor-launch run in a child process with its output
// read through pipes (launch_run), probe reports, temporary directories, FIFO gates.
// Thread-safety: none; each test uses its objects from its own thread.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "kvactor/detail/spawn.hpp"

namespace kvactor::launch_test {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

inline const std::string kLaunch = KVACTOR_LAUNCH;
inline const std::string kProbe = KVACTOR_LAUNCH_PROBE;
// Fails a test that goes wrong instead of hanging it; passing tests take a fraction of it.
inline constexpr auto kLimit = std::chrono::seconds(20);

// One word for sh, as --server-cmd and the fake ssh read it.
inline std::string q(const std::string& word) {
  std::string r = "'";
  for (char c : word)
    r += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return r + "'";
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_file(const std::string& path, const std::string& text, fs::perms mode) {
  std::ofstream(path, std::ios::binary) << text;
  fs::permissions(path, mode);
}

inline bool is_hex(const std::string& s, std::size_t n) {
  return s.size() == n && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

inline bool starts_with(const std::string& s, const std::string& p) {
  return s.rfind(p, 0) == 0;
}

// Alive and not a zombie waiting for its reaper.
inline bool running(pid_t pid) {
  if (::kill(pid, 0) != 0) return false;
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto rp = stat.rfind(')');
  return !(rp != std::string::npos && rp + 2 < stat.size() && stat[rp + 2] == 'Z');
}

// Waits, without polling in a loop, until pid has exited; false after the limit.
inline bool wait_gone(pid_t pid, std::chrono::milliseconds limit) {
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
    kvactor::detail::spawn_options o;
    o.argv = {launcher};
    o.argv.insert(o.argv.end(), args.begin(), args.end());
    std::map<std::string, std::string> overrides;
    for (const auto& kv : env)
      overrides[kv.substr(0, kv.find('='))] = kv.substr(kv.find('=') + 1);
    o.env = kvactor::detail::environment_with(overrides);
    o.working_dir = cwd;
    o.die_with_parent = true;
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) std::abort();
    o.stdout_fd = out[1];
    o.stderr_fd = err[1];
    proc_ = kvactor::detail::child_process(o);
    ::close(out[1]);
    ::close(err[1]);
    streams_[0].fd = out[0];
    streams_[1].fd = err[0];
    deadline_ = clock_type::now() + kLimit;
  }

  ~launch_run() {
    for (auto& s : streams_)
      if (s.fd >= 0) ::close(s.fd);
  }
  launch_run(const launch_run&) = delete;
  launch_run& operator=(const launch_run&) = delete;

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
    if (streams_[0].fd >= 0 || streams_[1].fd >= 0) proc_.signal(SIGKILL);
    if (!proc_.wait_for(kLimit)) {
      ADD_FAILURE() << "kvactor-launch did not exit\n" << output();
      proc_.kill_and_reap();
    }
    return proc_.exit_code();
  }

  void signal(int sig) { proc_.signal(sig); }
  pid_t pid() const { return proc_.pid(); }
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

  kvactor::detail::child_process proc_;
  stream streams_[2];
  clock_type::time_point deadline_;
};

// "scheduler" -> "scheduler", "server 1" -> "server", "worker 0" -> "worker".
inline std::string role_of(const std::string& prefix) {
  return prefix.substr(0, prefix.find(' '));
}

inline std::vector<std::string> secrets_in(const std::string& dir) {
  std::vector<std::string> secrets;
  for (const auto& e : fs::directory_iterator(dir))
    if (starts_with(e.path().filename().string(), "secret."))
      secrets.push_back(read_file(e.path()));
  return secrets;
}

inline void expect_all_gone(const std::vector<pid_t>& pids) {
  for (pid_t pid : pids)
    EXPECT_FALSE(running(pid)) << "pid " << pid << " outlived the launcher";
}

// The pid the probe with this prefix ("worker 1") reported; -1 when there is none.
inline pid_t pid_of(const launch_run& r, const std::string& prefix) {
  for (const auto& rep : r.reports())
    if (rep.prefix == prefix) return static_cast<pid_t>(std::stoi(rep.field.at("pid")));
  return -1;
}

inline void open_gate(const std::string& fifo) {
  int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
  ASSERT_GE(fd, 0) << "nobody waits at " << fifo << ": " << std::strerror(errno);
  ASSERT_EQ(::write(fd, "x", 1), 1);
  ::close(fd);
}

}  // namespace kvactor::launch_test
