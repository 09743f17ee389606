// libFuzzer target: the transport's 56-byte frame header (serialization/frame.hpp).
// Input: the header bytes, optionally followed by 16 bytes of receiver caps (u32 meta,
// u64 message, u32 slice, little-endian) so that small caps are explored as well as the
// defaults. Every accepted header must satisfy the documented rules and re-encode to exactly
// the bytes it came from.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "fuzz_check.hpp"
#include "kvactor/serialization/frame.hpp"

namespace {

using namespace kvactor::serialization;

template <class T>
T read_le(const std::uint8_t* p) {
  T v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i)
    v |= static_cast<T>(T{p[i]} << (8 * i));
  return v;
}

void check_accepted(const frame_header& h, const frame_caps& caps, const std::uint8_t* data) {
  KVACTOR_FUZZ_CHECK(h.meta_size <= caps.max_meta, "meta over the cap accepted");
  KVACTOR_FUZZ_CHECK(h.total_size <= caps.max_message, "total over the cap accepted");
  KVACTOR_FUZZ_CHECK(h.slice_size <= caps.max_slice, "slice over the cap accepted");
  KVACTOR_FUZZ_CHECK(h.meta_size == 0 || h.is_first(), "meta on a non-FIRST frame");
  KVACTOR_FUZZ_CHECK(!h.is_first() || h.offset == 0, "FIRST frame at a non-zero offset");
  KVACTOR_FUZZ_CHECK(h.slice_size <= h.total_size && h.offset <= h.total_size - h.slice_size,
                     "slice beyond the total");
  const bool ends = h.offset + h.slice_size == h.total_size;
  KVACTOR_FUZZ_CHECK(h.is_last() == ends, "LAST flag disagrees with the end of the payload");
  KVACTOR_FUZZ_CHECK(h.slice_size != 0 || (h.is_first() && h.is_last()),
                     "empty slice outside a whole empty message");

  // Round trip: the encoder writes back exactly the bytes the decoder accepted.
  const frame_bytes again = encode_frame_header(h);
  KVACTOR_FUZZ_CHECK(std::memcmp(again.data(), data, frame_header_size) == 0,
                     "re-encoded header differs from the input");
  auto back = decode_frame_header(again.data(), again.size(), caps);
  KVACTOR_FUZZ_CHECK(back.has_value(), "re-encoded header is rejected");
  KVACTOR_FUZZ_CHECK(*back == h, "header changed in a round trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const frame_caps defaults;
  if (auto h = decode_frame_header(data, size, defaults)) check_accepted(*h, defaults, data);
  if (size >= frame_header_size + 16) {
    frame_caps caps;
    const std::uint8_t* c = data + frame_header_size;
    caps.max_meta = read_le<std::uint32_t>(c);
    caps.max_message = read_le<std::uint64_t>(c + 4);
    caps.max_slice = read_le<std::uint32_t>(c + 12);
    if (auto h = decode_frame_header(data, size, caps)) check_accepted(*h, caps, data);
  }
  return 0;
}
