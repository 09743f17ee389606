#include "server_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace kvactor::detail {
namespace {

status cannot(const std::string& what, const std::string& path, int err) {
  if (err == ELOOP)
    return status{errc::invalid_argument, path +
                                              " is a symbolic link; a server reads and writes "
                                              "no file through a link"};
  return status{errc::invalid_argument, "cannot " + what + " " + path + ": " + std::strerror(err)};
}

bool write_all(int fd, const std::uint8_t* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

result<std::string> server_file_name(const std::string& requested) {
  std::string name = requested.substr(requested.find_last_of('/') + 1);
  if (name.empty())
    return status{errc::invalid_argument,
                  "file name \"" + requested + "\" names no file (it is empty or ends in '/')"};
  if (name.size() > kMaxServerFileName)
    return status{errc::invalid_argument,
                  "file name is longer than " + std::to_string(kMaxServerFileName) + " characters"};
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '_' || c == '+' || c == '-' || (c == '.' && i > 0);
    if (!plain) name[i] = '_';
  }
  return name;
}

result<std::string> server_file_path(server_file_kind kind, const std::string& dir,
                                     const std::string& requested, std::int64_t server_rank) {
  if (dir.empty())
    return status{
        errc::unsupported,
        kind == server_file_kind::profile
            ? "this server writes no profile files: it was started without KVACTOR_PROFILE_DIR "
              "(the directory profiles go to); profiling without filename= still works"
            : "this server keeps no optimizer-state files: it was started without "
              "KVACTOR_STATES_DIR (the only directory it saves them to and loads them from; "
              "kvactor-launch sets it to its working directory in local mode)"};
  auto name = server_file_name(requested);
  if (!name) return name.error();
  std::string path = dir;
  if (path.back() != '/') path += '/';
  return path + *name + ".server" + std::to_string(server_rank);
}

status write_server_file(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  // A name of its own per write (O_EXCL): two saves of the same file at once never write
  // into one temporary file.
  static std::atomic<std::uint64_t> next{0};
  const std::string tmp = path + ".tmp" + std::to_string(::getpid()) + "." +
                          std::to_string(next.fetch_add(1, std::memory_order_relaxed));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return cannot("write", tmp, errno);
  int err = write_all(fd, bytes.data(), bytes.size()) ? 0 : (errno ? errno : EIO);
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    return status{errc::invalid_argument, "writing " + tmp + " failed: " + std::strerror(err)};
  }
  // rename() replaces a link rather than writing through it; refusing one anyway tells
  // whoever planted it (or made a directory of the name) instead of silently replacing it.
  struct ::stat st {};
  if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    ::unlink(tmp.c_str());
    return S_ISLNK(st.st_mode)
               ? cannot("write", path, ELOOP)
               : status{errc::invalid_argument, "cannot write " + path + ": not a regular file"};
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return status{errc::invalid_argument,
                  "cannot rename " + tmp + " to " + path + ": " + std::strerror(e)};
  }
  return {};
}

result<std::vector<std::uint8_t>> read_server_file(const std::string& path,
                                                   std::uint64_t max_bytes) {
  // O_NONBLOCK: opening a FIFO planted under the name would otherwise wait for a writer.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return cannot("read", path, errno);
  struct ::stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return status{errc::invalid_argument, "cannot read " + path + ": not a regular file"};
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size > max_bytes) {
    ::close(fd);
    return status{errc::protocol_error,
                  path + " is larger than the cap of " + std::to_string(max_bytes) + " bytes"};
  }
  std::vector<std::uint8_t> bytes;
  try {
    bytes.resize(static_cast<std::size_t>(size));
  } catch (const std::bad_alloc&) {
    ::close(fd);
    return status{errc::internal, "not enough memory to read " + path};
  }
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (got != bytes.size())
    return status{errc::invalid_argument, "reading " + path + " failed (it changed meanwhile)"};
  return bytes;
}

}  // namespace kvactor::detail
