// What the launcher sets up in its own process: signal handlers that only write the signal
// number into a wake pipe (the poll loop reads it and does the work), SIGPIPE ignored, and
// the child-subreaper role with the listing of its children from /proc.
// Thread-safety: the launcher's one thread (the handlers are async-signal-safe).
#pragma once

#include <sys/types.h>

#include <utility>
#include <vector>

namespace kvactor::launch {

/// Creates the wake pipe and installs the handlers (SIGINT, SIGTERM, SIGHUP, SIGCHLD);
/// false, with a message said, when the pipe cannot be created.
bool install_handlers();

/// The read end of the wake pipe (non-blocking): one byte per signal received.
int wake_fd();

/// Children of this process (ours and orphans adopted as subreaper) with their state letter.
std::vector<std::pair<pid_t, char>> children_of_self();

}  // namespace kvactor::launch
