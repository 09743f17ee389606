#include "launcher_process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "output.hpp"

namespace kvactor::launch {

namespace {

// Signal handlers only write the signal number here; the poll loop does the work.
int g_wake[2] = {-1, -1};

void on_signal(int sig) {
  int saved = errno;
  auto b = static_cast<unsigned char>(sig);
  // A full pipe already holds a wake-up, so a failed write loses nothing that matters.
  [[maybe_unused]] ssize_t r = ::write(g_wake[1], &b, 1);
  errno = saved;
}

}  // namespace

bool install_handlers() {
  if (::pipe2(g_wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    say(std::string("pipe: ") + std::strerror(errno));
    return false;
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGCHLD})
    ::sigaction(sig, &sa, nullptr);
  // A reader of our output that goes away must not kill the launcher mid-teardown.
  ::signal(SIGPIPE, SIG_IGN);
  // Orphans of our children become ours, so that we can stop and reap every descendant,
  // also one that left its process group, and return only when all are gone.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  return true;
}

int wake_fd() {
  return g_wake[0];
}

std::vector<std::pair<pid_t, char>> children_of_self() {
  std::vector<std::pair<pid_t, char>> found;
  const pid_t self = ::getpid();
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return found;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    const std::string path = std::string("/proc/") + e->d_name + "/stat";
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char buf[512];
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) continue;
    buf[n] = '\0';
    // "pid (comm) state ppid ...": comm may hold spaces and ')', so parse after the last ')'.
    const char* rp = std::strrchr(buf, ')');
    char state = 0;
    int ppid = 0;
    if (rp == nullptr || std::sscanf(rp + 1, " %c %d", &state, &ppid) != 2) continue;
    if (ppid == self) found.emplace_back(static_cast<pid_t>(std::atoi(e->d_name)), state);
  }
  ::closedir(dir);
  return found;
}

}  // namespace kvactor::launch
