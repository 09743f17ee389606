// libFuzzer target: the optimizer config decoder (serialization/optimizer_config.hpp), with
// the default caps and with small ones. An accepted config must keep within the caps and
// survive encode/decode unchanged (parameters may arrive in any order; the encoding sorts
// them, so byte equality is checked from the first re-encoding on).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_check.hpp"
#include "kvactor/serialization/optimizer_config.hpp"

namespace {

using kvactor::config_caps;
using kvactor::decode_optimizer_config;
using kvactor::optimizer_config;

void run(const std::uint8_t* data, std::size_t size, const config_caps& caps) {
  auto first = decode_optimizer_config(data, size, caps);
  if (!first) return;
  KVACTOR_FUZZ_CHECK(size <= caps.max_bytes, "config over max_bytes accepted");
  KVACTOR_FUZZ_CHECK(first->type.size() <= caps.max_name_length, "type over its cap");
  KVACTOR_FUZZ_CHECK(first->params.size() <= caps.max_params, "too many parameters accepted");
  for (const auto& [name, value] : first->params)
    KVACTOR_FUZZ_CHECK(name.size() <= caps.max_name_length, "parameter name over its cap");
  const std::vector<std::uint8_t> bytes = kvactor::encode(*first);
  KVACTOR_FUZZ_CHECK(bytes.size() == size, "re-encoding changed the size");
  auto second = decode_optimizer_config(bytes.data(), bytes.size(), caps);
  KVACTOR_FUZZ_CHECK(second.has_value(), "re-encoded config is rejected");
  KVACTOR_FUZZ_CHECK(kvactor::fuzz::same_config(*first, *second), "config changed in a round trip");
  KVACTOR_FUZZ_CHECK(kvactor::encode(*second) == bytes, "encoding is not stable");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  run(data, size, config_caps{});
  config_caps small;
  small.max_bytes = 512;
  small.max_name_length = 16;
  small.max_params = 4;
  run(data, size, small);
  return 0;
}
