// kvactor-launch run for real: launch_probe stands in for the scheduler, the servers and the
// workers and reports what it got. Synchronisation is by the output the probes print and by
// FIFOs; the only bound on time is a limit that fails a test going wrong. This file: what
// every process gets (environment, arguments, output, ssh mode) and the command line;
// launch_failure_test.cpp: failures, signals and teardown.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "launch_run.hpp"

namespace kvactor::launch_test {
namespace {

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

// Servers save optimizer states only under KVACTOR_STATES_DIR; in local mode the launcher
// gives them the directory it was started in, unless the user chose one (even empty).
TEST(launch, local_servers_get_the_launch_directory_as_states_dir_unless_one_is_set) {
  ::unsetenv("KVACTOR_STATES_DIR");  // the test's own environment must not decide
  temp_dir d, other;
  auto states_dirs = [&](const std::vector<std::string>& extra_args,
                         const std::vector<std::string>& env) {
    std::vector<std::string> args = {"-n", "2", "-s", "2"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    for (const std::string& a :
         {std::string{"--server-cmd"}, q(kProbe) + " --show KVACTOR_STATES_DIR", std::string{"--"},
          kProbe, std::string{"--show"}, std::string{"KVACTOR_STATES_DIR"}})
      args.push_back(a);
    std::map<std::string, std::string> by_process;
    launch_run r(args, env, d.path());
    EXPECT_EQ(r.wait(), 0) << r.output();
    for (auto& rep : r.reports())
      by_process[rep.prefix] = rep.field["KVACTOR_STATES_DIR"];
    EXPECT_EQ(by_process.size(), 5u) << r.output();
    return by_process;
  };
  for (auto& [process, dir] : states_dirs({}, {}))
    EXPECT_EQ(dir, starts_with(process, "server") ? d.path() : "(unset)") << process;
  for (auto& [process, dir] : states_dirs({"--env", "KVACTOR_STATES_DIR=" + other.path()}, {}))
    EXPECT_EQ(dir, other.path()) << process;
  for (auto& [process, dir] : states_dirs({}, {"KVACTOR_STATES_DIR=" + other.path()}))
    EXPECT_EQ(dir, other.path()) << process;
  for (auto& [process, dir] : states_dirs({}, {"KVACTOR_STATES_DIR="}))
    EXPECT_EQ(dir, "") << process;
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
}  // namespace kvactor::launch_test
