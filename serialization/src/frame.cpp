#include "kvactor/serialization/frame.hpp"

#include <cstring>
#include <string>
#include <type_traits>

namespace kvactor::serialization {

namespace {

constexpr std::uint8_t magic[4] = {'K', 'V', 'A', 'F'};

// Byte by byte, so that the encoding is little-endian whatever the host.
template <class T>
void put(std::uint8_t* p, T v) noexcept {
  using U = std::make_unsigned_t<T>;
  const auto u = static_cast<U>(v);
  for (std::size_t i = 0; i < sizeof(T); ++i)
    p[i] = static_cast<std::uint8_t>(u >> (8 * i));
}

template <class T>
T get(const std::uint8_t* p) noexcept {
  using U = std::make_unsigned_t<T>;
  U u = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i)
    u |= static_cast<U>(U{p[i]} << (8 * i));
  return static_cast<T>(u);
}

status reject(std::string why) {
  return status{errc::protocol_error, "frame header: " + std::move(why)};
}

}  // namespace

void encode_frame_header(const frame_header& h, std::uint8_t* out) noexcept {
  std::memcpy(out, magic, 4);
  out[4] = frame_version;
  out[5] = h.type;
  put(out + 6, h.flags);
  put(out + 8, h.id);
  put(out + 16, h.stream);
  put(out + 24, h.priority);
  put(out + 28, h.meta_size);
  put(out + 32, h.total_size);
  put(out + 40, h.offset);
  put(out + 48, h.slice_size);
  put(out + 52, h.shm_slot);
}

frame_bytes encode_frame_header(const frame_header& h) noexcept {
  frame_bytes b;
  encode_frame_header(h, b.data());
  return b;
}

result<frame_header> decode_frame_header(const std::uint8_t* data, std::size_t size,
                                         const frame_caps& caps) {
  if (!data || size < frame_header_size)
    return reject("truncated: " + std::to_string(size) + " of " +
                  std::to_string(frame_header_size) + " bytes");
  if (std::memcmp(data, magic, 4) != 0) {
    static const char* hex = "0123456789abcdef";
    std::string seen;
    for (int i = 0; i < 4; ++i) {
      seen += hex[data[i] >> 4];
      seen += hex[data[i] & 15];
    }
    return reject("bad magic 0x" + seen + " (expected KVAF)");
  }
  if (data[4] != frame_version)
    return reject("unsupported version " + std::to_string(data[4]) + " (this build speaks " +
                  std::to_string(frame_version) + ")");
  const auto shm_slot = get<std::uint32_t>(data + 52);
  if (shm_slot != 0 && !caps.shm_refs)
    return reject(
        "reserved bytes are not zero (a shared-memory slot, but no segment of the "
        "peer is mapped)");

  frame_header h;
  h.type = data[5];
  h.flags = get<std::uint16_t>(data + 6);
  h.id = get<std::uint64_t>(data + 8);
  h.stream = get<std::uint64_t>(data + 16);
  h.priority = get<std::int32_t>(data + 24);
  h.meta_size = get<std::uint32_t>(data + 28);
  h.total_size = get<std::uint64_t>(data + 32);
  h.offset = get<std::uint64_t>(data + 40);
  h.slice_size = get<std::uint32_t>(data + 48);
  h.shm_slot = shm_slot;

  // Named only in a refusal: a valid frame (every frame of the hot path) builds no string.
  const auto t = [&h] {
    return "type " + std::to_string(h.type) + " id " + std::to_string(h.id) + ": ";
  };
  if (h.meta_size != 0 && !h.is_first())
    return reject(t() + std::to_string(h.meta_size) + " meta bytes on a frame that is not FIRST");
  if (h.meta_size > caps.max_meta)
    return reject(t() + "meta of " + std::to_string(h.meta_size) + " bytes exceeds the cap of " +
                  std::to_string(caps.max_meta));
  if (h.total_size > caps.max_message)
    return reject(t() + "message of " + std::to_string(h.total_size) +
                  " bytes exceeds the cap of " + std::to_string(caps.max_message));
  if (h.slice_size > caps.max_slice)
    return reject(t() + "slice of " + std::to_string(h.slice_size) + " bytes exceeds the cap of " +
                  std::to_string(caps.max_slice));
  // Written as a subtraction: offset + slice may wrap around.
  if (h.slice_size > h.total_size || h.offset > h.total_size - h.slice_size)
    return reject(t() + "slice [" + std::to_string(h.offset) + ", +" +
                  std::to_string(h.slice_size) + ") lies beyond the total of " +
                  std::to_string(h.total_size));
  if (h.is_first() && h.offset != 0)
    return reject(t() + "FIRST frame at offset " + std::to_string(h.offset));
  const bool ends = h.offset + h.slice_size == h.total_size;
  if (h.is_last() && !ends)
    return reject(t() + "LAST frame ends at " + std::to_string(h.offset + h.slice_size) +
                  ", not at the total of " + std::to_string(h.total_size));
  if (!h.is_last() && ends)
    return reject(t() + "frame reaches the end of the payload but is not LAST");
  if (h.shm_slot != 0 && (h.type < frame_type::first_application || h.slice_size == 0))
    return reject(t() + "reserved bytes are not zero (a shared-memory slot on a " +
                  (h.slice_size == 0 ? "frame without a slice)" : "transport frame)"));
  // A frame that carries nothing could keep a partial message alive forever.
  if (h.slice_size == 0 && !(h.is_first() && h.is_last()))
    return reject(t() + "empty slice in a frame that is not a whole empty message");
  return h;
}

}  // namespace kvactor::serialization
