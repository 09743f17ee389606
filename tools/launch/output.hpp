// The launcher's output: its own messages on stderr, and its children's stdout and stderr
// relayed line by line with the child's prefix ("[worker 0] "), one write per batch of whole
// lines so that output of different processes never mixes mid-line.
// Thread-safety: the launcher's one thread.
#pragma once

#include <string>

namespace kvactor::launch {

/// Writes all of data to fd, waiting while a non-blocking fd is full; gives up quietly when
/// nobody reads any more (EPIPE and friends).
void write_all(int fd, const std::string& data);

/// "kvactor-launch: <msg>" on stderr.
void say(const std::string& msg);

/// One child's stdout or stderr: the read end of its pipe (-1 once closed), where its lines
/// go (1 or 2) and the incomplete line read so far.
struct out_stream {
  int fd = -1;
  int target = 1;
  std::string buf;
};

/// Reads s once (or, with to_end, until nothing is left) and relays the complete lines; at
/// EOF the rest too, and closes s.fd.
void read_stream(const std::string& prefix, out_stream& s, bool to_end);

}  // namespace kvactor::launch
