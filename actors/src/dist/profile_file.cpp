#include "profile_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace kvactor::detail {

result<std::string> profile_file_name(const std::string& requested) {
  std::string name = requested.substr(requested.find_last_of('/') + 1);
  if (name.empty())
    return status{errc::invalid_argument,
                  "profiler filename \"" + requested + "\" names no file (it ends in '/')"};
  if (name.size() > kMaxProfileName)
    return status{errc::invalid_argument, "profiler filename is longer than " +
                                              std::to_string(kMaxProfileName) + " characters"};
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '_' || c == '+' || c == '-' || (c == '.' && i > 0);
    if (!plain) name[i] = '_';
  }
  return name;
}

result<std::string> profile_path(const std::string& dir, const std::string& requested,
                                 std::int64_t server_rank) {
  if (dir.empty())
    return status{errc::unsupported,
                  "this server writes no profile files: it was started without "
                  "KVACTOR_PROFILE_DIR (the directory profiles go to); profiling without "
                  "filename= still works"};
  auto name = profile_file_name(requested);
  if (!name) return name.error();
  std::string path = dir;
  if (path.back() != '/') path += '/';
  return path + *name + ".server" + std::to_string(server_rank);
}

status write_profile(const std::string& path, const server_profile& p) {
  // O_NOFOLLOW: the directory may be shared (/tmp), and a link planted under the name must
  // not redirect the write.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0)
    return status{errc::invalid_argument,
                  "cannot write the profile to " + path + ": " + std::strerror(errno)};
  std::FILE* f = ::fdopen(fd, "w");
  if (!f) {
    ::close(fd);
    return status{errc::invalid_argument, "cannot write the profile to " + path};
  }
  const char* names[] = {"init", "push", "pull", "pushpull"};
  std::fprintf(f, "{\"pid\":%d", static_cast<int>(::getpid()));
  for (int i = 0; i < 4; ++i)
    std::fprintf(f, ",\"%s\":{\"count\":%llu,\"bytes_in\":%llu}", names[i],
                 static_cast<unsigned long long>(p.count[i]),
                 static_cast<unsigned long long>(p.bytes_in[i]));
  std::fprintf(f, ",\"busy_ns\":%llu}\n", static_cast<unsigned long long>(p.busy_ns));
  return std::fclose(f) == 0 ? status{}
                             : status{errc::invalid_argument, "writing " + path + " failed"};
}

}  // namespace kvactor::detail
