// Bounds-checked decoding of cereal's portable binary layout. cereal's own container loaders
// resize to whatever length the bytes claim; every kvactor decoder instead reads lengths
// through these helpers, which check the claim against the bytes that remain and against a cap
// before allocating.
// Thread-safety: an archive object belongs to one thread.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "kvactor/result.hpp"

namespace kvactor::serialization {

/// Thrown inside decoders; the public decode functions turn it into a protocol_error status.
struct decode_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Reads cereal's portable binary layout straight from caller memory: a byte saying the
/// writer's byte order (cereal's rule: on a little-endian host anything but 1 means swap), then
/// integers of that order, and raw bytes. Every message header on every connection is decoded
/// here, so it reads with memcpy rather than through an istream and cereal's archive (a
/// streambuf call per field cost more than the rest of decoding a request).
class bounded_input {
 public:
  bounded_input(const std::uint8_t* data, std::size_t size) : at_(data), end_(data + size) {
    std::uint8_t order = 0;
    read_bytes(&order, 1);
    swap_ = host_little_endian() ? order != 1 : order != 0;
  }

  std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - at_); }

  template <class T>
  void read(T& x) {
    static_assert(std::is_arithmetic_v<T>, "integers and flags");
    std::uint8_t b[sizeof(T)];
    read_bytes(b, sizeof(T));
    if (swap_)
      for (std::size_t i = 0; i < sizeof(T) / 2; ++i)
        std::swap(b[i], b[sizeof(T) - 1 - i]);
    std::memcpy(&x, b, sizeof(T));
  }

  /// n bytes as they are (no byte order: strings, blobs, tensor bytes).
  void read_bytes(void* to, std::size_t n) {
    if (remaining() < n) throw decode_failure{"truncated input"};
    if (n) std::memcpy(to, at_, n);
    at_ += n;
  }

  /// A length that must fit both `cap` and the bytes left (each element at least
  /// min_element_bytes long).
  std::uint64_t read_length(std::uint64_t cap, std::size_t min_element_bytes, const char* what) {
    std::uint64_t n = 0;
    read(n);
    if (n > cap)
      throw decode_failure{std::string{what} + ": length " + std::to_string(n) +
                           " exceeds the cap " + std::to_string(cap)};
    if (min_element_bytes && n > remaining() / min_element_bytes)
      throw decode_failure{std::string{what} + ": length " + std::to_string(n) +
                           " exceeds the bytes left"};
    return n;
  }

  void read_string(std::string& s, std::size_t cap, const char* what) {
    auto n = read_length(cap, 1, what);
    s.resize(static_cast<std::size_t>(n));
    read_bytes(s.data(), static_cast<std::size_t>(n));
  }

 private:
  static bool host_little_endian() noexcept {
    const std::uint16_t one = 1;
    std::uint8_t first = 0;
    std::memcpy(&first, &one, 1);
    return first == 1;
  }

  const std::uint8_t* at_;
  const std::uint8_t* end_;
  bool swap_ = false;
};

/// Runs body(in, value) over all of (data, size), which must consume every byte: the one place
/// where what a decoder throws (decode_failure, cereal's exceptions) becomes a protocol_error
/// "<what>: <reason>".
template <class T, class F>
result<T> decode_whole(const char* what, const std::uint8_t* data, std::size_t size, F&& body) {
  try {
    bounded_input in(data, size);
    T v;
    body(in, v);
    if (in.remaining() != 0) throw decode_failure{"trailing bytes"};
    return v;
  } catch (const decode_failure& e) {
    return status{errc::protocol_error, std::string{what} + ": " + e.what()};
  }
}

}  // namespace kvactor::serialization
