#include "kvactor/detail/compression.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>

// Bit exactness rests on IEEE float32 arithmetic in the default environment (round to
// nearest even, no flush-to-zero): -ffast-math would let the compiler rewrite x - 0.0f, the
// comparisons with NaN and the order of operations.
#if defined(__FAST_MATH__)
#error "compression.cpp must not be compiled with -ffast-math: its results are bit exact"
#endif

namespace kvactor::compression {

namespace {

// The layout is defined on bytes (little-endian words). The masks below are the word values
// whose in-memory bytes carry the documented bits on this host.
constexpr bool little_endian_host =
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    false;
#else
    true;
#endif

constexpr std::uint32_t le(std::uint32_t v) noexcept {
  if (little_endian_host) return v;
  return ((v & 0xffu) << 24) | ((v & 0xff00u) << 8) | ((v >> 8) & 0xff00u) | (v >> 24);
}

struct two_bit_masks {
  std::uint32_t hi[16];    // the high bit of element j's pair
  std::uint32_t both[16];  // both bits of element j's pair (code 11)
};
constexpr two_bit_masks make_two_bit_masks() noexcept {
  two_bit_masks m{};
  for (unsigned j = 0; j < 16; ++j) {
    const unsigned s = 8 * (j / 4) + 6 - 2 * (j % 4);  // the pair's low bit
    m.hi[j] = le(2u << s);
    m.both[j] = le(3u << s);
  }
  return m;
}
constexpr two_bit_masks k2 = make_two_bit_masks();

struct one_bit_masks {
  std::uint32_t bit[32];
};
constexpr one_bit_masks make_one_bit_masks() noexcept {
  one_bit_masks m{};
  for (unsigned j = 0; j < 32; ++j)
    m.bit[j] = le(1u << (8 * (j / 8) + 7 - j % 8));
  return m;
}
constexpr one_bit_masks k1 = make_one_bit_masks();

static_assert(k2.both[0] == le(0xC0u) && k2.hi[0] == le(0x80u) && k2.both[3] == le(0x03u) &&
              k2.both[4] == le(0xC000u) && k2.both[15] == le(0x03000000u));
static_assert(k1.bit[0] == le(0x80u) && k1.bit[7] == le(0x01u) && k1.bit[8] == le(0x8000u) &&
              k1.bit[31] == le(0x01000000u));

// The kernels are branch-free: a comparison gives an all-ones/all-zero lane mask, the word is
// an OR of constant masks selected by them, and the residual's adjustment (t, -t or 0; 1 or
// -1) is selected the same way. Where two conditions could hold at once (2-bit with t <= 0,
// which parse() refuses) the first one wins, as in the header's if/else chain.

#if defined(__GNUC__)
#define KVACTOR_GC_INLINE inline __attribute__((always_inline))
#else
#define KVACTOR_GC_INLINE inline
#endif
// On the per-word loops: keep the 16/32-element loop a loop, so that it is vectorised along the
// elements. Fully unrolled, GCC vectorises the loop over words instead (one word per lane),
// whose strided stores made 2-bit dequantize 2-3x slower.
#if defined(__clang__)
#define KVACTOR_GC_ELEMENT_LOOP _Pragma("clang loop unroll(disable)")
#elif defined(__GNUC__)
#define KVACTOR_GC_ELEMENT_LOOP _Pragma("GCC unroll 1")
#else
#define KVACTOR_GC_ELEMENT_LOOP
#endif

KVACTOR_GC_INLINE std::uint32_t bits_of(float f) noexcept {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
KVACTOR_GC_INLINE float from_bits(std::uint32_t u) noexcept {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
KVACTOR_GC_INLINE std::uint32_t mask_if(bool b) noexcept {
  return 0u - static_cast<std::uint32_t>(b);
}

// The threshold, its negation and their bits.
struct consts {
  float t, nt;
  std::uint32_t tb, ntb;
  explicit consts(float threshold) noexcept
      : t(threshold), nt(-1.0f * threshold), tb(bits_of(t)), ntb(bits_of(nt)) {}
};
constexpr std::uint32_t plus_one = 0x3F800000u, minus_one = 0xBF800000u;  // 1.0f, -1.0f

// One word of each format. `count` is 16/32 for a whole word (a constant after inlining: the
// loop vectorises) or less for the last, partial word; both run the same operations.

KVACTOR_GC_INLINE std::uint32_t quantize_2bit_word(const float* __restrict g, float* __restrict r,
                                                   unsigned count, const consts& c) noexcept {
  std::uint32_t word = 0;
  KVACTOR_GC_ELEMENT_LOOP
  for (unsigned j = 0; j < count; ++j) {
    const float x = r[j] + g[j];
    const std::uint32_t pos = mask_if(x >= c.t);
    const std::uint32_t neg = ~pos & mask_if(x <= c.nt);
    word |= (pos & k2.both[j]) | (neg & k2.hi[j]);
    // x - 0.0f == x for every x, NaN and -0 included: "r unchanged" for code 00.
    r[j] = x - from_bits((pos & c.tb) | (neg & c.ntb));
  }
  return word;
}

KVACTOR_GC_INLINE float decode_2bit(std::uint32_t word, unsigned j, const consts& c) noexcept {
  const std::uint32_t hi = mask_if((word & k2.hi[j]) != 0);
  const std::uint32_t lo = mask_if((word & (k2.both[j] ^ k2.hi[j])) != 0);
  return from_bits(hi & ((lo & c.tb) | (~lo & c.ntb)));  // 11: t, 10: -t, 0x: +0
}

KVACTOR_GC_INLINE void dequantize_2bit_word(std::uint32_t word, float* __restrict out,
                                            unsigned count, const consts& c) noexcept {
  KVACTOR_GC_ELEMENT_LOOP
  for (unsigned j = 0; j < count; ++j)
    out[j] = decode_2bit(word, j, c);
}

KVACTOR_GC_INLINE void dequantize_add_2bit_word(std::uint32_t word, float* __restrict acc,
                                                unsigned count, const consts& c) noexcept {
  KVACTOR_GC_ELEMENT_LOOP
  for (unsigned j = 0; j < count; ++j)
    acc[j] = acc[j] + decode_2bit(word, j, c);
}

KVACTOR_GC_INLINE std::uint32_t quantize_1bit_word(const float* __restrict g, float* __restrict r,
                                                   unsigned count, const consts& c) noexcept {
  std::uint32_t word = 0;
  KVACTOR_GC_ELEMENT_LOOP
  for (unsigned j = 0; j < count; ++j) {
    const float x = r[j] + g[j];
    const std::uint32_t one = mask_if(x > c.t);
    word |= one & k1.bit[j];
    r[j] = x - from_bits((one & plus_one) | (~one & minus_one));
  }
  return word;
}

KVACTOR_GC_INLINE float decode_1bit(std::uint32_t word, unsigned j) noexcept {
  const std::uint32_t one = mask_if((word & k1.bit[j]) != 0);
  return from_bits((one & plus_one) | (~one & minus_one));
}

KVACTOR_GC_INLINE void dequantize_1bit_word(std::uint32_t word, float* __restrict out,
                                            unsigned count) noexcept {
  KVACTOR_GC_ELEMENT_LOOP
  for (unsigned j = 0; j < count; ++j)
    out[j] = decode_1bit(word, j);
}

KVACTOR_GC_INLINE void dequantize_add_1bit_word(std::uint32_t word, float* __restrict acc,
                                                unsigned count) noexcept {
  KVACTOR_GC_ELEMENT_LOOP
  for (unsigned j = 0; j < count; ++j)
    acc[j] = acc[j] + decode_1bit(word, j);
}

// Loops over whole words [wb, we), compiled twice: for the compiler's baseline and, on x86-64
// with GCC or Clang, for AVX2 (picked at run time from the CPU). Only the vector width
// differs: IEEE add, subtract and compare give the same bits at any width, and there is no
// multiply that could be contracted into an FMA.
struct whole_words {
  const float* g;
  float* r;
  float* o;  // out or acc
  std::uint32_t* w;
  const std::uint32_t* wi;
  std::size_t wb, we;
};

KVACTOR_GC_INLINE void q2_loop(const whole_words& a, const consts& c) noexcept {
  for (std::size_t w = a.wb; w < a.we; ++w)
    a.w[w] = quantize_2bit_word(a.g + 16 * w, a.r + 16 * w, 16, c);
}
KVACTOR_GC_INLINE void d2_loop(const whole_words& a, const consts& c) noexcept {
  for (std::size_t w = a.wb; w < a.we; ++w)
    dequantize_2bit_word(a.wi[w], a.o + 16 * w, 16, c);
}
KVACTOR_GC_INLINE void da2_loop(const whole_words& a, const consts& c) noexcept {
  for (std::size_t w = a.wb; w < a.we; ++w)
    dequantize_add_2bit_word(a.wi[w], a.o + 16 * w, 16, c);
}
KVACTOR_GC_INLINE void q1_loop(const whole_words& a, const consts& c) noexcept {
  for (std::size_t w = a.wb; w < a.we; ++w)
    a.w[w] = quantize_1bit_word(a.g + 32 * w, a.r + 32 * w, 32, c);
}
KVACTOR_GC_INLINE void d1_loop(const whole_words& a, const consts&) noexcept {
  for (std::size_t w = a.wb; w < a.we; ++w)
    dequantize_1bit_word(a.wi[w], a.o + 32 * w, 32);
}
KVACTOR_GC_INLINE void da1_loop(const whole_words& a, const consts&) noexcept {
  for (std::size_t w = a.wb; w < a.we; ++w)
    dequantize_add_1bit_word(a.wi[w], a.o + 32 * w, 32);
}

using loop_fn = void (*)(const whole_words&, const consts&) noexcept;
struct loop_table {
  loop_fn q2, d2, da2, q1, d1, da1;
  const char* name;
};

// `attr` is a function attribute, which cannot be parenthesised.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define KVACTOR_GC_WRAPPERS(suffix, attr)                                                   \
  attr void q2_##suffix(const whole_words& a, const consts& c) noexcept {                   \
    q2_loop(a, c);                                                                          \
  }                                                                                         \
  attr void d2_##suffix(const whole_words& a, const consts& c) noexcept {                   \
    d2_loop(a, c);                                                                          \
  }                                                                                         \
  attr void da2_##suffix(const whole_words& a, const consts& c) noexcept {                  \
    da2_loop(a, c);                                                                         \
  }                                                                                         \
  attr void q1_##suffix(const whole_words& a, const consts& c) noexcept {                   \
    q1_loop(a, c);                                                                          \
  }                                                                                         \
  attr void d1_##suffix(const whole_words& a, const consts& c) noexcept {                   \
    d1_loop(a, c);                                                                          \
  }                                                                                         \
  attr void da1_##suffix(const whole_words& a, const consts& c) noexcept {                  \
    da1_loop(a, c);                                                                         \
  }                                                                                         \
  constexpr loop_table table_##suffix{q2_##suffix, d2_##suffix,  da2_##suffix, q1_##suffix, \
                                      d1_##suffix, da1_##suffix, #suffix};
