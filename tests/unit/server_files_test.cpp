// Files servers keep for workers (server_files.hpp): profiles and optimizer states only under
// the directory the server was started with, whatever name a worker sends; without that
// directory a name is refused; nothing is read or written through a link.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "dist/server_files.hpp"
#include "temp_dirs.hpp"

namespace kvactor::detail {
namespace {

bool exists(const std::string& path) {
  struct ::stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

std::string contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::size_t entries(const std::string& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir))
    ++n;
  return n;
}

const std::vector<std::uint8_t> kBytes = {'s', 't', 'a', 't', 'e', 0, 1, 2};

// outer/ holds dir/; whatever lands in outer/ escaped.
struct dirs : kvactor::testing::temp_dirs {
  dirs() : temp_dirs("kvactor-server-files-", "files") {}
};

TEST(ServerFiles, NamesAreReducedToAPlainFileName) {
  const std::pair<const char*, const char*> cases[] = {
      {"profile.json", "profile.json"},
      {"../escape.json", "escape.json"},
      {"/etc/cron.d/evil", "evil"},
      {"/tmp/abs/x", "x"},
      {"a/b/../../c", "c"},
      {"..", "_."},
      {".", "_"},
      {".hidden", "_hidden"},
      {"ckpt.epoch-3+1", "ckpt.epoch-3+1"},
      {"a b;rm -rf $HOME", "a_b_rm_-rf__HOME"},
      {"x\ny", "x_y"},
      {"\xc3\xa9t\xc3\xa9", "__t__"},
  };
  for (auto [in, out] : cases) {
    auto n = server_file_name(in);
    ASSERT_TRUE(n) << in << ": " << n.error().to_string();
    EXPECT_EQ(*n, out) << in;
  }
  for (const std::string& bad :
       {std::string{}, std::string{"dir/"}, std::string{"/"}, std::string(201, 'a')}) {
    auto n = server_file_name(bad);
    ASSERT_FALSE(n) << bad;
    EXPECT_EQ(n.error().code(), errc::invalid_argument);
  }
  EXPECT_TRUE(server_file_name(std::string(200, 'a')));
}

TEST(ServerFiles, PathsAreInTheDirectoryWithTheRank) {
  for (auto kind : {server_file_kind::profile, server_file_kind::states}) {
    auto p = server_file_path(kind, "/srv/files", "../../etc/passwd", 3);
    ASSERT_TRUE(p) << p.error().to_string();
    EXPECT_EQ(*p, "/srv/files/passwd.server3");
    p = server_file_path(kind, "/srv/files/", "ckpt", 0);
    ASSERT_TRUE(p) << p.error().to_string();
    EXPECT_EQ(*p, "/srv/files/ckpt.server0");
    p = server_file_path(kind, "/srv/files", "dir/", 0);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code(), errc::invalid_argument);
  }
}

TEST(ServerFiles, WithoutADirectoryANameIsRefusedNamingTheVariable) {
  const std::pair<server_file_kind, const char*> kinds[] = {
      {server_file_kind::profile, "KVACTOR_PROFILE_DIR"},
      {server_file_kind::states, "KVACTOR_STATES_DIR"}};
  for (auto [kind, var] : kinds) {
    auto p = server_file_path(kind, "", "file", 0);
    ASSERT_FALSE(p) << var;
    EXPECT_EQ(p.error().code(), errc::unsupported);
    EXPECT_NE(p.error().message().find(var), std::string::npos) << p.error().message();
  }
}

// Paths that climb out or start at the root land inside the directory; written files read
// back; a write replaces the file whole and leaves no temporary file behind.
TEST(ServerFiles, WrittenAndReadInsideTheDirectoryOnly) {
  dirs d;
  for (const std::string& name :
       {std::string{"../escape"}, d.outer + "/abs", std::string{"../../up"}}) {
    auto p = server_file_path(server_file_kind::states, d.dir, name, 1);
    ASSERT_TRUE(p) << p.error().to_string();
    EXPECT_EQ(p->rfind(d.dir + "/", 0), 0u) << *p;
    ASSERT_TRUE(write_server_file(*p, kBytes).is_ok()) << *p;
    auto back = read_server_file(*p, 1024);
    ASSERT_TRUE(back) << back.error().to_string();
    EXPECT_EQ(*back, kBytes);
    std::remove(p->c_str());
  }
  for (const char* f : {"escape.server1", "abs.server1", "up.server1", "abs"})
    EXPECT_FALSE(exists(d.outer + "/" + f)) << f;

  const std::string path = d.dir + "/again.server0";
  ASSERT_TRUE(write_server_file(path, kBytes).is_ok());
  ASSERT_TRUE(write_server_file(path, {'x'}).is_ok());
  EXPECT_EQ(contents(path), "x");
  EXPECT_EQ(entries(d.dir), 1u);
  auto big = read_server_file(path, 0);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code(), errc::protocol_error);
  std::remove(path.c_str());
  auto missing = read_server_file(path, 1024);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), errc::invalid_argument);
  EXPECT_NE(missing.error().message().find(path), std::string::npos);
}

// A symlink in the directory pointing outside: neither written through nor read through; a
// FIFO under the name does not block the reader.
TEST(ServerFiles, NoFileIsReadOrWrittenThroughALink) {
  dirs d;
  const std::string target = d.outer + "/target", link = d.dir + "/linked.server1";
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  status s = write_server_file(link, kBytes);
  EXPECT_EQ(s.code(), errc::invalid_argument) << s.to_string();
  EXPECT_NE(s.message().find("symbolic link"), std::string::npos) << s.to_string();
  EXPECT_FALSE(exists(target));

  { std::ofstream(target, std::ios::binary) << "outside"; }
  auto r = read_server_file(link, 1024);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::invalid_argument);
  EXPECT_NE(r.error().message().find("symbolic link"), std::string::npos) << r.error().message();
  s = write_server_file(link, kBytes);
  EXPECT_EQ(s.code(), errc::invalid_argument);
  EXPECT_EQ(contents(target), "outside");
  struct ::stat st {};
  ASSERT_EQ(::lstat(link.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));  // left as it was
  EXPECT_EQ(entries(d.dir), 1u);     // and no temporary file left behind
  std::remove(link.c_str());
  std::remove(target.c_str());

  const std::string fifo = d.dir + "/fifo.server1";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  r = read_server_file(fifo, 1024);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::invalid_argument);
  EXPECT_NE(r.error().message().find("not a regular file"), std::string::npos);
  s = write_server_file(fifo, kBytes);
  EXPECT_EQ(s.code(), errc::invalid_argument) << s.to_string();
  std::remove(fifo.c_str());
}

}  // namespace
}  // namespace kvactor::detail
