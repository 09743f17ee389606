// libFuzzer target: the optimizer-state file reader (serialization/optimizer_states.hpp).
// The first input byte is a mode: odd means "the rest is a file body, append its correct
// checksum" (so that mutations get past the checksum and reach the parser), even means "the
// rest is a whole file, checksum included" (so that the checksum check itself is fuzzed).
// An accepted file must satisfy what the reader promises (parts, dtypes, shapes matching the
// bytes) and survive encode/decode unchanged.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_check.hpp"
#include "kvactor/serialization/optimizer_states.hpp"

namespace {

using namespace kvactor::wire;

std::uint64_t fnv1a(const std::uint8_t* p, std::size_t n) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i < n; ++i)
    h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

bool same(const slot_record& a, const slot_record& b) {
  return a.dtype == b.dtype && a.dims == b.dims && a.bytes == b.bytes;
}

bool same(const states_file& a, const states_file& b) {
  if (a.optimizer.has_value() != b.optimizer.has_value() || a.keys.size() != b.keys.size())
    return false;
  if (a.optimizer && !kvactor::fuzz::same_config(*a.optimizer, *b.optimizer)) return false;
  for (std::size_t i = 0; i < a.keys.size(); ++i) {
    const auto &x = a.keys[i], &y = b.keys[i];
    if (x.key.is_string != y.key.is_string || x.key.id != y.key.id || x.key.name != y.key.name ||
        x.part != y.part || x.num_parts != y.num_parts || x.count != y.count ||
        x.slots.size() != y.slots.size() || x.master.has_value() != y.master.has_value())
      return false;
    for (std::size_t s = 0; s < x.slots.size(); ++s)
      if (!same(x.slots[s], y.slots[s])) return false;
    if (x.master && !same(*x.master, *y.master)) return false;
  }
  return true;
}

// A slot's bytes hold exactly the elements its shape says (no dims: no elements), computed
// here without overflow: a shape whose element count wraps around must have been rejected.
void check_slot(const slot_record& s, const states_caps& caps) {
  static const std::uint64_t sizes[] = {4, 2, 2, 8, 4, 8, 1};
  KVACTOR_FUZZ_CHECK(s.dtype < 7, "unknown dtype accepted");
  KVACTOR_FUZZ_CHECK(s.dims.size() <= caps.max_dims, "too many dims accepted");
  std::uint64_t numel = s.dims.empty() ? 0 : 1;
  for (auto d : s.dims) {
    KVACTOR_FUZZ_CHECK(d > 0, "non-positive dimension accepted");
    KVACTOR_FUZZ_CHECK(static_cast<std::uint64_t>(d) <= (std::uint64_t{1} << 40) / numel,
                       "element count over 2^40 accepted");
    numel *= static_cast<std::uint64_t>(d);
  }
  KVACTOR_FUZZ_CHECK(numel * sizes[s.dtype] == s.bytes.size(), "bytes do not match the shape");
}

void check(const states_file& f, const states_caps& caps) {
  for (const auto& k : f.keys) {
    KVACTOR_FUZZ_CHECK(k.num_parts > 0 && k.part < k.num_parts, "bad key part accepted");
    KVACTOR_FUZZ_CHECK(k.key.name.size() <= 4096, "key name over its cap");
    KVACTOR_FUZZ_CHECK(k.slots.size() <= caps.max_slots, "too many slots accepted");
    for (const auto& s : k.slots)
      check_slot(s, caps);
    if (k.master) check_slot(*k.master, caps);
  }
}

void run(const std::uint8_t* data, std::size_t size, const states_caps& caps) {
  auto first = decode_states(data, size, caps);
  if (!first) return;
  check(*first, caps);
  const std::vector<std::uint8_t> bytes = encode(*first);
  auto second = decode_states(bytes.data(), bytes.size(), caps);
  KVACTOR_FUZZ_CHECK(second.has_value(), "re-encoded file is rejected");
  KVACTOR_FUZZ_CHECK(same(*first, *second), "states changed in a round trip");
  KVACTOR_FUZZ_CHECK(encode(*second) == bytes, "encoding is not stable");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::vector<std::uint8_t> file(data + 1, data + size);
  if (data[0] & 1) {
    const std::uint64_t sum = fnv1a(file.data(), file.size());
    for (int i = 0; i < 8; ++i)
      file.push_back(static_cast<std::uint8_t>(sum >> (8 * i)));
  }
  run(file.data(), file.size(), states_caps{});
  states_caps small;
  small.max_bytes = 4096;
  small.max_slots = 2;
  small.max_dims = 3;
  run(file.data(), file.size(), small);
  return 0;
}
