// libFuzzer target: kvactor-launch's hostfile parser (tools/launch/options.hpp). An accepted
// hostfile must give hosts that are single words ssh cannot take for an option, and writing
// them back one per line must parse to the same list.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "options.hpp"

namespace {

using kvactor::launch::parse_hostfile_text;
using kvactor::launch::usage_error;

std::vector<std::string> parse(const std::string& text, bool* ok) {
  try {
    *ok = true;
    return parse_hostfile_text(text, "fuzz");
  } catch (const usage_error&) {
    *ok = false;
    return {};
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  bool ok = false;
  const auto hosts = parse(std::string(reinterpret_cast<const char*>(data), size), &ok);
  if (!ok) return 0;
  KVACTOR_FUZZ_CHECK(!hosts.empty(), "a hostfile without hosts accepted");
  std::string again;
  for (const auto& h : hosts) {
    KVACTOR_FUZZ_CHECK(!h.empty() && h[0] != '-', "empty host or one that ssh takes for an option");
    // The parser skips '#' comments, takes the first word and refuses control bytes: what it
    // gives back must hold no blank, '#' or control byte, or it is not what the line said.
    for (char c : h)
      KVACTOR_FUZZ_CHECK(c != ' ' && c != '#' && static_cast<unsigned char>(c) >= 0x20 && c != 0x7f,
                         "host holds a blank, a comment or a control byte");
    again += h + "\n";
  }
  const auto hosts2 = parse(again, &ok);
  KVACTOR_FUZZ_CHECK(ok, "hosts written back are rejected");
  KVACTOR_FUZZ_CHECK(hosts2 == hosts, "hosts changed in a round trip");
  return 0;
}
