// The wire and file encoding of optimizer_config (the type itself is API:
// kvactor/optimizer_config.hpp).
// Thread-safety: encode/decode are pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kvactor/optimizer_config.hpp"
#include "kvactor/result.hpp"

namespace kvactor {

/// Limits that decode() enforces before allocating anything.
struct config_caps {
  std::size_t max_bytes = 64 * 1024;
  std::size_t max_name_length = 256;
  std::size_t max_params = 256;
};

/// A versioned binary encoding (cereal, portable byte order).
std::vector<std::uint8_t> encode(const optimizer_config& cfg);
/// Decodes what encode() wrote; a truncated, oversized, foreign or corrupt buffer gives
/// protocol_error and never a large allocation.
result<optimizer_config> decode_optimizer_config(const std::uint8_t* data, std::size_t size,
                                                 const config_caps& caps = {});

}  // namespace kvactor
