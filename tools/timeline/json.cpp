#include "json.hpp"

#include <cstdlib>

#include "kvactor/detail/timeline.hpp"

namespace kvactor::timeline_tool {

const json* json::find(std::string_view name) const noexcept {
  for (const auto& [n, v] : members)
    if (n == name) return &v;
  return nullptr;
}

json* json::find(std::string_view name) noexcept {
  for (auto& [n, v] : members)
    if (n == name) return &v;
  return nullptr;
}

long double json::number() const {
  return k == kind::number ? std::strtold(text.c_str(), nullptr) : 0.0L;
}

json json::of_number(std::string text) {
  json j;
  j.k = kind::number;
  j.text = std::move(text);
  return j;
}

json json::of_string(std::string text) {
  json j;
  j.k = kind::string;
  j.text = std::move(text);
  return j;
}

namespace {

class parser {
 public:
  explicit parser(std::string_view s) : s_(s) {}

  result<json> whole() {
    json v;
    if (!value(v, 0)) return status{errc::protocol_error, why_};
    skip_ws();
    if (at_ != s_.size()) return fail("text after the value");
    return v;
  }

 private:
  bool fail_bool(const std::string& what) {
    why_ = "JSON: " + what + " at byte " + std::to_string(at_);
    return false;
  }
  status fail(const std::string& what) {
    fail_bool(what);
    return status{errc::protocol_error, why_};
  }
  void skip_ws() {
    while (at_ < s_.size() &&
           (s_[at_] == ' ' || s_[at_] == '\t' || s_[at_] == '\n' || s_[at_] == '\r'))
      ++at_;
  }
  bool literal(std::string_view word) {
    if (s_.substr(at_, word.size()) != word) return fail_bool("unexpected character");
    at_ += word.size();
    return true;
  }

  bool value(json& v, int depth) {
    if (depth >= max_depth) return fail_bool("nesting deeper than " + std::to_string(max_depth));
    skip_ws();
    if (at_ >= s_.size()) return fail_bool("unexpected end");
    const char c = s_[at_];
    if (c == '{') return object(v, depth);
    if (c == '[') return array(v, depth);
    if (c == '"') {
      v.k = json::kind::string;
      return string(v.text);
    }
    if (c == 't' || c == 'f') {
      v.k = json::kind::boolean;
      v.flag = c == 't';
      return literal(c == 't' ? "true" : "false");
    }
    if (c == 'n') return literal("null");
    if (c == '-' || (c >= '0' && c <= '9')) return number(v);
    return fail_bool("unexpected character");
  }

  bool digits() {
    const std::size_t from = at_;
    while (at_ < s_.size() && s_[at_] >= '0' && s_[at_] <= '9')
      ++at_;
    return at_ > from;
  }

  bool number(json& v) {
    const std::size_t from = at_;
    if (s_[at_] == '-') ++at_;
    if (at_ < s_.size() && s_[at_] == '0') {
      ++at_;
    } else if (!digits()) {
      return fail_bool("bad number");
    }
    if (at_ < s_.size() && s_[at_] == '.') {
      ++at_;
      if (!digits()) return fail_bool("bad number");
    }
    if (at_ < s_.size() && (s_[at_] == 'e' || s_[at_] == 'E')) {
      ++at_;
      if (at_ < s_.size() && (s_[at_] == '+' || s_[at_] == '-')) ++at_;
      if (!digits()) return fail_bool("bad number");
    }
    v.k = json::kind::number;
    v.text.assign(s_.substr(from, at_ - from));
    return true;
  }

  bool hex4(std::uint32_t& out) {
    if (at_ + 4 > s_.size()) return fail_bool("bad \\u escape");
    out = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[at_++];
      out <<= 4;
      if (c >= '0' && c <= '9')
        out |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f')
        out |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        out |= static_cast<std::uint32_t>(c - 'A' + 10);
      else
        return fail_bool("bad \\u escape");
    }
    return true;
  }

