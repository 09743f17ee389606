// The optimizer-state file that save_optimizer_states writes and load_optimizer_states reads:
// a magic, a version, optionally the optimizer's config, then per key (and key part, for
// servers holding parts of split keys) the update count and the state tensors as raw bytes,
// then a checksum over everything before it. Decoding checks every length against the bytes
// left and the caps before allocating; a truncated, corrupt or foreign file is a
// protocol_error naming what is wrong.
// Thread-safety: value types and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kvactor/result.hpp"
#include "kvactor/serialization/optimizer_config.hpp"
#include "kvactor/serialization/protocol.hpp"

namespace kvactor::wire {

struct slot_record {
  std::uint8_t dtype = 0;
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> bytes;
};

struct key_state_record {
  wire_key key;
  std::uint32_t part = 0;
  std::uint32_t num_parts = 1;
  std::uint64_t count = 0;
  std::vector<slot_record> slots;
  std::optional<slot_record> master;  ///< float32 master weight under multi-precision
};

struct states_file {
  std::optional<optimizer_config> optimizer;
  std::vector<key_state_record> keys;
};

struct states_caps {
  std::uint64_t max_bytes = std::uint64_t{1} << 40;
  std::uint32_t max_slots = 16;
  std::uint32_t max_dims = 32;
};

std::vector<std::uint8_t> encode(const states_file& f);
result<states_file> decode_states(const std::uint8_t* data, std::size_t size,
                                  const states_caps& caps = {});

/// Whole-file helpers; errors name the path.
status write_states_file(const std::string& path, const states_file& f);
result<states_file> read_states_file(const std::string& path, const states_caps& caps = {});

}  // namespace kvactor::wire