// NOLINTEND(bugprone-macro-parentheses)

KVACTOR_GC_WRAPPERS(generic, )

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define KVACTOR_GC_HAVE_AVX2 1
KVACTOR_GC_WRAPPERS(avx2, __attribute__((target("avx2"))))
#endif

std::atomic<bool> forced_generic{false};

const loop_table& loops() noexcept {
#ifdef KVACTOR_GC_HAVE_AVX2
  static const bool cpu_has_avx2 = __builtin_cpu_supports("avx2");
  if (cpu_has_avx2 && !forced_generic.load(std::memory_order_relaxed)) return table_avx2;
#endif
  return table_generic;
}

// Runs the whole words of a's range through `loop` and the last, partial word, when the range
// covers it, through part(word, count).
template <unsigned E, class Part>
void run(std::size_t n, whole_words a, loop_fn loop, const consts& c, Part&& part) noexcept {
  const std::size_t we = a.we;
  a.we = std::min(we, n / E);
  if (a.wb < a.we) loop(a, c);
  // we > n / E means the range reaches the partial word n / E (words() rounds up).
  if (we > a.we && a.wb <= a.we && n % E != 0) part(a.we, static_cast<unsigned>(n % E));
}

// The shortest decimal form that reads back as v ("0.1", not "0.10000000000000001").
std::string shortest(double v) {
  std::ostringstream o;
  for (int digits = 6; digits <= 17; ++digits) {
    o.str("");
    o.precision(digits);
    o << v;
    if (std::isnan(v) || std::strtod(o.str().c_str(), nullptr) == v) break;
  }
  return o.str();
}

}  // namespace

