// The shared-memory segments and their frames (see shm.hpp for the design).
#include "shm.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "kvactor/serialization/schema.hpp"

namespace kvactor::net::detail {

namespace {

namespace sz = serialization;

constexpr char memfd_name[] = "kvactor-shm";
// What readlink says of a memfd: "/memfd:<name> (deleted)".
constexpr char memfd_link[] = "/memfd:kvactor-shm ";
constexpr char magic[8] = {'K', 'V', 'A', 'S', 'H', 'M', '0', '1'};

std::string errno_text(const char* what) {
  return std::string{what} + ": " + std::strerror(errno);
}

status no(std::string why) {
  return status{errc::unsupported, std::move(why)};
}

std::string read_first_line(const char* path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

// "dev:ino" of a namespace link, or "" when it cannot be read.
std::string namespace_id(const char* path) {
  struct ::stat st {};
  if (::stat(path, &st) != 0) return {};
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

std::string link_of(const std::string& path) {
  char buf[256];
  const ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
  if (n <= 0) return {};
  return std::string(buf, static_cast<std::size_t>(n));
}

}  // namespace

bool shm_allowed_by_environment() {
  static const bool allowed = [] {
    const char* v = std::getenv("KVACTOR_SHM");
    if (!v) return true;
    const std::string s = v;
    return !(s == "0" || s == "off" || s == "false" || s == "no");
  }();
  return allowed;
}

std::string shm_host_token(std::uint64_t salt) {
  // A process does not change host; its namespaces could change (setns), but not under a
  // running transport.
  static const std::string token = [] {
    const std::string boot = read_first_line("/proc/sys/kernel/random/boot_id");
    const std::string net = namespace_id("/proc/self/ns/net");
    const std::string pid = namespace_id("/proc/self/ns/pid");
    if (boot.empty() || net.empty() || pid.empty()) return std::string{};
    // Hashed: the connector states it before the acceptor has proved itself, and the boot id
    // and namespaces are nobody else's business.
    const std::string plain =
        boot + " net=" + net + " pid=" + pid + " uid=" + std::to_string(::getuid());
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(plain.data(), plain.size(), md, &len, EVP_sha256(), nullptr) != 1)
      return std::string{};
    std::string hex;
    for (unsigned int i = 0; i < len; ++i) {
      hex += "0123456789abcdef"[md[i] >> 4];
      hex += "0123456789abcdef"[md[i] & 15];
    }
    return hex;
  }();
  return token.empty() || salt == 0 ? token : token + "+" + std::to_string(salt);
}

std::vector<std::uint8_t> encode(const shm_offer& o) {
  return sz::encode_schema(o, {});
}
std::vector<std::uint8_t> encode(const shm_answer& a) {
  return sz::encode_schema(a, {}, sz::schema_writer::overlong::cut);
}
result<shm_offer> decode_shm_offer(const std::uint8_t* data, std::size_t size) {
  return sz::decode_schema<shm_offer>(data, size, {"shm offer", 0, handshake::max_meta_size});
}
result<shm_answer> decode_shm_answer(const std::uint8_t* data, std::size_t size) {
  return sz::decode_schema<shm_answer>(data, size, {"shm answer", 0, handshake::max_meta_size});
}

// ---------------------------------------------------------------- this end's segment

result<std::unique_ptr<shm_out>> shm_out::create(std::uint32_t slot_size,
                                                 std::uint64_t segment_bytes) {
  const std::uint64_t page = 4096;
  const std::uint64_t slot = (std::uint64_t{slot_size} + page - 1) / page * page;
  if (slot == 0 || slot > max_shm_slot_size) return no("slot size out of range");
  const std::uint64_t count = std::min<std::uint64_t>(max_shm_slots, segment_bytes / slot);
  if (count < 2) return no("room for fewer than two slots");
  const std::uint64_t size = shm_header_bytes + slot * count;

  auto token = handshake::random_nonce();
  if (!token) return token.error();
  std::unique_ptr<shm_out> s{new shm_out};
  s->token_ = *token;
  s->slot_size_ = static_cast<std::uint32_t>(slot);
  s->slot_count_ = static_cast<std::uint32_t>(count);
  s->fd_ = ::memfd_create(memfd_name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (s->fd_ < 0) return no(errno_text("memfd_create"));
  if (::ftruncate(s->fd_, static_cast<off_t>(size)) != 0) return no(errno_text("ftruncate"));
  // Sealed: the size can never change, so no mapping of it can fault (SIGBUS) on a page that
  // was cut off; the peer checks these seals before it maps.
  if (::fcntl(s->fd_, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
    return no(errno_text("F_ADD_SEALS"));
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd_, 0);
  if (p == MAP_FAILED) return no(errno_text("mmap"));
  s->base_ = static_cast<std::uint8_t*>(p);
  s->size_ = static_cast<std::size_t>(size);
  std::memcpy(s->base_, magic, sizeof magic);
  std::memcpy(s->base_ + sizeof magic, s->token_.data(), s->token_.size());
  s->used_.assign(s->slot_count_, false);
  s->free_.reserve(s->slot_count_);
  for (std::uint32_t i = s->slot_count_; i-- > 0;)
    s->free_.push_back(i);
  return s;
}

shm_out::~shm_out() {
  if (base_) ::munmap(base_, size_);
  close_descriptor();
}

void shm_out::close_descriptor() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

shm_offer shm_out::offer(std::string host) const {
  shm_offer o;
  o.host = std::move(host);
  o.pid = ::getpid();
  o.fd = fd_;
  o.segment_bytes = size_;
  o.slot_size = slot_size_;
  o.slot_count = slot_count_;
  o.token = token_;
  return o;
}

bool shm_out::place(const void* src, std::size_t n, std::uint32_t& slot) noexcept {
  if (free_.empty() || n > slot_size_) return false;
  slot = free_.back();
  free_.pop_back();
  used_[slot] = true;
  std::memcpy(base_ + shm_header_bytes + std::size_t{slot} * slot_size_, src, n);
  return true;
}

bool shm_out::release(std::uint32_t slot) noexcept {
  if (slot >= slot_count_ || !used_[slot]) return false;
  used_[slot] = false;
  free_.push_back(slot);
  return true;
}

// ---------------------------------------------------------------- the peer's segment

result<std::unique_ptr<shm_in>> shm_in::map(const shm_offer& o) {
  if (o.slot_count == 0 || o.slot_count > max_shm_slots || o.slot_size == 0 ||
      o.slot_size > max_shm_slot_size)
    return no("slot size or count out of range");
  const std::uint64_t size = shm_header_bytes + std::uint64_t{o.slot_size} * o.slot_count;
  if (o.segment_bytes != size) return no("segment size does not match its slots");
  if (o.pid <= 0 || o.fd < 0) return no("no such process or descriptor");

  const std::string path = "/proc/" + std::to_string(o.pid) + "/fd/" + std::to_string(o.fd);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return no(errno_text(("open " + path).c_str()));
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } guard{fd};
  // What was opened, not what the path named a moment earlier.
  const std::string link = link_of("/proc/self/fd/" + std::to_string(fd));
  if (link.compare(0, sizeof memfd_link - 1, memfd_link) != 0)
    return no(path + " is not a kvactor segment (" + link + ")");
  struct ::stat st {};
  if (::fstat(fd, &st) != 0) return no(errno_text("fstat"));
  if (!S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_size) != size)
    return no("segment of " + std::to_string(st.st_size) + " bytes, " + std::to_string(size) +
              " offered");
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0 || (seals & F_SEAL_SHRINK) == 0) return no("segment not sealed against shrinking");
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return no(errno_text("mmap"));
  std::unique_ptr<shm_in> s{new shm_in};
  s->base_ = static_cast<const std::uint8_t*>(p);
  s->size_ = static_cast<std::size_t>(size);
  s->slot_size_ = o.slot_size;
  s->slot_count_ = o.slot_count;
  handshake::nonce seen{};
  std::memcpy(seen.data(), s->base_ + sizeof magic, seen.size());
  if (std::memcmp(s->base_, magic, sizeof magic) != 0 || !handshake::equal(seen, o.token))
    return no("segment header does not match the offer");
  return s;
}

shm_in::~shm_in() {
  if (base_) ::munmap(const_cast<std::uint8_t*>(base_), size_);
}

const std::uint8_t* shm_in::slice(std::uint32_t slot, std::size_t n) const noexcept {
  if (slot >= slot_count_ || n > slot_size_) return nullptr;
  return base_ + shm_header_bytes + std::size_t{slot} * slot_size_;
}

}  // namespace kvactor::net::detail
