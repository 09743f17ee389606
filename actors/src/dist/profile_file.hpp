// Where a server writes the profile a worker asks for (set_profiler_params filename=NAME), and
// the writing. A worker names a file; the server decides the directory: only the one it was
// started with (KVACTOR_PROFILE_DIR), so that a worker cannot make a server write elsewhere.
// Without that directory a filename is refused (unsupported), so that no profile lands in a
// place nobody chose. Of the name, only the last path component is kept, each character
// other than A-Z a-z 0-9 . _ + - becomes '_', and a leading '.' too (no "..", no hidden
// files); the server's rank follows: DIR/NAME.server<rank>.
// Thread-safety: pure functions; write_profile writes one file.
#pragma once

#include <cstdint>
#include <string>

#include "kvactor/result.hpp"
#include "server_core.hpp"

namespace kvactor::detail {

/// The longest file name (before ".server<rank>") a profile may have.
constexpr std::size_t kMaxProfileName = 200;

/// `requested` reduced to a safe file name, or invalid_argument when nothing is left of it or
/// it is longer than kMaxProfileName.
result<std::string> profile_file_name(const std::string& requested);

/// DIR/NAME.server<rank>: unsupported when `dir` is empty (the server was started without
/// KVACTOR_PROFILE_DIR), invalid_argument for a name profile_file_name refuses.
result<std::string> profile_path(const std::string& dir, const std::string& requested,
                                 std::int64_t server_rank);

/// Writes the profile as one JSON line, replacing the file; a symlink in its place is refused.
status write_profile(const std::string& path, const server_profile& p);

}  // namespace kvactor::detail
