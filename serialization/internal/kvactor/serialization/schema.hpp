// One schema per message. A message's layout is written once, as
//
//   template <class Ar> void fields(Ar& ar, my_meta& m) {
//     ar.string("role", m.role, 32);  // a u64 length, then the bytes; at most 32
//     ar("rank", m.rank);              // an integer, little-endian
//     ar.check(m.rank >= 0, [] { return std::string{"negative rank"}; });
//   }
//
// next to the struct (found by ADL), and three archives run it: schema_writer encodes,
// schema_reader decodes with every length checked against its cap and the bytes left before
// anything is allocated, schema_printer writes the one-line text for logs and errors. A label
// names the field in decoding errors ("<message>: <label>: <reason>") and in the text. The
// bytes are cereal's portable binary layout (a flag byte saying little-endian, then
// little-endian integers, strings as a u64 length and their bytes), so that they stay what
// the hand-written encoders of earlier versions wrote.
// Thread-safety: an archive belongs to one thread; the functions are pure.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "kvactor/serialization/bounded_archive.hpp"

namespace kvactor::serialization {

/// What a message's bytes carry around its fields, and what its errors call it.
struct schema_envelope {
  const char* name = "message";  ///< every decoding error reads "<name>: <reason>"
  std::uint8_t version = 0;      ///< a version byte before the fields; 0: none
  std::size_t max_bytes = 0;     ///< longer input is refused before decoding; 0: no cap
};

class schema_writer {
 public:
  /// keep: a string over its cap is written whole, and the peer's decoder refuses it as it
  /// should refuse a sender's bug; cut: written cut to its cap (a goodbye's last words).
  enum class overlong { keep, cut };

  /// Starts by counting: a first run of fields() measures the message, allocate() makes its
  /// vector once, a second run writes into it (a vector growing field by field cost more than
  /// the fields).
  explicit schema_writer(std::uint8_t version = 0, overlong o = overlong::keep,
                         std::vector<std::uint8_t> room = {})
      : out_(std::move(room)), version_(version), overlong_(o) {
    out_.clear();
    header();
  }

  /// Ends the counting run: the bytes are allocated and the next run of fields() writes them.
  void allocate() {
    out_.resize(n_);
    n_ = 0;
    header();
  }

  template <class T>
  void operator()(const char*, const T& x) {
    static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>, "an integer field");
    auto u = static_cast<std::make_unsigned_t<T>>(x);
    std::uint8_t le[sizeof(T)];
    for (std::size_t i = 0; i < sizeof(T); ++i)
      le[i] = static_cast<std::uint8_t>(u >> (8 * i));
    put(le, sizeof(T));
  }
  void string(const char*, const std::string& s, std::size_t cap) {
    const std::size_t n = overlong_ == overlong::cut && s.size() > cap ? cap : s.size();
    (*this)("", static_cast<std::uint64_t>(n));
    put(s.data(), n);
  }
  /// Bytes whose content the printer does not show (tokens, encoded bodies).
  void blob(const char* what, const std::string& s, std::size_t cap) { string(what, s, cap); }
  template <std::size_t N>
  void bytes(const char*, const std::array<std::uint8_t, N>& a) {
    put(a.data(), N);
  }
  void flag(const char*, const bool& b) { (*this)("", static_cast<std::uint8_t>(b ? 1 : 0)); }
  template <class E>
  void enumeration(const char*, const E& e, E /*last*/) {
    static_assert(sizeof(E) == 1, "enumerations travel as one byte");
    (*this)("", static_cast<std::uint8_t>(e));
  }
  /// A u64 count, then each element as `each` describes it.
  template <class V, class F>
  void sequence(const char*, V& v, std::uint64_t /*cap*/, std::size_t /*min_element_bytes*/,
                F&& each) {
    (*this)("", static_cast<std::uint64_t>(v.size()));
    for (auto& e : v)
      each(e);
  }
  /// The sender builds valid messages; only the reader checks.
  template <class F>
  void check(bool, F&&) noexcept {}

  std::vector<std::uint8_t> take() { return std::move(out_); }

 private:
  void header() {
    const std::uint8_t little_endian = 1;  // cereal's portable-binary flag
    put(&little_endian, 1);
    if (version_) put(&version_, 1);
  }
  void put(const void* p, std::size_t n) {
    if (!out_.empty() && n) std::memcpy(out_.data() + n_, p, n);
    n_ += n;
  }

  std::vector<std::uint8_t> out_;  // empty while counting
  std::size_t n_ = 0;              // bytes counted, or written so far
  std::uint8_t version_;
  overlong overlong_;
};

class schema_reader {
 public:
  explicit schema_reader(bounded_input& in) : in_(in) {}

