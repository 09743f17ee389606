#include "kvactor/key.hpp"

namespace kvactor {

std::string key::to_string() const {
  if (is_int()) return std::to_string(as_int());
  return "\"" + as_string() + "\"";
}

namespace {
// splitmix64 finaliser: consecutive int keys must spread across shards and servers.
std::uint64_t mix(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
}  // namespace

// Defined here rather than with std::hash so that every process of a cluster, whatever its
// standard library, places a key on the same shard and server.
std::size_t key::hash() const noexcept {
  // get_if, not as_int/as_string: those may throw, and a hash must not.
  if (const auto* i = std::get_if<std::int64_t>(&v_))
    return static_cast<std::size_t>(mix(static_cast<std::uint64_t>(*i)));
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (unsigned char c : *std::get_if<std::string>(&v_))
    h = (h ^ c) * 0x100000001b3ull;
  return static_cast<std::size_t>(mix(h));
}

}  // namespace kvactor
