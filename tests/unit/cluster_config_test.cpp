// Reading a node's role and cluster from the environment: MXNet's DMLC_* variables, the
// secret, and ranks from mpirun/Slurm.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <map>

#include "dist/cluster_config.hpp"

namespace kvactor::detail {
namespace {

env_lookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& n) -> std::optional<std::string> {
    auto it = vars.find(n);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::map<std::string, std::string> base() {
  return {{"DMLC_ROLE", "worker"},       {"DMLC_PS_ROOT_URI", "10.0.0.1"},
          {"DMLC_PS_ROOT_PORT", "9091"}, {"DMLC_NUM_SERVER", "2"},
          {"DMLC_NUM_WORKER", "3"},      {"KVACTOR_SECRET", "0123456789abcdef0123"}};
}

TEST(ClusterConfig, ReadsMxnetVariables) {
  auto c = read_cluster_config(env_of(base()));
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->role, "worker");
  EXPECT_EQ(c->root_host, "10.0.0.1");
  EXPECT_EQ(c->root_port, 9091);
  EXPECT_EQ(c->num_servers, 2u);
  EXPECT_EQ(c->num_workers, 3u);
  EXPECT_EQ(c->cluster_id, "kvactor");
  EXPECT_EQ(c->big_array_bound, 1000000u);
  auto v = base();
  v["MXNET_KVSTORE_BIGARRAY_BOUND"] = "500";
  v["KVACTOR_CLUSTER_ID"] = "job7";
  c = read_cluster_config(env_of(v));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->big_array_bound, 500u);
  EXPECT_EQ(c->cluster_id, "job7");
}

TEST(ClusterConfig, TlsIsOnForHostsAndOptionalOnLoopback) {
  auto v = base();  // the scheduler at 10.0.0.1: a job on hosts
  EXPECT_TRUE(read_cluster_config(env_of(v))->tls);
  v["KVACTOR_TLS"] = "off";
  EXPECT_FALSE(read_cluster_config(env_of(v))->tls);
  v["KVACTOR_TLS"] = "auto";
  EXPECT_TRUE(read_cluster_config(env_of(v))->tls);
  for (const char* local : {"127.0.0.1", "localhost", "::1"}) {
    v["DMLC_PS_ROOT_URI"] = local;
    v["KVACTOR_TLS"] = "auto";
    EXPECT_FALSE(read_cluster_config(env_of(v))->tls) << local;
    v["KVACTOR_TLS"] = "on";
    EXPECT_TRUE(read_cluster_config(env_of(v))->tls) << local;
  }
  v["KVACTOR_TLS"] = "yes";
  auto c = read_cluster_config(env_of(v));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), errc::invalid_argument);
  EXPECT_NE(c.error().message().find("KVACTOR_TLS=\"yes\""), std::string::npos)
      << c.error().message();
}

TEST(ClusterConfig, ClearErrors) {
  struct bad_case {
    const char* var;
    const char* value;  // nullptr: unset
    const char* mention;
  };
  const bad_case cases[] = {
      {"DMLC_ROLE", "boss", "boss"},
      {"DMLC_PS_ROOT_PORT", "70000", "DMLC_PS_ROOT_PORT"},
      {"DMLC_PS_ROOT_PORT", "12ab", "12ab"},
      {"DMLC_NUM_SERVER", "0", "DMLC_NUM_SERVER"},
      {"DMLC_NUM_WORKER", nullptr, "DMLC_NUM_WORKER"},
      {"DMLC_PS_ROOT_URI", nullptr, "DMLC_PS_ROOT_URI"},
      {"KVACTOR_SECRET", nullptr, "secret"},
      {"KVACTOR_SECRET", "short", "16 bytes"},
  };
  for (const auto& bc : cases) {
    auto v = base();
    if (bc.value)
      v[bc.var] = bc.value;
    else
      v.erase(bc.var);
    auto c = read_cluster_config(env_of(v));
    ASSERT_FALSE(c) << bc.var;
    EXPECT_EQ(c.error().code(), errc::invalid_argument);
    EXPECT_NE(c.error().message().find(bc.mention), std::string::npos) << c.error().message();
  }
}