  static void put_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // A raw UTF-8 sequence starting at at_ (its first byte >= 0x80), copied to out.
  bool utf8(std::string& out) {
    const std::size_t n = detail::timeline::utf8_length(s_, at_);
    if (n == 0) return fail_bool("invalid UTF-8");
    out.append(s_.substr(at_, n));
    at_ += n;
    return true;
  }

  bool string(std::string& out) {
    ++at_;  // the opening quote
    for (;;) {
      if (at_ >= s_.size()) return fail_bool("unterminated string");
      const auto c = static_cast<unsigned char>(s_[at_]);
      if (c == '"') {
        ++at_;
        return true;
      }
      if (c < 0x20) return fail_bool("control character in a string");
      if (c >= 0x80) {
        if (!utf8(out)) return false;
        continue;
      }
      ++at_;
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      if (at_ >= s_.size()) return fail_bool("unterminated string");
      const char e = s_[at_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          std::uint32_t cp = 0;
          if (!hex4(cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return fail_bool("lone surrogate");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            std::uint32_t lo = 0;
            if (s_.substr(at_, 2) != "\\u") return fail_bool("lone surrogate");
            at_ += 2;
            if (!hex4(lo)) return false;
            if (lo < 0xDC00 || lo > 0xDFFF) return fail_bool("lone surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          put_utf8(out, cp);
          break;
        }
        default:
          return fail_bool("bad escape");
      }
    }
  }

  bool array(json& v, int depth) {
    v.k = json::kind::array;
    ++at_;
    skip_ws();
    if (at_ < s_.size() && s_[at_] == ']') {
      ++at_;
      return true;
    }
    for (;;) {
      v.items.emplace_back();
      if (!value(v.items.back(), depth + 1)) return false;
      skip_ws();
      if (at_ >= s_.size()) return fail_bool("unterminated array");
      if (s_[at_] == ']') {
        ++at_;
        return true;
      }
      if (s_[at_] != ',') return fail_bool("expected ',' or ']'");
      ++at_;
    }
  }

  bool object(json& v, int depth) {
    v.k = json::kind::object;
    ++at_;
    skip_ws();
    if (at_ < s_.size() && s_[at_] == '}') {
      ++at_;
      return true;
    }
    for (;;) {
      skip_ws();
      if (at_ >= s_.size() || s_[at_] != '"') return fail_bool("expected a member name");
      std::string name;
      if (!string(name)) return false;
      skip_ws();
      if (at_ >= s_.size() || s_[at_] != ':') return fail_bool("expected ':'");
      ++at_;
      v.members.emplace_back(std::move(name), json{});
      if (!value(v.members.back().second, depth + 1)) return false;
      skip_ws();
      if (at_ >= s_.size()) return fail_bool("unterminated object");
      if (s_[at_] == '}') {
        ++at_;
        return true;
      }
      if (s_[at_] != ',') return fail_bool("expected ',' or '}'");
      ++at_;
    }
  }

  std::string_view s_;
  std::size_t at_ = 0;
  std::string why_;
};

}  // namespace

result<json> parse_json(std::string_view text) {
  return parser{text}.whole();
}

void write_json(std::string& out, const json& v) {
  switch (v.k) {
    case json::kind::null:
      out += "null";
      return;
    case json::kind::boolean:
      out += v.flag ? "true" : "false";
      return;
    case json::kind::number:
      out += v.text;
      return;
    case json::kind::string:
      detail::timeline::append_json_string(out, v.text);
      return;
    case json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& i : v.items) {
        if (!first) out += ',';
        first = false;
        write_json(out, i);
      }
      out += ']';
      return;
    }
    case json::kind::object: {
      out += '{';
      bool first = true;
      for (const auto& [n, m] : v.members) {
        if (!first) out += ',';
        first = false;
        detail::timeline::append_json_string(out, n);
        out += ':';
        write_json(out, m);
      }
      out += '}';
      return;
    }
  }
}

}  // namespace kvactor::timeline_tool
