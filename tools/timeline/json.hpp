// A strict JSON reader and writer (RFC 8259) for kvactor-timeline: the whole input is one
// value; no trailing commas, comments, leading zeros, lone surrogates, raw control
// characters or invalid UTF-8; nesting at most max_depth deep. Numbers keep the text they
// were written with, so what is not changed is written back as it was read.
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kvactor/result.hpp"

namespace kvactor::timeline_tool {

struct json {
  enum class kind : std::uint8_t { null, boolean, number, string, array, object };
  kind k = kind::null;
  bool flag = false;
  std::string text;  // a number as written, or a string's value (UTF-8)
  std::vector<json> items;
  std::vector<std::pair<std::string, json>> members;

  bool is(kind what) const noexcept { return k == what; }
  /// The member called `name` of an object (the first, if repeated), or null.
  const json* find(std::string_view name) const noexcept;
  json* find(std::string_view name) noexcept;
  /// A number's value (0 for anything else).
  long double number() const;

  static json of_number(std::string text);
  static json of_string(std::string text);
};

inline constexpr int max_depth = 64;

/// The value `text` holds, or protocol_error naming the byte offset and what is wrong.
result<json> parse_json(std::string_view text);
/// Appends v as JSON text.
void write_json(std::string& out, const json& v);

}  // namespace kvactor::timeline_tool
