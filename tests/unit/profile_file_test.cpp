// Profile files (profile_file.hpp): only under the server's KVACTOR_PROFILE_DIR, whatever name
// a worker sends; without that directory a filename is refused.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "dist/profile_file.hpp"

namespace kvactor::detail {
namespace {

bool exists(const std::string& path) {
  struct ::stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

TEST(ProfileFile, NamesAreReducedToAPlainFileName) {
  const std::pair<const char*, const char*> cases[] = {
      {"profile.json", "profile.json"},
      {"../escape.json", "escape.json"},
      {"/etc/cron.d/evil", "evil"},
      {"a/b/../../c", "c"},
      {"..", "_."},
      {".hidden", "_hidden"},
      {"a b;rm -rf $HOME", "a_b_rm_-rf__HOME"},
      {"x\ny", "x_y"},
  };
  for (auto [in, out] : cases) {
    auto n = profile_file_name(in);
    ASSERT_TRUE(n) << in << ": " << n.error().to_string();
    EXPECT_EQ(*n, out) << in;
  }
  for (const std::string& bad : {std::string{"dir/"}, std::string{"/"}, std::string(201, 'a')}) {
    auto n = profile_file_name(bad);
    ASSERT_FALSE(n) << bad;
    EXPECT_EQ(n.error().code(), errc::invalid_argument);
  }
}

TEST(ProfileFile, WithoutADirectoryAFilenameIsRefused) {
  auto p = profile_path("", "profile.json", 0);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code(), errc::unsupported);
  EXPECT_NE(p.error().message().find("KVACTOR_PROFILE_DIR"), std::string::npos)
      << p.error().message();
}

// Paths that climb out or start at the root land inside the directory; a link planted under
// the name is not followed.
TEST(ProfileFile, NothingIsWrittenOutsideTheDirectory) {
  const std::string outer =
      ::testing::TempDir() + "kvactor-profile-test-" + std::to_string(::getpid());
  const std::string dir = outer + "/profiles";
  ASSERT_EQ(::mkdir(outer.c_str(), 0700), 0);
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  server_profile prof;
  prof.count[1] = 3;
  for (const std::string& name :
       {std::string{"../escape.json"}, outer + "/abs.json", std::string{"../../up.json"}}) {
    auto p = profile_path(dir, name, 1);
    ASSERT_TRUE(p) << p.error().to_string();
    EXPECT_EQ(p->rfind(dir + "/", 0), 0u) << *p;
    ASSERT_TRUE(write_profile(*p, prof).is_ok()) << *p;
    EXPECT_TRUE(exists(*p)) << *p;
    std::remove(p->c_str());
  }
  EXPECT_FALSE(exists(outer + "/escape.json.server1"));
  EXPECT_FALSE(exists(outer + "/abs.json.server1"));
  // A symlink in the directory pointing outside: refused, the target never created.
  const std::string target = outer + "/target";
  const std::string link = dir + "/linked.json.server1";
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  auto p = profile_path(dir, "linked.json", 1);
  ASSERT_TRUE(p);
  const status s = write_profile(*p, prof);
  EXPECT_EQ(s.code(), errc::invalid_argument) << s.to_string();
  EXPECT_FALSE(exists(target));
  std::remove(link.c_str());
  ::rmdir(dir.c_str());
  ::rmdir(outer.c_str());
}

}  // namespace
}  // namespace kvactor::detail