// Everything wrong is reported at once, each variable named, rather than one per run.
TEST(ClusterConfig, EveryProblemInOneError) {
  auto v = base();
  v.erase("DMLC_NUM_WORKER");
  v.erase("DMLC_PS_ROOT_URI");
  v.erase("KVACTOR_SECRET");
  v["DMLC_PS_ROOT_PORT"] = "x91";
  v["DMLC_ROLE"] = "boss";
  auto c = read_cluster_config(env_of(v));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), errc::invalid_argument);
  const std::string m = c.error().message();
  for (const char* mention : {"5 problems", "DMLC_ROLE=\"boss\"", "DMLC_NUM_WORKER is not set",
                              "DMLC_PS_ROOT_URI is not set",
                              "DMLC_PS_ROOT_PORT=\"x91\" is not a whole number", "KVACTOR_SECRET"})
    EXPECT_NE(m.find(mention), std::string::npos) << mention << " in: " << m;

  // Nothing set at all: the role, the counts, the scheduler's address and the secret.
  c = read_cluster_config(env_of({}));
  ASSERT_FALSE(c);
  for (const char* mention : {"DMLC_ROLE", "DMLC_NUM_SERVER", "DMLC_NUM_WORKER",
                              "DMLC_PS_ROOT_PORT", "DMLC_PS_ROOT_URI", "KVACTOR_SECRET"})
    EXPECT_NE(c.error().message().find(mention), std::string::npos)
        << mention << " in: " << c.error().message();

  // Ranks from mpirun without a server count: both missing pieces are named.
  auto m2 = base();
  m2.erase("DMLC_ROLE");
  m2.erase("DMLC_NUM_SERVER");
  m2.erase("KVACTOR_SECRET");
  m2["OMPI_COMM_WORLD_RANK"] = "2";
  c = read_cluster_config(env_of(m2));
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("DMLC_NUM_SERVER must be set"), std::string::npos)
      << c.error().message();
  EXPECT_NE(c.error().message().find("no shared secret"), std::string::npos) << c.error().message();
}

TEST(ClusterConfig, SecretFromAFile) {
  const std::string path = ::testing::TempDir() + "kvactor_secret_test";
  { std::ofstream(path) << "a-secret-of-enough-length\n"; }
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  auto v = base();
  v.erase("KVACTOR_SECRET");
  v["KVACTOR_SECRET_FILE"] = path;
  auto c = read_cluster_config(env_of(v));
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->secret, "a-secret-of-enough-length");
  v["KVACTOR_SECRET_FILE"] = path + ".missing";
  EXPECT_FALSE(read_cluster_config(env_of(v)));
  std::remove(path.c_str());
}

// As ssh does for private keys: a secret file others may read (or write) is refused, the
// message naming the file and its mode; 0600 and 0400 are accepted.
TEST(ClusterConfig, SecretFileReadableByOthersIsRefused) {
  const std::string path = ::testing::TempDir() + "kvactor_secret_mode_test";
  { std::ofstream(path) << "a-secret-of-enough-length\n"; }
  auto v = base();
  v.erase("KVACTOR_SECRET");
  v["KVACTOR_SECRET_FILE"] = path;
  for (mode_t mode : {0644, 0640, 0604, 0620, 0602, 0660}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    auto c = read_cluster_config(env_of(v));
    ASSERT_FALSE(c) << std::oct << mode;
    EXPECT_EQ(c.error().code(), errc::invalid_argument);
    char text[8];
    std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode));
    const std::string m = c.error().message();
    EXPECT_NE(m.find("KVACTOR_SECRET_FILE=" + path + " has mode " + text), std::string::npos) << m;
    EXPECT_NE(m.find("chmod 600"), std::string::npos) << m;
  }
  for (mode_t mode : {0600, 0400}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    auto c = read_cluster_config(env_of(v));
    ASSERT_TRUE(c) << std::oct << mode << ": " << c.error().to_string();
    EXPECT_EQ(c->secret, "a-secret-of-enough-length");
  }
  std::remove(path.c_str());
  // Not a regular file: named as such.
  v["KVACTOR_SECRET_FILE"] = ::testing::TempDir();
  auto dir = read_cluster_config(env_of(v));
  ASSERT_FALSE(dir);
  EXPECT_NE(dir.error().message().find("is not a regular file"), std::string::npos)
      << dir.error().message();
}

