#include "supervisor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <set>
#include <sstream>

#include "kvactor/detail/spawn.hpp"
#include "launcher_process.hpp"
#include "output.hpp"

namespace kvactor::launch {

namespace {

using clock_type = std::chrono::steady_clock;

std::string seconds_text(double s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

clock_type::duration to_duration(double s) {
  return std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(s));
}

// "worker 1 was killed by SIGKILL", "server 0 exited with status 3".
std::string exit_text(const std::string& name, int code, int sig) {
  if (sig != 0) return name + " was killed by " + detail::signal_name(sig);
  return name + " exited with status " + std::to_string(code);
}

std::string join_names(const std::vector<std::string>& names) {
  std::string r;
  for (const auto& n : names)
    r += (r.empty() ? "" : ", ") + n;
  return r;
}

struct child {
  process_spec spec;
  std::string prefix;
  pid_t pid = -1;
  // Seen exited through WNOWAIT: left a zombie until the end, so that neither its pid nor
  // its process group id can be reused while we may still signal them.
  bool exited = false;
  bool judged = false;
  int code = 0;  ///< exit code, or 128 + signal
  int sig = 0;   ///< the signal that ended it, 0 when it exited
  out_stream out, err;
};

enum class phase { running, draining, stopping };

class supervisor {
 public:
  supervisor(std::vector<process_spec> specs, const supervise_settings& settings)
      : settings_(settings) {
    for (auto& s : specs) {
      child c;
      c.prefix = "[" + s.name + "] ";
      c.spec = std::move(s);
      children_.push_back(std::move(c));
    }
  }

  int run() {
    if (!install_handlers()) return 1;
    if (settings_.timeout_s > 0)
      job_deadline_ = clock_type::now() + to_duration(settings_.timeout_s);
    for (auto& c : children_) {
      drain_wake_pipe();  // a signal during start-up stops before more processes start
      if (phase_ == phase::stopping || !spawn(c)) break;
    }
    for (;;) {
      if (check_children_) {
        check_children_ = false;
        collect_exits();
        reap_adoptees();
      }
      judge_exits();
      check_deadlines(clock_type::now());
      if (all_exited()) break;
      poll_once(poll_timeout_ms(clock_type::now()));
    }
    finish();
    return exit_code_;
  }

 private:
  bool spawn(child& c) {
    int out_p[2] = {-1, -1}, err_p[2] = {-1, -1}, in_p[2] = {-1, -1};
    auto close_fd = [](int& fd) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    };
    auto close_all = [&] {
      for (int* fd : {&out_p[0], &out_p[1], &err_p[0], &err_p[1], &in_p[0], &in_p[1]})
        close_fd(*fd);
    };
    if (::pipe2(out_p, O_CLOEXEC) != 0 || ::pipe2(err_p, O_CLOEXEC) != 0 ||
        (!c.spec.stdin_data.empty() && ::pipe2(in_p, O_CLOEXEC) != 0)) {
      int e = errno;
      close_all();
      say("cannot start " + c.spec.name + ": " + std::strerror(e) + "; stopping the job");
      stop(1);
      return false;
    }

    detail::spawn_options o;
    o.argv = c.spec.argv;
    o.env = c.spec.env;
    o.search_path = true;  // in the PATH of the environment the program gets
    o.stdin_fd = in_p[0] >= 0 ? in_p[0] : detail::dev_null_fd;
    o.stdout_fd = out_p[1];
    o.stderr_fd = err_p[1];
    // Own process group: teardown signals reach the grandchildren too, and a Ctrl-C at the
    // terminal reaches only the launcher, which then stops everything in order.
    o.new_process_group = true;
    // Die with the launcher even when it is SIGKILLed (the launcher has one thread).
    o.die_with_parent = true;
    pid_t pid = -1;
    try {
      pid = detail::spawn(o);
    } catch (const detail::spawn_error& e) {
      close_all();
      if (e.exec_failed()) {
        say("cannot start " + c.spec.name + " ('" + c.spec.argv[0] +
            "'): " + std::strerror(e.code().value()) + "; stopping the job");
        stop(127);
      } else {
        say("cannot start " + c.spec.name + ": " + e.step() + ": " +
            std::strerror(e.code().value()) + "; stopping the job");
        stop(1);
      }
      return false;
    }
    close_fd(out_p[1]);
    close_fd(err_p[1]);
    close_fd(in_p[0]);
    c.pid = pid;
    known_.insert(pid);
    c.out = {out_p[0], 1, {}};
    c.err = {err_p[0], 2, {}};
    for (int fd : {c.out.fd, c.err.fd})
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (in_p[1] >= 0) {
      write_all(in_p[1], c.spec.stdin_data);
      close_fd(in_p[1]);
    }
    return true;
  }

