#include "proc_stats.hpp"

#include <dirent.h>
#include <sys/resource.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace kvbench::dist {

long long mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

long long cpu_ns(clockid_t c) {
  timespec ts;
  clock_gettime(c, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

long long proc_cswitches(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  long long sum = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream f(dir + "/" + e->d_name + "/status");
      std::string line;
      while (std::getline(f, line))
        if (line.find("ctxt_switches:") != std::string::npos)
          sum += std::strtoll(line.c_str() + line.find(':') + 1, nullptr, 10);
    }
    ::closedir(d);
  }
  return sum;
}

long long self_cswitches() {
  rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_nvcsw + ru.ru_nivcsw;
}

proc_figures read_mem(pid_t pid) {
  proc_figures m;
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) m.rss = std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
    if (line.rfind("VmHWM:", 0) == 0) m.hwm = std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return m;
}

long long proc_cpu_ns(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  long long sum = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream f(dir + "/" + e->d_name + "/schedstat");
      long long ns = 0;
      if (f >> ns) sum += ns;
    }
    ::closedir(d);
  }
  return sum;
}

}  // namespace kvbench::dist
