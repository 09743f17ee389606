// The writer: everything the threads recorded, as one Chrome trace-event JSON file.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "timeline_state.hpp"

namespace kvactor::detail::timeline {

namespace {

// Microseconds with three decimals, as the format's "ts" and "dur" are read.
void append_us(std::string& out, std::int64_t ns) {
  if (ns < 0) {
    out += '-';
    ns = -ns;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld.%03lld", static_cast<long long>(ns / 1000),
                static_cast<long long>(ns % 1000));
  out += buf;
}

void append_args(std::string& out, const args& a) {
  out += ",\"args\":{";
  bool first = true;
  if (!a.key.empty()) {
    out += "\"key\":";
    append_json_string(out, a.key);
    first = false;
  }
  for (const auto& n : a.numbers) {
    if (!n.name) continue;
    if (!first) out += ',';
    first = false;
    append_json_string(out, n.name);
    out += ':';
    out += std::to_string(n.value);
  }
  out += '}';
}

void append_head(std::string& out, char ph, const event& e, const std::string& pid, int tid) {
  out += "{\"ph\":\"";
  out += ph;
  out += "\",\"cat\":";
  append_json_string(out, e.category);
  out += ",\"name\":";
  append_json_string(out, e.name);
  out += ",\"pid\":" + pid + ",\"tid\":" + std::to_string(tid);
}

void append_event(std::string& out, const event& e, const std::string& pid, int tid) {
  if (e.ph == 'b') {
    // One recorded lifetime, two events: begin and end under the same id.
    for (const char ph : {'b', 'e'}) {
      out += ",\n";
      append_head(out, ph, e, pid, tid);
      out += ",\"id2\":{\"local\":\"0x";
      char id[24];
      std::snprintf(id, sizeof id, "%llx", static_cast<unsigned long long>(e.id));
      out += id;
      out += "\"},\"ts\":";
      append_us(out, ph == 'b' ? e.ts_ns : e.ts_ns + e.dur_ns);
      if (ph == 'b') append_args(out, e.a);
      out += '}';
    }
    return;
  }
  out += ",\n";
  append_head(out, e.ph, e, pid, tid);
  out += ",\"ts\":";
  append_us(out, e.ts_ns);
  if (e.ph == 'X') {
    out += ",\"dur\":";
    append_us(out, e.dur_ns);
  } else {
    out += ",\"s\":\"t\"";
  }
  append_args(out, e.a);
  out += '}';
}

void append_meta(std::string& out, const char* what, const std::string& pid, int tid,
                 const std::string& name) {
  out += ",\n{\"ph\":\"M\",\"name\":\"";
  out += what;
  out += "\",\"pid\":" + pid + ",\"tid\":" + std::to_string(tid) + ",\"args\":{\"name\":";
  append_json_string(out, name);
  out += "}}";
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
      ++i;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
    } else if (const std::size_t n = utf8_length(s, i)) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\\ufffd";
      ++i;
    }
  }
  out += '"';
}

status write() {
  registry& r = the_registry();
  // One writer at a time; threads keep recording into their own buffers meanwhile, except
  // for the moment the writer reads each.
  std::lock_guard<std::mutex> g(r.mu);
  if (r.base.empty()) return {};
  const std::string pid = std::to_string(::getpid());
  const std::string path = r.base + "." + pid + ".json";
  std::string out = "{\"traceEvents\":[\n";
  const std::string process = r.process_name.empty() ? "kvactor " + pid : r.process_name;
  out +=
      "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":" + pid + ",\"tid\":0,\"args\":{\"name\":";
  append_json_string(out, process);
  out += "}}";
  std::uint64_t dropped = 0;
  for (const auto& t : r.threads) {
    std::lock_guard<std::mutex> tg(t->mu);
    dropped += t->dropped;
    append_meta(out, "thread_name", pid, t->tid,
                t->name.empty() ? "thread " + std::to_string(t->tid) : t->name);
    t->events.for_each([&](const event& e) { append_event(out, e, pid, t->tid); });
  }
  out += "\n],\"displayTimeUnit\":\"ms\",\"otherData\":{\"kvactor_timeline\":1,\"pid\":" + pid +
         ",\"process_name\":";
  append_json_string(out, process);
  out += ",\"clock_anchor\":{\"steady_us\":";
  append_us(out, r.anchor_steady_ns);
  out += ",\"system_us\":";
  append_us(out, r.anchor_system_ns);
  out += "},\"dropped_events\":" + std::to_string(dropped) + "}}\n";

  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f)
    return status{errc::invalid_argument,
                  "timeline: cannot write " + tmp + ": " + std::strerror(errno)};
  const bool ok = std::fwrite(out.data(), 1, out.size(), f) == out.size();
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    return status{errc::internal, "timeline: cannot write " + path + ": " + why};
  }
  return {};
}

std::size_t utf8_length(std::string_view s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  std::size_t n = 0;
  std::uint32_t cp = 0;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    cp = c & 0x1Fu;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    cp = c & 0x0Fu;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    cp = c & 0x07u;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    const auto d = static_cast<unsigned char>(s[i + k]);
    if ((d & 0xC0u) != 0x80u) return 0;
    cp = (cp << 6) | (d & 0x3Fu);
  }
  // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return n;
}

}  // namespace kvactor::detail::timeline
