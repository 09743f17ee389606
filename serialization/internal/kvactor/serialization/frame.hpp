// The transport's frame header: 56 bytes, little-endian on every host, validated on decode
// so that nothing a peer claims is trusted before it has been checked against caps.
//
//   offset size field
//   0      4    magic 'K','V','A','F'
//   4      1    version (1)
//   5      1    type: 0-15 transport (see frame_type), 16+ application
//   6      2    flags: FIRST 0x8000, LAST 0x4000, low 14 bits application flags
//   8      8    id
//   16     8    stream
//   24     4    priority (i32)
//   28     4    meta_size (0 unless FIRST)
//   32     8    total payload size of the whole message
//   40     8    offset of this frame's payload slice within the message payload
//   48     4    slice_size: payload bytes following this header (after the meta)
//   52     4    shm_slot: 0, or (on an application frame between two co-located ends) n > 0:
//                the slice's bytes do not follow on the wire but lie in slot n-1 of the
//                sender's shared-memory segment (net/src/shm.hpp); a receiver that mapped no
//                segment of its peer refuses it like any other reserved bits
//
// A message is one FIRST frame (which carries the meta), then continuation frames, the last
// one flagged LAST; a message that fits one frame is a single FIRST|LAST frame. Slices of one
// message may travel some on the wire and some through shared memory (the sender falls back
// to the wire while its slots are all in use).
// Thread-safety: values and pure functions.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "kvactor/result.hpp"

namespace kvactor::serialization {

inline constexpr std::size_t frame_header_size = 56;
inline constexpr std::uint8_t frame_version = 1;

namespace frame_flags {
inline constexpr std::uint16_t first = 0x8000;
inline constexpr std::uint16_t last = 0x4000;
inline constexpr std::uint16_t application_mask = 0x3fff;
}  // namespace frame_flags

namespace frame_type {
inline constexpr std::uint8_t challenge = 1;
inline constexpr std::uint8_t hello = 2;
inline constexpr std::uint8_t welcome = 3;
inline constexpr std::uint8_t heartbeat = 4;
inline constexpr std::uint8_t goodbye = 5;
/// Sent in plaintext by an acceptor that requires TLS, before the TLS handshake: a connector
/// learns at once whether both ends agree (see net/src/tls.hpp).
inline constexpr std::uint8_t tls = 6;
/// Shared memory between co-located ends (net/src/shm.hpp): a segment offered (the
/// connector's right behind its HELLO, the acceptor's behind its answer), the answer, and
/// slots given back. Only an open connection accepts them.
inline constexpr std::uint8_t shm_offer = 10;
inline constexpr std::uint8_t shm_answer = 11;
inline constexpr std::uint8_t shm_release = 12;
/// Types below this one belong to the transport.
inline constexpr std::uint8_t first_application = 16;
}  // namespace frame_type

struct frame_header {
  std::uint8_t type = 0;
  std::uint16_t flags = 0;
  std::uint64_t id = 0;
  std::uint64_t stream = 0;
  std::int32_t priority = 0;
  std::uint32_t meta_size = 0;
  std::uint64_t total_size = 0;
  std::uint64_t offset = 0;
  std::uint32_t slice_size = 0;
  std::uint32_t shm_slot = 0;  ///< 0: the slice follows on the wire; n: in the peer's slot n-1

  bool is_first() const noexcept { return (flags & frame_flags::first) != 0; }
  bool is_last() const noexcept { return (flags & frame_flags::last) != 0; }
  std::uint16_t application_flags() const noexcept { return flags & frame_flags::application_mask; }

  friend bool operator==(const frame_header& a, const frame_header& b) noexcept {
    return a.type == b.type && a.flags == b.flags && a.id == b.id && a.stream == b.stream &&
           a.priority == b.priority && a.meta_size == b.meta_size && a.total_size == b.total_size &&
           a.offset == b.offset && a.slice_size == b.slice_size && a.shm_slot == b.shm_slot;
  }
  friend bool operator!=(const frame_header& a, const frame_header& b) noexcept {
    return !(a == b);
  }
};

/// What decode_frame_header accepts; a receiver passes its own limits.
struct frame_caps {
  std::uint32_t max_meta = 64 * 1024;
  std::uint64_t max_message = std::uint64_t{4} << 30;  ///< total payload of one message
  std::uint32_t max_slice = 1 << 20;
  /// A receiver that mapped its peer's shared-memory segment: shm_slot may be set (on an
  /// application frame with a non-empty slice; the receiver checks the slot itself).
  bool shm_refs = false;
};

using frame_bytes = std::array<std::uint8_t, frame_header_size>;

/// Writes the 56 header bytes to out. Does not validate: the sender builds valid headers.
void encode_frame_header(const frame_header& h, std::uint8_t* out) noexcept;
frame_bytes encode_frame_header(const frame_header& h) noexcept;

/// Decodes and validates a header (`size` must be at least frame_header_size; only the first
/// 56 bytes are read). Every rejection is protocol_error with a reason naming the field:
/// bad magic, unsupported version, reserved bytes set (shm_slot without caps.shm_refs, or on a
/// transport frame or an empty slice), meta on a non-FIRST frame, a FIRST
/// frame at a non-zero offset, offset + slice beyond the total (overflow-safe), a LAST frame
/// that does not end the payload, a non-LAST frame that does, an empty slice in anything but
/// a whole empty message, and meta, slice or total over `caps`.
result<frame_header> decode_frame_header(const std::uint8_t* data, std::size_t size,
                                         const frame_caps& caps);

}  // namespace kvactor::serialization