const char* to_string(kind k) noexcept {
  switch (k) {
    case kind::none:
      return "none";
    case kind::one_bit:
      return "1bit";
    case kind::two_bit:
      return "2bit";
  }
  return "?";
}

result<params> parse(const std::string& type, double threshold) {
  params p;
  if (type == "none") return p;
  if (type == "1bit") {
    p.type = kind::one_bit;
  } else if (type == "2bit") {
    p.type = kind::two_bit;
  } else {
    return result<params>{errc::invalid_argument, "unknown gradient compression type '" + type +
                                                      "' (expected '1bit', '2bit' or 'none')"};
  }
  const float t = static_cast<float>(threshold);
  if (!std::isfinite(t))
    return result<params>{errc::invalid_argument, "gradient compression threshold " +
                                                      shortest(threshold) + " for '" + type +
                                                      "' is not a finite float"};
  if (p.type == kind::two_bit && !(t > 0.0f))
    return result<params>{errc::invalid_argument, "gradient compression threshold " +
                                                      shortest(threshold) +
                                                      " for '2bit' must be greater than 0"};
  p.threshold = t;
  return p;
}

std::size_t elements_per_word(kind k) noexcept {
  switch (k) {
    case kind::one_bit:
      return 32;
    case kind::two_bit:
      return 16;
    case kind::none:
      break;
  }
  return 1;
}

