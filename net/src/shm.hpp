// Shared memory between the two ends of a connection on one host: the segments and the frames
// that set them up. No Asio here; conn_impl drives it (connection_shm.cpp).
//
// Each end may own one segment per connection, for the bytes it sends: an anonymous memfd
// ("kvactor-shm", close-on-exec, sealed against shrinking and growing, so that the peer's
// mapping can never fault), a 4 KiB header (magic and a random 32-byte token) and then
// slot_count slots of slot_size bytes (the connection's max slice, page-rounded). The owner
// maps it read-write; the peer opens /proc/<owner pid>/fd/<fd> read-only, checks what it
// opened (a kvactor memfd, sealed, of the stated size, with the magic and the token the offer
// named: a peer cannot make it map some other file), maps it and closes the descriptor; the
// owner closes its descriptor once the peer has answered, so that each segment then lives only
// as its two mappings and is gone with the connection (or the processes).
//
// On the wire (transport frames, meta only; see serialization/frame.hpp). The connector sends
// its SHM_OFFER right behind its HELLO; the acceptor, once open, answers it and, when it
// accepted, offers its own segment; the connector answers that (connection_shm.cpp):
//   SHM_OFFER   (owner → peer): host token, pid, fd, segment bytes, slot size, slot count, token
//   SHM_ANSWER  (peer → owner): accepted flag, reason (why not; for logs)
//   SHM_RELEASE (peer → owner): slot indices, u32 little-endian each
// An application frame whose shm_slot is n > 0 carries its slice in slot n-1; the peer copies
// it out and gives the slot back with SHM_RELEASE. The owner never reuses a slot before that.
//
// The host token names the host as the kernel sees it: SHA-256 of the boot id, the network
// and pid namespaces (two network namespaces are two hosts; /proc/<pid> must mean the same
// process) and the user. Equal tokens are only a hint: any failure to map falls back to TCP.
//
// Thread-safety: shm_out belongs to its connection's writer (guarded by the send mutex),
// shm_in to its connection's strand; the free functions are pure or read only /proc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kvactor/net/handshake.hpp"
#include "kvactor/result.hpp"

namespace kvactor::net::detail {

inline constexpr std::size_t shm_header_bytes = 4096;
inline constexpr std::uint32_t max_shm_slots = 4096;
inline constexpr std::uint32_t max_shm_slot_size = 1u << 30;
inline constexpr std::size_t max_host_token_size = 256;
inline constexpr std::size_t max_shm_reason_size = 200;

/// False when KVACTOR_SHM is "0", "off", "false" or "no"; read once per process.
bool shm_allowed_by_environment();

/// This end's host token (with a non-zero test `salt` appended); empty when the kernel does
/// not tell (no shm then).
std::string shm_host_token(std::uint64_t salt);

struct shm_offer {
  std::string host;
  std::int64_t pid = 0;
  std::int32_t fd = -1;
  std::uint64_t segment_bytes = 0;
  std::uint32_t slot_size = 0;
  std::uint32_t slot_count = 0;
  handshake::nonce token{};
};
template <class Ar>
void fields(Ar& ar, shm_offer& o) {
  ar.string("host", o.host, max_host_token_size);
  ar("pid", o.pid);
  ar("fd", o.fd);
  ar("segment bytes", o.segment_bytes);
  ar("slot size", o.slot_size);
  ar("slot count", o.slot_count);
  ar.bytes("token", o.token);
}

struct shm_answer {
  bool accepted = false;
  std::string reason;  ///< cut to max_shm_reason_size when encoded
};
template <class Ar>
void fields(Ar& ar, shm_answer& a) {
  ar.flag("accepted", a.accepted);
  ar.string("reason", a.reason, max_shm_reason_size);
}

std::vector<std::uint8_t> encode(const shm_offer& o);
std::vector<std::uint8_t> encode(const shm_answer& a);
/// protocol_error for anything truncated, oversized or trailing.
result<shm_offer> decode_shm_offer(const std::uint8_t* data, std::size_t size);
result<shm_answer> decode_shm_answer(const std::uint8_t* data, std::size_t size);

/// This end's segment: it writes the slots, the peer reads them.
class shm_out {
 public:
  /// A segment of slots of `slot_size` bytes (page-rounded) within `segment_bytes`; an error
  /// (why, for no log at all: the connection just stays on TCP) when there is room for fewer
  /// than two slots or the kernel refuses.
  static result<std::unique_ptr<shm_out>> create(std::uint32_t slot_size,
                                                 std::uint64_t segment_bytes);
  ~shm_out();
  shm_out(const shm_out&) = delete;
  shm_out& operator=(const shm_out&) = delete;

  /// What the peer needs to map it (host: this end's token).
  shm_offer offer(std::string host) const;
  /// The peer has answered: the descriptor is no longer needed (the mappings keep the memory).
  void close_descriptor() noexcept;
  /// Copies n bytes (at most the slot size) into the lowest free slot: its index, or false
  /// when every slot is in use.
  bool place(const void* src, std::size_t n, std::uint32_t& slot) noexcept;
  /// The peer is done with `slot`; false if it was not in use (a lying peer).
  bool release(std::uint32_t slot) noexcept;
  std::uint32_t slot_size() const noexcept { return slot_size_; }
  std::uint32_t slot_count() const noexcept { return slot_count_; }
  std::uint32_t in_use() const noexcept {
    return slot_count_ - static_cast<std::uint32_t>(free_.size());
  }

 private:
  shm_out() = default;
  int fd_ = -1;
  std::uint8_t* base_ = nullptr;
  std::size_t size_ = 0;
  std::uint32_t slot_size_ = 0;
  std::uint32_t slot_count_ = 0;
  handshake::nonce token_{};
  std::vector<std::uint32_t> free_;  // a stack, lowest index on top: few pages are touched
  std::vector<bool> used_;
};

/// The peer's segment, mapped read-only.
class shm_in {
 public:
  /// Opens, checks and maps the segment `o` describes; an error says why not (the offer is
  /// then declined and the connection stays on TCP).
  static result<std::unique_ptr<shm_in>> map(const shm_offer& o);
  ~shm_in();
  shm_in(const shm_in&) = delete;
  shm_in& operator=(const shm_in&) = delete;

  /// The n bytes of `slot`, or null when the slot or n lies outside the segment.
  const std::uint8_t* slice(std::uint32_t slot, std::size_t n) const noexcept;

 private:
  shm_in() = default;
  const std::uint8_t* base_ = nullptr;
  std::size_t size_ = 0;
  std::uint32_t slot_size_ = 0;
  std::uint32_t slot_count_ = 0;
};

}  // namespace kvactor::net::detail
