#include "output.hpp"

#include <poll.h>
#include <unistd.h>

#include <cerrno>

namespace kvactor::launch {

namespace {

// Longer lines are split so that one process cannot make the launcher buffer without bound.
constexpr std::size_t kMaxLine = 64 * 1024;

// One write per batch of whole lines: output of different processes never mixes mid-line.
void emit_lines(const std::string& prefix, out_stream& s, bool flush_partial) {
  std::string out;
  std::size_t start = 0;
  for (;;) {
    auto nl = s.buf.find('\n', start);
    if (nl == std::string::npos) break;
    out += prefix;
    out.append(s.buf, start, nl - start + 1);
    start = nl + 1;
  }
  s.buf.erase(0, start);
  while (s.buf.size() >= kMaxLine) {
    out += prefix;
    out.append(s.buf, 0, kMaxLine);
    out += '\n';
    s.buf.erase(0, kMaxLine);
  }
  if (flush_partial && !s.buf.empty()) {
    out += prefix + s.buf + '\n';
    s.buf.clear();
  }
  if (!out.empty()) write_all(s.target, out);
}

}  // namespace

void write_all(int fd, const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      // An inherited non-blocking stdout: wait until it drains rather than drop output.
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, -1);
    } else {
      return;  // EPIPE and friends: nobody reads our output any more
    }
  }
}

void say(const std::string& msg) {
  write_all(2, "kvactor-launch: " + msg + "\n");
}

// Reads once (or, with to_end, until nothing is left) and prints the complete lines.
void read_stream(const std::string& prefix, out_stream& s, bool to_end) {
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(s.fd, buf, sizeof buf);
    if (n > 0) {
      s.buf.append(buf, static_cast<std::size_t>(n));
      emit_lines(prefix, s, false);
      if (to_end) continue;
      return;
    }
    if (n < 0 && errno == EINTR) continue;
    // EAGAIN at the end means someone outside our reach still holds the pipe.
    if (n < 0 && errno == EAGAIN) {
      if (to_end) emit_lines(prefix, s, true);
      return;
    }
    emit_lines(prefix, s, true);
    ::close(s.fd);
    s.fd = -1;
    return;
  }
}

}  // namespace kvactor::launch
