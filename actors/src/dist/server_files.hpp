// Files a server writes or reads because a worker asked: profiles (set_profiler_params
// filename=NAME) and optimizer states (save_optimizer_states / load_optimizer_states NAME).
// A worker names a file; the server decides the directory: only the one it was started with
// for that kind of file (KVACTOR_PROFILE_DIR, KVACTOR_STATES_DIR), so that a peer holding the
// job secret cannot make a server write or read anywhere else. Without that directory a name
// is refused (unsupported, naming the variable), so that no file lands in a place nobody
// chose. Of the name, only the last path component is kept, each character other than A-Z
// a-z 0-9 . _ + - becomes '_', and a leading '.' too (no "..", no hidden files); the
// server's rank follows: DIR/NAME.server<rank>. Nothing is opened through a symbolic link
// (the directory may be shared, /tmp): a link planted under the name is refused, not
// followed, and so is anything that is not a regular file (a FIFO would block the reader).
// Thread-safety: pure functions; write_server_file and read_server_file touch one file each
// (two writes of the same path at once: the last rename wins, never a mixed file).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvactor/result.hpp"

namespace kvactor::detail {

/// The longest file name (before ".server<rank>") a worker may give.
constexpr std::size_t kMaxServerFileName = 200;

enum class server_file_kind {
  profile,  ///< under KVACTOR_PROFILE_DIR
  states,   ///< under KVACTOR_STATES_DIR
};

/// `requested` reduced to a safe file name, or invalid_argument when nothing is left of it or
/// it is longer than kMaxServerFileName.
result<std::string> server_file_name(const std::string& requested);

/// DIR/NAME.server<rank>: unsupported naming the kind's variable when `dir` is empty (the
/// server was started without it), invalid_argument for a name server_file_name refuses.
result<std::string> server_file_path(server_file_kind kind, const std::string& dir,
                                     const std::string& requested, std::int64_t server_rank);

/// Writes `bytes` to a fresh temporary file next to `path`, then renames it over `path`, so
/// that a crash never leaves a half-written file under the real name. invalid_argument
/// naming the path when it cannot, or when `path` is a symbolic link or not a regular file.
status write_server_file(const std::string& path, const std::vector<std::uint8_t>& bytes);

/// The whole file. invalid_argument naming the path when it cannot be read, is a symbolic
/// link or not a regular file; protocol_error when it is larger than `max_bytes`.
result<std::vector<std::uint8_t>> read_server_file(const std::string& path,
                                                   std::uint64_t max_bytes);

}  // namespace kvactor::detail
