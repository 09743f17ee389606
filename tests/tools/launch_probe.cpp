// Stands in for a scheduler, server or worker in the kvactor-launch tests: reports what the
// launcher gave it, then does what its arguments say for its role.
//
//   --scheduler ACT --server ACT --worker ACT   what to do per DMLC_ROLE (default exit:0)
//     ACT: exit:N | hang | stubborn (hang, ignoring SIGTERM) | tree (hang with a grandchild
//          that hangs too) | abort
//     ACT@TOKEN: only the process that creates DIR/TOKEN first does ACT, the others hang;
//          if the FIFO DIR/TOKEN.gate exists, that process waits for a byte from it first.
//   --dir DIR        for tokens, and secret.<pid> files holding the secret it got
//   --show VAR       also report VAR
//   --spam N         print N numbered 300-byte lines
//   --tail TEXT      print TEXT without a newline last
// Other arguments are only reported. Lines on stdout:
//   probe role=R pid=P uri=U port=N nserver=S nworker=W cluster=C secret=ok|missing|bad
//         launcher=L winner=0|1 [VAR=V]... args=A1|A2|...
//   probe-cwd=DIR
//   probe-grandchild pid=P      (tree)
// and on stderr: probe-stderr role=R pid=P
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

[[noreturn]] void hang() {
  for (;;)
    ::pause();
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir, actions[3] = {"exit:0", "exit:0", "exit:0"}, tail;
  std::vector<std::string> show;
  long spam = 0;
  std::string args;
  for (int i = 1; i < argc; ++i)
    args += (i > 1 ? "|" : "") + std::string(argv[i]);
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    bool has_value = i + 1 < argc;
    if (a == "--scheduler" && has_value) {
      actions[0] = argv[++i];
    } else if (a == "--server" && has_value) {
      actions[1] = argv[++i];
    } else if (a == "--worker" && has_value) {
      actions[2] = argv[++i];
    } else if (a == "--dir" && has_value) {
      dir = argv[++i];
    } else if (a == "--show" && has_value) {
      show.push_back(argv[++i]);
    } else if (a == "--spam" && has_value) {
      spam = std::atol(argv[++i]);
    } else if (a == "--tail" && has_value) {
      tail = argv[++i];
    }
  }

  const std::string role = env_or("DMLC_ROLE", "none");
  std::string action = role == "scheduler" ? actions[0]
                       : role == "server"  ? actions[1]
                                           : actions[2];
  bool winner = false;
  int gate = -1;
  if (auto at = action.find('@'); at != std::string::npos) {
    std::string token = dir + "/" + action.substr(at + 1);
    action.erase(at);
    int fd = ::open(token.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600);
    winner = fd >= 0;
    if (fd >= 0) ::close(fd);
    if (!winner) action = "hang";
    // O_RDWR on a FIFO never blocks on Linux, and the read below then waits for a byte.
    if (winner) gate = ::open((token + ".gate").c_str(), O_RDWR);
  }
  if (action == "stubborn") ::signal(SIGTERM, SIG_IGN);

  const char* secret = std::getenv("KVACTOR_SECRET");
  std::string secret_state = "missing";
  if (secret != nullptr) {
    secret_state =
        std::strlen(secret) == 64 && std::strspn(secret, "0123456789abcdef") == 64 ? "ok" : "bad";
    if (!dir.empty()) {
      std::string path = dir + "/secret." + std::to_string(::getpid());
      if (FILE* f = std::fopen(path.c_str(), "w")) {
        std::fputs(secret, f);
        std::fclose(f);
      }
    }
  }

  if (action == "tree") {
    if (::fork() == 0) {
      std::printf("probe-grandchild pid=%d\n", static_cast<int>(::getpid()));
      std::fflush(stdout);
      hang();
    }
  }

  std::string line =
      "probe role=" + role + " pid=" + std::to_string(::getpid()) +
      " uri=" + env_or("DMLC_PS_ROOT_URI", "-") + " port=" + env_or("DMLC_PS_ROOT_PORT", "-") +
      " nserver=" + env_or("DMLC_NUM_SERVER", "-") + " nworker=" + env_or("DMLC_NUM_WORKER", "-") +
      " cluster=" + env_or("KVACTOR_CLUSTER_ID", "-") + " secret=" + secret_state +
      " launcher=" + env_or("KVACTOR_LAUNCHER", "-") + " winner=" + (winner ? "1" : "0");
  for (const auto& v : show)
    line += " " + v + "=" + env_or(v.c_str(), "(unset)");
  line += " args=" + args;
  std::printf("%s\n", line.c_str());
  char cwd[PATH_MAX];
  std::printf("probe-cwd=%s\n", ::getcwd(cwd, sizeof cwd) ? cwd : "?");
  std::string filler(300, 'x');
  for (long i = 0; i < spam; ++i)
    std::printf("spam %d %ld %s\n", static_cast<int>(::getpid()), i, filler.c_str());
  std::printf("%s", tail.c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "probe-stderr role=%s pid=%d\n", role.c_str(), static_cast<int>(::getpid()));

  if (gate >= 0) {
    char b;
    [[maybe_unused]] ssize_t n = ::read(gate, &b, 1);
  }
  if (action.rfind("exit:", 0) == 0) return std::atoi(action.c_str() + 5);
  if (action == "abort") {
    // No core dump, not even to a core_pattern pipe: the test stays fast.
    ::prctl(PR_SET_DUMPABLE, 0);
    std::abort();
  }
  hang();
}
