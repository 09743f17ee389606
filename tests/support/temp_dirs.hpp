// temp_dirs: a fresh directory `dir` inside a fresh directory `outer`, both under gtest's
// TempDir and removed (when empty again) at the end, so that a test can see whatever escaped
// from dir into outer. Thread-safety: one test thread.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

namespace kvactor::testing {

struct temp_dirs {
  /// outer is TempDir()/<prefix><pid>, dir is outer/<inner>.
  temp_dirs(const std::string& prefix, const std::string& inner) {
    outer = ::testing::TempDir() + prefix + std::to_string(::getpid());
    dir = outer + "/" + inner;
    EXPECT_EQ(::mkdir(outer.c_str(), 0700), 0);
    EXPECT_EQ(::mkdir(dir.c_str(), 0700), 0);
  }
  ~temp_dirs() {
    ::rmdir(dir.c_str());
    ::rmdir(outer.c_str());
  }
  temp_dirs(const temp_dirs&) = delete;
  temp_dirs& operator=(const temp_dirs&) = delete;
  std::string outer, dir;
};

}  // namespace kvactor::testing
