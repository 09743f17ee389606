// Bounds-checked cereal decoding. cereal's own container loaders resize to whatever length
// the bytes claim; every kvactor decoder instead reads lengths through these helpers, which
// check the claim against the bytes that remain and against a cap before allocating.
// Thread-safety: an archive object belongs to one thread.
#pragma once

#include <cereal/archives/portable_binary.hpp>

#include <cstdint>
#include <istream>
#include <stdexcept>
#include <streambuf>
#include <string>

#include "kvactor/result.hpp"

namespace kvactor::serialization {

/// Thrown inside decoders; the public decode functions turn it into a protocol_error status.
struct decode_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A read-only streambuf over caller memory that knows how much is left.
class memory_buf : public std::streambuf {
 public:
  memory_buf(const std::uint8_t* data, std::size_t size) {
    auto p = reinterpret_cast<char*>(const_cast<std::uint8_t*>(data));
    setg(p, p, p + size);
  }
  std::size_t remaining() const noexcept { return static_cast<std::size_t>(egptr() - gptr()); }
};

class bounded_input {
 public:
  bounded_input(const std::uint8_t* data, std::size_t size)
      : buf_(data, size), in_(&buf_), ar_(in_) {}

  cereal::PortableBinaryInputArchive& archive() noexcept { return ar_; }
  std::size_t remaining() const noexcept { return buf_.remaining(); }

  template <class T>
  void read(T& x) {
    if (remaining() < sizeof(T)) throw decode_failure{"truncated input"};
    ar_(x);
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
    if (n) ar_(cereal::binary_data(s.data(), static_cast<std::size_t>(n)));
  }

 private:
  memory_buf buf_;
  std::istream in_;
  cereal::PortableBinaryInputArchive ar_;
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
  } catch (const cereal::Exception& e) {
    return status{errc::protocol_error, std::string{what} + ": " + e.what()};
  }
}

}  // namespace kvactor::serialization