  void drain_wake_pipe() {
    unsigned char buf[64];
    for (;;) {
      ssize_t n = ::read(wake_fd(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      for (ssize_t i = 0; i < n; ++i) {
        int sig = buf[i];
        if (sig == SIGCHLD)
          check_children_ = true;
        else
          on_launcher_signal(sig);
      }
    }
  }

  void on_launcher_signal(int sig) {
    if (finishing_) return;
    if (phase_ != phase::stopping) {
      say("received " + detail::signal_name(sig) + "; stopping the job");
      stop(128 + sig);
    } else if (!killed_) {
      say("received " + detail::signal_name(sig) + " again; killing the job");
      signal_groups(SIGKILL);
      killed_ = true;
    }
  }

  void collect_exits() {
    std::vector<std::size_t> batch;
    for (std::size_t i = 0; i < children_.size(); ++i) {
      auto& c = children_[i];
      if (c.pid < 0 || c.exited) continue;
      siginfo_t info{};
      if (::waitid(P_PID, static_cast<id_t>(c.pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
          info.si_pid != c.pid)
        continue;
      c.exited = true;
      c.code = detail::exit_code(info);
      c.sig = info.si_code == CLD_EXITED ? 0 : info.si_status;
      batch.push_back(i);
    }
    // Exits seen together cannot be ordered by time. The one that caused the others is
    // likelier a process killed by a signal, then a worker (the job's program), than the
    // scheduler or a server, which exit 1 when they notice that a node is lost.
    auto rank = [this](std::size_t i) {
      const child& c = children_[i];
      return (c.sig != 0 ? 0 : 2) + (c.spec.worker ? 0 : 1);
    };
    std::stable_sort(batch.begin(), batch.end(),
                     [&](std::size_t a, std::size_t b) { return rank(a) < rank(b); });
    exit_order_.insert(exit_order_.end(), batch.begin(), batch.end());
  }

  // Adopted orphans that died: reap them now, so that a long job does not pile up zombies.
  void reap_adoptees() {
    for (auto [pid, state] : children_of_self())
      if (state == 'Z' && known_.count(pid) == 0) ::waitpid(pid, nullptr, WNOHANG);
  }

  void judge_exits() {
    for (; judged_upto_ < exit_order_.size(); ++judged_upto_) {
      auto& c = children_[exit_order_[judged_upto_]];
      if (c.judged) continue;
      c.judged = true;
      // Once stopping, exits are the teardown's doing, not news.
      if (phase_ == phase::stopping || c.code == 0) continue;
      say(exit_text(c.spec.name, c.code, c.sig) + "; stopping the job");
      stop(c.spec.worker ? c.code : 1);
    }
    if (phase_ == phase::running && std::all_of(children_.begin(), children_.end(), [](auto& c) {
          return !c.spec.worker || c.exited;
        })) {
      phase_ = phase::draining;
      grace_deadline_ = clock_type::now() + to_duration(settings_.grace_s);
    }
  }

  void check_deadlines(clock_type::time_point now) {
    if (phase_ != phase::stopping && job_deadline_ && now >= *job_deadline_) {
      say("the job ran past --timeout " + seconds_text(settings_.timeout_s) + " s; stopping it");
      stop(124);
    }
    if (phase_ == phase::draining && now >= grace_deadline_ && !all_exited()) {
      // Typically the workers exited 0 without ever joining the cluster, which then waits
      // for them until its connect timeout (60 s by default).
      const auto names = running_names();
      say("every worker exited, but " + join_names(names) + (names.size() == 1 ? " is" : " are") +
          " still running " + seconds_text(settings_.grace_s) +
          " s later, waiting for the cluster: usually the workers never joined it (did the "
          "program create a dist store? kvactor-train needs --store dist_sync); a kvactor "
          "scheduler prints 'cluster assembled' once every node joined; stopping the job");
      stop(1);
    }
    if (phase_ == phase::stopping && !killed_ && now >= kill_deadline_) {
      if (auto names = running_names(); !names.empty())
        say(join_names(names) + " still running " + seconds_text(settings_.kill_after_s) +
            " s after SIGTERM; sending SIGKILL");
      signal_groups(SIGKILL);
      killed_ = true;
    }
  }

  int poll_timeout_ms(clock_type::time_point now) const {
    std::optional<clock_type::time_point> next;
    auto consider = [&](clock_type::time_point t) {
      if (!next || t < *next) next = t;
    };
    if (phase_ != phase::stopping && job_deadline_) consider(*job_deadline_);
    if (phase_ == phase::draining) consider(grace_deadline_);
    if (phase_ == phase::stopping && !killed_) consider(kill_deadline_);
    if (!next) return -1;
    if (*next <= now) return 0;
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(*next - now).count();
    return static_cast<int>(std::min<long long>(ms, 24 * 3600 * 1000));
  }

  // Waits for output, a signal or the timeout, and handles whatever came.
  void poll_once(int timeout_ms) {
    std::vector<pollfd> fds;
    std::vector<std::pair<child*, out_stream*>> owners;
    fds.push_back({wake_fd(), POLLIN, 0});
    owners.emplace_back(nullptr, nullptr);
    for (auto& c : children_)
      for (out_stream* s : {&c.out, &c.err})
        if (s->fd >= 0) {
          fds.push_back({s->fd, POLLIN, 0});
          owners.emplace_back(&c, s);
        }
    int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n <= 0) return;
    for (std::size_t i = 1; i < fds.size(); ++i)
      if (fds[i].revents != 0) read_stream(owners[i].first->prefix, *owners[i].second, false);
    if (fds[0].revents != 0) drain_wake_pipe();
  }

  void stop(int code) {
    phase_ = phase::stopping;
    exit_code_ = code;
    signal_groups(SIGTERM);
    kill_deadline_ = clock_type::now() + to_duration(settings_.kill_after_s);
  }

  // Safe while the leaders are unreaped: a group id stays ours as long as its leader is.
  void signal_groups(int sig) {
    for (auto& c : children_)
      if (c.pid > 0) ::kill(-c.pid, sig);
  }

  bool all_exited() const {
    return std::all_of(children_.begin(), children_.end(),
                       [](const child& c) { return c.pid < 0 || c.exited; });
  }

  std::vector<std::string> running_names() const {
    std::vector<std::string> names;
    for (const auto& c : children_)
      if (c.pid > 0 && !c.exited) names.push_back(c.spec.name);
    return names;
  }

  // Kills what is left of each group and every adopted orphan, reaps them all, then prints
  // the rest of their output. Nothing we started outlives this.
  void finish() {
    finishing_ = true;
    signal_groups(SIGKILL);
    const auto give_up = clock_type::now() + std::chrono::seconds(10);
    for (;;) {
      for (auto [pid, state] : children_of_self())
        if (state != 'Z') ::kill(pid, SIGKILL);
      bool left = false;
      for (;;) {
        pid_t p = ::waitpid(-1, nullptr, WNOHANG);
        if (p > 0) continue;
        if (p == 0) left = true;
        if (p < 0 && errno == EINTR) continue;
        break;  // ECHILD: no child, no adoptee left
      }
      if (!left) break;
      if (clock_type::now() >= give_up) {
        say("some processes did not die after SIGKILL; giving up on them");
        break;
      }
      poll_once(100);  // SIGCHLD wakes us sooner; the bound covers a missed wake-up
    }
    for (auto& c : children_)
      for (out_stream* s : {&c.out, &c.err})
        if (s->fd >= 0) {
          read_stream(c.prefix, *s, true);
          if (s->fd >= 0) ::close(s->fd);
          s->fd = -1;
        }
  }

  supervise_settings settings_;
  std::vector<child> children_;
  std::set<pid_t> known_;
  std::vector<std::size_t> exit_order_;
  std::size_t judged_upto_ = 0;
  phase phase_ = phase::running;
  bool killed_ = false;
  bool finishing_ = false;
  bool check_children_ = true;
  int exit_code_ = 0;
  std::optional<clock_type::time_point> job_deadline_;
  clock_type::time_point grace_deadline_{};
  clock_type::time_point kill_deadline_{};
};

}  // namespace

int supervise(std::vector<process_spec> specs, const supervise_settings& settings) {
  supervisor s(std::move(specs), settings);
  return s.run();
}

}  // namespace kvactor::launch
