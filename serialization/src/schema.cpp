#include "kvactor/serialization/schema.hpp"

namespace kvactor::serialization {

schema_printer::schema_printer(const char* name) : out_(name) {
  out_ += '{';
}

void schema_printer::label(const char* what) {
  if (!first_) out_ += ' ';
  first_ = false;
  // Labels read as error text ("key name"); in the one-line form a field is one word.
  for (const char* c = what; *c; ++c)
    out_ += *c == ' ' ? '_' : *c;
  out_ += '=';
}

void schema_printer::string(const char* what, const std::string& s, std::size_t) {
  label(what);
  out_ += '"';
  static const char hex[] = "0123456789abcdef";
  const std::size_t n = s.size() < max_chars ? s.size() : max_chars;
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out_ += '\\';
      out_ += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      out_ += "\\x";
      out_ += hex[c >> 4];
      out_ += hex[c & 15];
    } else {
      out_ += static_cast<char>(c);
    }
  }
  out_ += '"';
  if (n < s.size()) out_ += "...(" + std::to_string(s.size()) + " bytes)";
}

void schema_printer::blob(const char* what, const std::string& s, std::size_t) {
  label(what);
  out_ += "<" + std::to_string(s.size()) + " bytes>";
}

}  // namespace kvactor::serialization
