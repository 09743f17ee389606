// Helpers for the shared-memory tests: caps, a settle step that waits (by round trips, not by
// time) until both directions have agreed on shared memory, the count of kvactor segments this
// process holds (descriptors and mappings, from /proc/self), and a hand-made segment with which
// a raw peer plays the sending side of the protocol (net/src/shm.hpp) byte by byte.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "kvactor/serialization/schema.hpp"
#include "net_test_util.hpp"
#include "shm.hpp"

namespace kvactor::net::testing {

inline constexpr std::uint8_t shm_msg_type = 20;

inline caps shm_caps() {
  caps c;
  c.handshake_timeout = 5000ms;
  return c;
}

inline outgoing shm_message(std::uint64_t id, const bytes& payload, std::uint64_t stream = 0,
                            std::int32_t priority = 0) {
  outgoing o;
  o.type = shm_msg_type;
  o.id = id;
  o.stream = stream;
  o.priority = priority;
  o.meta = to_bytes("m" + std::to_string(id));
  o.payload = payload.data();
  o.payload_size = payload.size();
  return o;
}

/// Two small echo round trips. The connector offers behind its HELLO and the acceptor answers
/// (and offers back) behind its WELCOME, so the connector has switched when the connection
/// opens; its answer to the acceptor's offer precedes its next message, so the acceptor has
/// switched before it echoes the second.
inline ::testing::AssertionResult settle(const connection_ptr& c, inbox& box) {
  const bytes small = pattern(16, 99);
  for (std::uint64_t i = 0; i < 2; ++i) {
    auto o = shm_message(1000 + i, small);
    o.keepalive = std::make_shared<bytes>(small);
    o.payload = static_cast<const bytes*>(o.keepalive.get())->data();
    c->send(std::move(o));
    auto m = box.pop();
    if (!m || m->id != 1000 + i) return ::testing::AssertionFailure() << "no settle echo " << i;
  }
  return ::testing::AssertionSuccess();
}

/// Descriptors and mappings of kvactor segments in this process.
inline std::size_t segments_here() {
  std::size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (const dirent* e = ::readdir(d)) {
      char buf[256];
      const std::string p = std::string{"/proc/self/fd/"} + e->d_name;
      const ssize_t k = ::readlink(p.c_str(), buf, sizeof buf - 1);
      if (k > 0 && std::string(buf, static_cast<std::size_t>(k)).find("memfd:kvactor-shm") !=
                       std::string::npos)
        ++n;
    }
    ::closedir(d);
  }
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);)
    if (line.find("memfd:kvactor-shm") != std::string::npos) ++n;
  return n;
}

/// A segment made by hand, as a raw peer's: sealed or not, with the right token or not.
struct fake_segment {
  int fd = -1;
  std::uint8_t* base = nullptr;
  std::size_t size = 0;
  detail::shm_offer offer;

  fake_segment(std::uint32_t slot_size, std::uint32_t count, bool seal = true,
               const char* name = "kvactor-shm") {
    size = detail::shm_header_bytes + std::size_t{slot_size} * count;
    fd = ::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::ftruncate(fd, static_cast<off_t>(size)), 0);
    if (seal) {
      EXPECT_EQ(::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
    }
    base = static_cast<std::uint8_t*>(
        ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    EXPECT_NE(base, MAP_FAILED);
    offer.host = detail::shm_host_token(0);
    offer.pid = ::getpid();
    offer.fd = fd;
    offer.segment_bytes = size;
    offer.slot_size = slot_size;
    offer.slot_count = count;
    offer.token.fill(0x5a);
    std::memcpy(base, "KVASHM01", 8);
    std::memcpy(base + 8, offer.token.data(), offer.token.size());
  }
  ~fake_segment() {
    if (base && base != MAP_FAILED) ::munmap(base, size);
    if (fd >= 0) ::close(fd);
  }
  fake_segment(const fake_segment&) = delete;
  fake_segment& operator=(const fake_segment&) = delete;

  std::uint8_t* slot(std::uint32_t i) const {
    return base + detail::shm_header_bytes + std::size_t{i} * offer.slot_size;
  }
};

inline bytes encode_offer(const detail::shm_offer& o) {
  return serialization::encode_schema(o, {});
}

/// Reads frames until one of `type` (heartbeats and other shared-memory frames skipped).
inline std::optional<raw_frame> read_until(raw_socket& s, std::uint8_t type) {
  for (;;) {
    auto f = s.read_frame();
    if (!f || f->h.type == type) return f;
  }
}

inline std::optional<detail::shm_answer> read_answer(raw_socket& s) {
  auto f = read_until(s, serialization::frame_type::shm_answer);
  if (!f) return std::nullopt;
  auto a = detail::decode_shm_answer(f->meta.data(), f->meta.size());
  if (!a) return std::nullopt;
  return *a;
}

/// An application frame whose slice lies in slot `slot` (0-based) of the sender's segment.
inline fr::frame_header shm_ref(std::uint64_t id, std::uint32_t size, std::uint32_t slot) {
  fr::frame_header h;
  h.type = 30;
  h.flags = fr::frame_flags::first | fr::frame_flags::last;
  h.id = id;
  h.total_size = size;
  h.slice_size = size;
  h.shm_slot = slot + 1;
  return h;
}

}  // namespace kvactor::net::testing
