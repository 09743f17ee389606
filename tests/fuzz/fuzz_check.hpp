// Helpers shared by the libFuzzer targets: a check that aborts (so that libFuzzer records the
// input as a crash) and comparisons that treat values as the bytes they travel as.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

// A broken invariant or an unstable round trip is a finding like a crash: abort with a reason.
#define KVACTOR_FUZZ_CHECK(cond, what)                                                        \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      std::fprintf(stderr, "fuzz check failed at %s:%d: %s (%s)\n", __FILE__, __LINE__, what, \
                   #cond);                                                                    \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)

namespace kvactor::fuzz {

// Doubles compare by bits: a NaN that survives a round trip is stable, and -0.0 must stay -0.0.
inline bool same_bits(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

// Config is kvactor::optimizer_config (a template so that this header needs no library).
template <class Config>
bool same_config(const Config& a, const Config& b) {
  if (a.type != b.type || a.params.size() != b.params.size()) return false;
  for (auto i = a.params.begin(), j = b.params.begin(); i != a.params.end(); ++i, ++j)
    if (i->first != j->first || !same_bits(i->second, j->second)) return false;
  return true;
}

// cereal's portable archive starts with a byte that says the writer's byte order; our encoders
// always write little-endian (1) on this host, so only such inputs can re-encode byte for byte.
inline bool little_endian_archive(const std::uint8_t* data, std::size_t size) {
  return size > 0 && data[0] == 1;
}

}  // namespace kvactor::fuzz