std::size_t words(kind k, std::size_t n) noexcept {
  const std::size_t e = elements_per_word(k);
  return n / e + (n % e != 0 ? 1 : 0);
}

void quantize(const params& p, const float* grad, float* residual, std::uint32_t* out,
              std::size_t n, std::size_t word_begin, std::size_t word_end) noexcept {
  const consts c(p.threshold);
  const whole_words a{grad, residual, nullptr, out, nullptr, word_begin, word_end};
  switch (p.type) {
    case kind::two_bit:
      run<16>(n, a, loops().q2, c, [&](std::size_t w, unsigned count) {
        out[w] = quantize_2bit_word(grad + 16 * w, residual + 16 * w, count, c);
      });
      break;
    case kind::one_bit:
      run<32>(n, a, loops().q1, c, [&](std::size_t w, unsigned count) {
        out[w] = quantize_1bit_word(grad + 32 * w, residual + 32 * w, count, c);
      });
      break;
    case kind::none:
      if (word_end > word_begin)
        std::memcpy(out + word_begin, grad + word_begin, (word_end - word_begin) * sizeof(float));
      break;
  }
}

void dequantize(const params& p, const std::uint32_t* in, float* out, std::size_t n,
                std::size_t word_begin, std::size_t word_end) noexcept {
  const consts c(p.threshold);
  const whole_words a{nullptr, nullptr, out, nullptr, in, word_begin, word_end};
  switch (p.type) {
    case kind::two_bit:
      run<16>(n, a, loops().d2, c, [&](std::size_t w, unsigned count) {
        dequantize_2bit_word(in[w], out + 16 * w, count, c);
      });
      break;
    case kind::one_bit:
      run<32>(n, a, loops().d1, c, [&](std::size_t w, unsigned count) {
        dequantize_1bit_word(in[w], out + 32 * w, count);
      });
      break;
    case kind::none:
      if (word_end > word_begin)
        std::memcpy(out + word_begin, in + word_begin, (word_end - word_begin) * sizeof(float));
      break;
  }
}

void dequantize_add(const params& p, const std::uint32_t* in, float* acc, std::size_t n,
                    std::size_t word_begin, std::size_t word_end) noexcept {
  const consts c(p.threshold);
  const whole_words a{nullptr, nullptr, acc, nullptr, in, word_begin, word_end};
  switch (p.type) {
    case kind::two_bit:
      run<16>(n, a, loops().da2, c, [&](std::size_t w, unsigned count) {
        dequantize_add_2bit_word(in[w], acc + 16 * w, count, c);
      });
      break;
    case kind::one_bit:
      run<32>(n, a, loops().da1, c, [&](std::size_t w, unsigned count) {
        dequantize_add_1bit_word(in[w], acc + 32 * w, count);
      });
      break;
    case kind::none:
      for (std::size_t i = word_begin; i < word_end; ++i)
        acc[i] = acc[i] + from_bits(in[i]);
      break;
  }
}

namespace detail {

const char* cpu_path() noexcept {
  return loops().name;
}

void force_generic(bool on) noexcept {
  forced_generic.store(on, std::memory_order_relaxed);
}

}  // namespace detail

}  // namespace kvactor::compression