// Certificates: all three variables or none; given, they turn TLS on (also on loopback), a
// contradicting KVACTOR_TLS=off is refused, and so is a key file others may read.
TEST(ClusterConfig, TlsCertificatesGoTogetherAndTurnTlsOn) {
  const std::string key = ::testing::TempDir() + "kvactor_tls_key_test";
  { std::ofstream(key) << "not parsed here\n"; }
  ASSERT_EQ(::chmod(key.c_str(), 0600), 0);
  auto v = base();
  v["DMLC_PS_ROOT_URI"] = "127.0.0.1";
  v["KVACTOR_TLS_CERT"] = "/some/node.pem";
  v["KVACTOR_TLS_KEY"] = key;
  v["KVACTOR_TLS_CA"] = "/some/ca.pem";
  auto c = read_cluster_config(env_of(v));
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_TRUE(c->tls);
  EXPECT_EQ(c->tls_cert_file, "/some/node.pem");
  EXPECT_EQ(c->tls_key_file, key);
  EXPECT_EQ(c->tls_ca_file, "/some/ca.pem");
  v["KVACTOR_TLS"] = "off";
  c = read_cluster_config(env_of(v));
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("KVACTOR_TLS=off"), std::string::npos) << c.error().message();
  v.erase("KVACTOR_TLS");
  ASSERT_EQ(::chmod(key.c_str(), 0640), 0);
  c = read_cluster_config(env_of(v));
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("KVACTOR_TLS_KEY=" + key + " has mode 0640"),
            std::string::npos)
      << c.error().message();
  v.erase("KVACTOR_TLS_CA");
  ASSERT_EQ(::chmod(key.c_str(), 0600), 0);
  c = read_cluster_config(env_of(v));
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("2 of 3 are set"), std::string::npos) << c.error().message();
  std::remove(key.c_str());
}

// A server checks its profile and states directories at start; workers ignore the variables.
TEST(ClusterConfig, ProfileAndStatesDirsOfAServerMustExist) {
  for (const std::string var : {"KVACTOR_PROFILE_DIR", "KVACTOR_STATES_DIR"}) {
    auto v = base();
    v["DMLC_ROLE"] = "server";
    v[var] = ::testing::TempDir();
    auto c = read_cluster_config(env_of(v));
    ASSERT_TRUE(c) << c.error().to_string();
    EXPECT_EQ(var == "KVACTOR_PROFILE_DIR" ? c->profile_dir : c->states_dir, ::testing::TempDir());
    v[var] = ::testing::TempDir() + "kvactor-no-such-dir";
    c = read_cluster_config(env_of(v));
    ASSERT_FALSE(c) << var;
    EXPECT_NE(c.error().message().find(var + "=" + v[var] + " is not a directory"),
              std::string::npos)
        << c.error().message();
    v["DMLC_ROLE"] = "worker";
    EXPECT_TRUE(read_cluster_config(env_of(v))) << var;
  }
  EXPECT_TRUE(read_cluster_config(env_of(base()))->profile_dir.empty());
  EXPECT_TRUE(read_cluster_config(env_of(base()))->states_dir.empty());
}

TEST(ClusterConfig, RolesFromMpiAndSlurmRanks) {
  auto v = base();
  v.erase("DMLC_ROLE");
  v.erase("DMLC_NUM_WORKER");
  v["OMPI_COMM_WORLD_SIZE"] = "6";  // 1 scheduler + 2 servers + 3 workers
  const std::pair<const char*, const char*> expect[] = {
      {"0", "scheduler"}, {"1", "server"}, {"2", "server"}, {"3", "worker"}, {"5", "worker"}};
  for (auto [rank, role] : expect) {
    v["OMPI_COMM_WORLD_RANK"] = rank;
    auto c = read_cluster_config(env_of(v));
    ASSERT_TRUE(c) << c.error().to_string();
    EXPECT_EQ(c->role, role) << rank;
    EXPECT_EQ(c->num_workers, 3u);
  }
  v["OMPI_COMM_WORLD_RANK"] = "4";
  EXPECT_EQ(read_cluster_config(env_of(v))->rank_hint, 1);  // second worker
  auto s = base();
  s.erase("DMLC_ROLE");
  s["SLURM_PROCID"] = "1";
  s["SLURM_NTASKS"] = "6";
  auto c = read_cluster_config(env_of(s));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->role, "server");
  EXPECT_EQ(c->rank_hint, 0);
  auto none = base();
  none.erase("DMLC_ROLE");
  EXPECT_FALSE(read_cluster_config(env_of(none)));
}

}  // namespace
}  // namespace kvactor::detail
