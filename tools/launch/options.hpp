// Command line of kvactor-launch: parsing and validation, the help text, and the small shell
// helpers (word splitting for --server-cmd, quoting for ssh command lines).
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvactor::launch {

/// A bad command line; main prints the message with the usage and exits 2.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class launcher_kind { local, ssh };

struct options {
  bool help = false;
  int num_workers = 0;
  int num_servers = 0;  ///< defaults to num_workers, as in MXNet's launch.py
  launcher_kind launcher = launcher_kind::local;
  std::string hostfile;
  std::vector<std::string> hosts;                        ///< from the hostfile, ssh mode only
  std::vector<std::pair<std::string, std::string>> env;  ///< --env, in order
  std::vector<std::string> server_cmd;                   ///< empty: not given
  int port = 0;                                          ///< 0: pick a free one
  double timeout_s = 0;                                  ///< 0: no limit
  double grace_s = 10;
  std::vector<std::string> program;
};

/// Parses argv; throws usage_error on anything invalid (reading the hostfile included).
options parse_options(int argc, char** argv);

std::string usage_text();
std::string help_text();

/// Splits like a POSIX shell without expansions: blanks separate words, '...' is literal,
/// "..." allows \" \\ \$ \`, a backslash outside quotes escapes the next character.
std::vector<std::string> shell_split(std::string_view text);

/// One word for a POSIX shell: unchanged when it holds only safe characters, else '...'.
std::string shell_quote(std::string_view word);

/// Hosts of a hostfile: one per line, first word, "host:slots" loses ":slots", blank lines
/// and # comments skipped. Throws usage_error when unreadable, empty or malformed.
std::vector<std::string> read_hostfile(const std::string& path);

/// read_hostfile's parser on the file's text (`origin` names it in errors); separate so that
/// the fuzzer (tests/fuzz) reaches it without a file.
std::vector<std::string> parse_hostfile_text(const std::string& text, const std::string& origin);

/// The variables kvactor-launch sets itself; --env may not override them.
const std::vector<std::string>& reserved_env_names();

}  // namespace kvactor::launch
