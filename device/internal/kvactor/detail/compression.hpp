// Gradient compression (MXNet's set_gradient_compression): 1-bit and 2-bit quantisation with
// error feedback through a residual the sender keeps per key and device. CPU kernels on raw
// pointers and ranges of whole words; the CUDA versions must give the same bits.
//
// Data types. float32 gradients, residuals and outputs only; passing any other dtype's
// buffer is the caller's error (the kernels cannot tell).
//
// Thread-safety. Pure functions. Concurrent calls on disjoint word ranges of the same arrays
// are safe: word range [wb, we) touches exactly elements [E*wb, min(n, E*we)) and words
// [wb, we), with E = elements_per_word(kind). Splitting a call into word ranges, in any order
// and on any threads, gives the same bits as one call over all words.
//
// Floating point: IEEE float32 in the default environment (round to nearest even, subnormals
// kept: a thread that sets flush-to-zero/denormals-are-zero gets different residuals for
// subnormal values). The CPU kernels have a baseline and an AVX2 path (x86-64, picked at run
// time) that give the same bits; a CUDA port must keep subnormals (no -ftz / fast math) and do
// the same adds, subtracts and comparisons.
//
// Preconditions (not checked; noexcept): word_begin <= word_end <= words(kind, n); the
// pointers address whole arrays (element i is p[i], word w is q[w]) valid for the elements and
// words the range covers; grad, residual, out/acc and the words never overlap.
//
// ---------------------------------------------------------------------------------------------
// Wire layout (the same bytes as MXNet 1.x, src/kvstore/gradient_compression-inl.h,
// quantize_2bit / dequantize_2bit / quantize_1bit / dequantize_1bit). The compressed form is
// words(kind, n) 32-bit words = 4·words bytes. The layout is defined on those bytes; the words
// are little-endian in memory on every host (on a big-endian host the kernels place the bits
// so that the bytes are the same), so the buffer can be sent as it is.
//
// two_bit (16 elements per word, 4 per byte). Element i lives in byte i/4 (byte 4·(i/16) +
// (i%16)/4 of word i/16); with c = i%4 its two bits are bit 7−2c (high) and bit 6−2c (low) of
// that byte, i.e. element 4k is the byte's top pair and 4k+3 its bottom pair. Codes:
//     11 (high and low set) = +threshold,   10 (high only) = −threshold,   00 = 0.
// 01 is never written; dequantize reads it as 0 (as MXNet does). As a little-endian u32,
// element j = i%16 of word i/16 sits at bits s+1..s with s = 8·(j/4) + 6 − 2·(j%4):
//     j:  0  1  2  3 | 4  5  6  7 |  8  9 10 11 | 12 13 14 15
//     s:  6  4  2  0 | 14 12 10 8 | 22 20 18 16 | 30 28 26 24
// e.g. codes (+t, −t, 0, +t) for elements 0..3 and 0 elsewhere give byte 0 = 0b11100011 =
// 0xE3, word value 0x000000E3.
// Quantize, per element, in this order and in float32 arithmetic:
//     r = residual[i] + grad[i];
//     if (r >= t)       { code 11; r = r - t;    }
//     else if (r <= -t) { code 10; r = r - (−t); }   // r + t, the same IEEE result
//     else              { code 00; r unchanged   }
//     residual[i] = r;
// Decoded values: +t, −t, or +0.0f.
//
// one_bit (32 elements per word, 8 per byte). Element i lives in byte i/8, bit 7 − i%8 (as a
// little-endian u32: element j = i%32 of word i/32 at bit 8·(j/8) + 7 − j%8). Bit 1 = +1,
// bit 0 = −1. Note that, as in MXNet, the decoded values are ±1.0f whatever the threshold; the
// threshold only sets the decision point:
//     r = residual[i] + grad[i];
//     if (r > t) { bit 1; r = r - 1; }   // strictly greater
//     else       { bit 0; r = r + 1; }   // decoded as −1
//     residual[i] = r;
//
// Padding: bits of the last word past element n−1 are 0 (quantize writes whole words).
//
// kind::none: the "compressed" form is the float32 values themselves, one word per element
// (words = n, bit copies); quantize copies grad to the words and leaves the residual alone,
// dequantize copies back, dequantize_add adds. Stores normally skip compression for none.
//
// Non-finite gradients follow the IEEE arithmetic above, with no special case (as MXNet):
//   2-bit: r = NaN → code 00 (decoded 0), residual stays NaN; r = +inf → code 11 (+t), residual
//   stays +inf (inf − t); r = −inf → code 10, residual −inf. 1-bit: NaN → bit 0 (−1), residual
//   NaN; +inf → bit 1, residual +inf; −inf → bit 0, residual −inf. A non-finite value thus
//   sticks in that element's residual, and every later push sends the same code for it, until
//   the caller resets the residual (e.g. fills it with 0).
//
// dequantize_add computes acc[i] = acc[i] + decoded[i] as a float add for every element (so
// an acc of −0.0 becomes +0.0 where the decoded value is +0). Merging senders 0..k−1 into a
// zeroed acc in sender order gives the same bits as decoding each and summing in that order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "kvactor/result.hpp"

namespace kvactor::compression {

enum class kind : std::uint8_t { none, one_bit, two_bit };

/// "none", "1bit" or "2bit".
const char* to_string(kind k) noexcept;

struct params {
  kind type = kind::none;
  /// 2-bit: the quantisation level (> 0). 1-bit: the decision point (any finite value).
  float threshold = 0.5f;  // MXNet's default
};

/// MXNet's {'type': ..., 'threshold': ...}. type: "1bit", "2bit" or "none" (exact spelling).
/// threshold is rounded to float; it must be finite as a float, and > 0 after rounding for
/// "2bit". For "none" it is ignored (the default is kept). Errors: errc::invalid_argument with
/// a message naming the offending value.
result<params> parse(const std::string& type, double threshold);

/// Elements per 32-bit word: 16 (two_bit), 32 (one_bit), 1 (none).
std::size_t elements_per_word(kind k) noexcept;

/// 32-bit words of the compressed form of n elements: ceil(n/16) for two_bit, ceil(n/32) for
/// one_bit, n for none.
std::size_t words(kind k, std::size_t n) noexcept;

/// residual += grad; code each element; residual -= its decoded value (see the layout above).
/// Writes whole words [word_begin, word_end) of out, including the zero padding of the last.
void quantize(const params& p, const float* grad, float* residual, std::uint32_t* out,
              std::size_t n, std::size_t word_begin, std::size_t word_end) noexcept;

/// out[i] = decoded value of element i, for the elements of words [word_begin, word_end).
void dequantize(const params& p, const std::uint32_t* in, float* out, std::size_t n,
                std::size_t word_begin, std::size_t word_end) noexcept;

/// acc[i] = acc[i] + decoded value of element i (merging several senders).
void dequantize_add(const params& p, const std::uint32_t* in, float* acc, std::size_t n,
                    std::size_t word_begin, std::size_t word_end) noexcept;

namespace detail {
/// The CPU code path the kernels use: "avx2" (x86-64 GCC/Clang builds on a CPU with AVX2) or
/// "generic" (the compiler's baseline, SSE2 on x86-64). Both give the same bits; the choice is
/// made once from the CPU.
const char* cpu_path() noexcept;
/// For tests and benchmarks: force the generic path (true) or return to the CPU's best
/// (false). A relaxed atomic; each kernel call reads it once.
void force_generic(bool on) noexcept;
}  // namespace detail

}  // namespace kvactor::compression
