// kvactor-launch when things go wrong: failing, crashing and killed processes, signals to the
// launcher, timeouts, programs that cannot start. Every process the launcher started must be
// gone when it returns. (See launch_test.cpp for how these tests synchronise.)
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "launch_run.hpp"

namespace kvactor::launch_test {
namespace {

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
  EXPECT_TRUE(
      r.has_err_line("kvactor-launch: " + failing + " was killed by SIGABRT; stopping the job"))
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

// Workers that exit 0 without joining (a program that creates no dist store) leave the
// scheduler and the servers waiting for them: the message says so.
TEST(launch, servers_still_running_after_the_grace_period_fail_the_job) {
  launch_run r({"-n", "2", "-s", "1", "--grace", "0.2", "--server-cmd",
                q(kProbe) + " --scheduler hang --server hang", "--", kProbe});
  EXPECT_EQ(r.wait(), 1) << r.output();
  EXPECT_TRUE(r.has_err_line(
      "kvactor-launch: every worker exited, but scheduler, server 0 are still running 0.2 s "
      "later, waiting for the cluster: usually the workers never joined it (did the program "
      "create a dist store? kvactor-train needs --store dist_sync); a kvactor scheduler prints "
      "'cluster assembled' once every node joined; stopping the job"))
      << r.output();
  expect_all_gone(r.probe_pids());
}

// A worker killed by a signal is named with the signal, and the job's status is 128 + S.
TEST(launch, a_worker_killed_by_a_signal_is_named_and_gives_128_plus_the_signal) {
  launch_run r({"-n", "2", "-s", "1", "--server-cmd", q(kProbe) + " --scheduler hang --server hang",
                "--", kProbe, "--worker", "hang"});
  ASSERT_TRUE(r.read_until([&] { return r.reports().size() == 4; })) << r.output();
  auto pids = r.probe_pids();
  const pid_t worker = pid_of(r, "worker 1");
  ASSERT_GT(worker, 0) << r.output();
  ::kill(worker, SIGKILL);

  EXPECT_EQ(r.wait(), 128 + SIGKILL) << r.output();
  EXPECT_TRUE(r.has_err_line("kvactor-launch: worker 1 was killed by SIGKILL; stopping the job"))
      << r.output();
  expect_all_gone(pids);
}

// The scheduler noticing a lost worker exits 1 at about the time the worker dies. When the
// launcher sees both exits at once, it blames the killed worker, not the scheduler that is
// earlier in its list. The launcher is stopped while both exit, so it sees them together.
TEST(launch, of_exits_seen_together_the_killed_worker_is_blamed) {
  temp_dir d;
  ASSERT_EQ(::mkfifo((d / "notice.gate").c_str(), 0600), 0);
  launch_run r({"-n", "2", "-s", "1", "--server-cmd",
                q(kProbe) + " --dir " + q(d.path()) + " --scheduler exit:1@notice --server hang",
                "--", kProbe, "--worker", "hang"});
  ASSERT_TRUE(r.read_until([&] { return r.reports().size() == 4; })) << r.output();
  auto pids = r.probe_pids();
  const pid_t scheduler = pid_of(r, "scheduler"), worker = pid_of(r, "worker 1");
  ASSERT_GT(scheduler, 0) << r.output();
  ASSERT_GT(worker, 0) << r.output();

  r.signal(SIGSTOP);
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(r.pid()), &info, WSTOPPED | WNOWAIT), 0);
  ::kill(worker, SIGKILL);
  open_gate(d / "notice.gate");
  EXPECT_TRUE(wait_gone(worker, kLimit));
  EXPECT_TRUE(wait_gone(scheduler, kLimit));
  r.signal(SIGCONT);

  EXPECT_EQ(r.wait(), 128 + SIGKILL) << r.output();
  EXPECT_TRUE(r.has_err_line("kvactor-launch: worker 1 was killed by SIGKILL; stopping the job"))
      << r.output();
  EXPECT_EQ(r.err_text().find("scheduler exited"), std::string::npos) << r.output();
  expect_all_gone(pids);
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

}  // namespace
}  // namespace kvactor::launch_test