  template <class T>
  void operator()(const char*, T& x) {
    static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>, "an integer field");
    in_.read(x);
  }
  void string(const char* what, std::string& s, std::size_t cap) { in_.read_string(s, cap, what); }
  void blob(const char* what, std::string& s, std::size_t cap) { in_.read_string(s, cap, what); }
  template <std::size_t N>
  void bytes(const char* what, std::array<std::uint8_t, N>& a) {
    if (in_.remaining() < N) throw decode_failure{std::string{what} + ": truncated"};
    in_.read_bytes(a.data(), N);
  }
  void flag(const char* what, bool& b) {
    std::uint8_t v = 0;
    in_.read(v);
    if (v > 1) throw decode_failure{std::string{"bad "} + what};
    b = v == 1;
  }
  /// Values above `last` are refused.
  template <class E>
  void enumeration(const char* what, E& e, E last) {
    std::uint8_t v = 0;
    in_.read(v);
    if (v > static_cast<std::uint8_t>(last))
      throw decode_failure{std::string{"unknown "} + what + " " + std::to_string(v)};
    e = static_cast<E>(v);
  }
  /// The count must fit `cap` and the bytes left (each element at least min_element_bytes
  /// long) before the vector grows.
  template <class V, class F>
  void sequence(const char* what, V& v, std::uint64_t cap, std::size_t min_element_bytes,
                F&& each) {
    v.resize(static_cast<std::size_t>(in_.read_length(cap, min_element_bytes, what)));
    for (auto& e : v)
      each(e);
  }
  /// A rule across fields; why() says what is wrong.
  template <class F>
  void check(bool ok, F&& why) {
    if (!ok) throw decode_failure{why()};
  }

 private:
  bounded_input& in_;
};

/// "name{label=value ...}" on one line: strings quoted and cut, blobs and byte arrays as their
/// length, long sequences cut.
class schema_printer {
 public:
  static constexpr std::size_t max_chars = 64;
  static constexpr std::size_t max_elements = 8;

  explicit schema_printer(const char* name);

  template <class T>
  void operator()(const char* what, const T& x) {
    label(what);
    out_ += std::to_string(+x);
  }
  void string(const char* what, const std::string& s, std::size_t);
  void blob(const char* what, const std::string& s, std::size_t);
  template <std::size_t N>
  void bytes(const char* what, const std::array<std::uint8_t, N>&) {
    label(what);
    out_ += "<" + std::to_string(N) + " bytes>";
  }
  void flag(const char* what, const bool& b) {
    label(what);
    out_ += b ? "true" : "false";
  }
  /// The enumerator's name, from a to_string found next to the enum.
  template <class E>
  void enumeration(const char* what, const E& e, E) {
    label(what);
    out_ += to_string(e);
  }
  template <class V, class F>
  void sequence(const char* what, V& v, std::uint64_t, std::size_t, F&& each) {
    label(what);
    out_ += '[';
    std::size_t i = 0;
    for (auto& e : v) {
      if (i == max_elements) {
        out_ += ", ... " + std::to_string(v.size() - i) + " more";
        break;
      }
      if (i++) out_ += ", ";
      first_ = true;
      each(e);
    }
    out_ += ']';
  }
  template <class F>
  void check(bool, F&&) noexcept {}

  std::string take() {
    out_ += '}';
    return std::move(out_);
  }

 private:
  void label(const char* what);
  std::string out_;
  bool first_ = true;
};

/// The bytes of m, as fields(ar, m) describes them.
template <class T>
std::vector<std::uint8_t> encode_schema(const T& m, const schema_envelope& env,
                                        schema_writer::overlong o = schema_writer::overlong::keep) {
  schema_writer w{env.version, o};
  fields(w, const_cast<T&>(m));  // the writer only reads
  w.allocate();
  fields(w, const_cast<T&>(m));
  return w.take();
}

/// encode_schema into `out` (its capacity reused: a vector given back after an earlier send).
template <class T>
void encode_schema_into(const T& m, const schema_envelope& env, std::vector<std::uint8_t>& out) {
  out.clear();
  schema_writer w{env.version, schema_writer::overlong::keep, std::move(out)};
  fields(w, const_cast<T&>(m));  // the writer only reads
  w.allocate();
  fields(w, const_cast<T&>(m));
  out = w.take();
}

/// The one decoding path: every failure (a cap, truncation, a bad value, trailing bytes, a
/// version) is protocol_error "<env.name>: <reason>".
template <class T>
result<T> decode_schema(const std::uint8_t* data, std::size_t size, const schema_envelope& env) {
  if (env.max_bytes && size > env.max_bytes)
    return status{errc::protocol_error, std::string{env.name} + ": " + std::to_string(size) +
                                            " bytes exceed the cap of " +
                                            std::to_string(env.max_bytes)};
  if (!data || size == 0) return status{errc::protocol_error, std::string{env.name} + ": empty"};
  return decode_whole<T>(env.name, data, size, [&](bounded_input& in, T& m) {
    if (env.version) {
      std::uint8_t v = 0;
      in.read(v);  // after the endianness flag that bounded_input has read
      if (v != env.version)
        throw decode_failure{"metadata version " + std::to_string(v) + " is not supported"};
    }
    schema_reader r{in};
    fields(r, m);
  });
}

template <class T>
std::string print_schema(const T& m, const char* name) {
  schema_printer p{name};
  fields(p, const_cast<T&>(m));  // the printer only reads
  return p.take();
}

}  // namespace kvactor::serialization
