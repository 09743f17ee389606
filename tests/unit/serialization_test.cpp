// optimizer_config encoding and the bounds-checked decoder: round trips, every kind of
// malformed input, caps, and lengths that claim more bytes than exist.
#include <gtest/gtest.h>

#include <cereal/archives/portable_binary.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kvactor/serialization/bounded_archive.hpp"
#include "kvactor/serialization/optimizer_config.hpp"

namespace kvactor {
namespace {

using bytes = std::vector<std::uint8_t>;

// The layout encode() writes (cereal's portable binary archive, little endian): one
// endianness byte, magic u32, version u16, type length u64, type bytes, parameter count u64,
// then per parameter: name length u64, name bytes, value f64.
constexpr std::size_t magic_offset = 1, version_offset = 5, type_length_offset = 7;

std::size_t expected_size(const optimizer_config& c) {
  std::size_t n = 1 + 4 + 2 + 8 + c.type.size() + 8;
  for (const auto& [name, value] : c.params)
    n += 8 + name.size() + 8;
  return n;
}

void put_u64(bytes& b, std::size_t offset, std::uint64_t v) {
  for (int i = 0; i < 8; ++i)
    b.at(offset + static_cast<std::size_t>(i)) = static_cast<std::uint8_t>(v >> (8 * i));
}

result<optimizer_config> decode(const bytes& b, const config_caps& caps = {}) {
  return decode_optimizer_config(b.data(), b.size(), caps);
}

::testing::AssertionResult is_protocol_error(const result<optimizer_config>& r) {
  if (r.has_value()) return ::testing::AssertionFailure() << "decoded successfully";
  if (r.error().code() != errc::protocol_error)
    return ::testing::AssertionFailure() << "wrong error: " << r.error().to_string();
  return ::testing::AssertionSuccess();
}

optimizer_config sample() {
  return sgd_config(0.1, 0.9, 1e-4, 1.0 / 128, 5.0);
}

// ---------------------------------------------------------------- config values

TEST(OptimizerConfig, SgdDefaultsAreMxnets) {
  const auto c = sgd_config();
  EXPECT_EQ(c.type, "sgd");
  EXPECT_EQ(c.params.size(), 5u);
  EXPECT_EQ(c.params.at("learning_rate"), 0.01);
  EXPECT_EQ(c.params.at("momentum"), 0.0);
  EXPECT_EQ(c.params.at("wd"), 0.0);
  EXPECT_EQ(c.params.at("rescale_grad"), 1.0);
  EXPECT_LT(c.params.at("clip_gradient"), 0.0);
  const auto d = sgd_config(0.5, 0.9, 0.01, 0.25, 10);
  EXPECT_EQ(d.get("learning_rate", 0), 0.5);
  EXPECT_EQ(d.get("momentum", 0), 0.9);
  EXPECT_EQ(d.get("wd", 0), 0.01);
  EXPECT_EQ(d.get("rescale_grad", 0), 0.25);
  EXPECT_EQ(d.get("clip_gradient", 0), 10);
  EXPECT_EQ(d.get("beta1", 0.9), 0.9) << "absent: the fallback";
  EXPECT_FALSE(c == d);
  EXPECT_EQ(c, sgd_config());
}

// ---------------------------------------------------------------- round trips

TEST(OptimizerConfigCodec, RoundTrips) {
  std::vector<optimizer_config> configs{sample(), sgd_config(), optimizer_config{}};
  optimizer_config odd;
  odd.type = std::string("ty\0pe\xff", 6);
  odd.params["inf"] = std::numeric_limits<double>::infinity();
  odd.params["-inf"] = -std::numeric_limits<double>::infinity();
  odd.params["neg zero"] = -0.0;
  odd.params["denorm"] = std::numeric_limits<double>::denorm_min();
  odd.params["max"] = std::numeric_limits<double>::max();
  odd.params[""] = 1.5;
  odd.params[std::string("\xc3\xa9t\xc3\xa9")] = -2;
  odd.params[std::string(256, 'n')] = 3;  // at the default name cap
  configs.push_back(odd);
  for (const auto& c : configs) {
    const bytes b = encode(c);
    EXPECT_EQ(b.size(), expected_size(c));
    auto r = decode(b);
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
    EXPECT_EQ(*r, c);
    EXPECT_EQ(encode(*r), b) << "deterministic";
  }
  auto r = decode(encode(odd));
  EXPECT_TRUE(std::signbit(r->params.at("neg zero")));
}

TEST(OptimizerConfigCodec, NaNSurvives) {
  optimizer_config c{"sgd", {{"lr", std::nan("")}}};
  auto r = decode(encode(c));
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(std::isnan(r->params.at("lr")));
}

TEST(OptimizerConfigCodec, ManyParametersUpToTheCap) {
  optimizer_config c{"adam", {}};
  for (int i = 0; i < 256; ++i)
    c.params["p" + std::to_string(i)] = i * 0.5;
  auto b = encode(c);
  auto r = decode(b);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(*r, c);
  c.params["one too many"] = 1;
  EXPECT_TRUE(is_protocol_error(decode(encode(c))));
}

// ---------------------------------------------------------------- malformed input

TEST(OptimizerConfigCodec, EveryTruncatedPrefixFails) {
  for (const auto& c : {sample(), optimizer_config{}}) {
    const bytes b = encode(c);
    for (std::size_t len = 0; len < b.size(); ++len) {
      bytes prefix(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(len));
      EXPECT_TRUE(is_protocol_error(decode_optimizer_config(prefix.data(), len, {})))
          << "prefix of " << len << " / " << b.size();
    }
  }
}

TEST(OptimizerConfigCodec, ForeignMagicFails) {
  const bytes b = encode(sample());
  for (std::size_t i = magic_offset; i < magic_offset + 4; ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      bytes bad = b;
      bad[i] ^= static_cast<std::uint8_t>(1u << bit);
      auto r = decode(bad);
      ASSERT_TRUE(is_protocol_error(r)) << "byte " << i << " bit " << bit;
      EXPECT_NE(r.error().message().find("magic"), std::string::npos) << r.error().message();
    }
  }
}

TEST(OptimizerConfigCodec, OtherVersionsFail) {
  const bytes b = encode(sample());
  for (std::uint16_t v : {0, 2, 0x100, 0xffff}) {
    bytes bad = b;
    bad[version_offset] = static_cast<std::uint8_t>(v & 0xff);
    bad[version_offset + 1] = static_cast<std::uint8_t>(v >> 8);
    auto r = decode(bad);
    ASSERT_TRUE(is_protocol_error(r)) << v;
    EXPECT_NE(r.error().message().find("version"), std::string::npos) << r.error().message();
  }
}

TEST(OptimizerConfigCodec, TrailingBytesFail) {
  for (std::size_t extra : {1, 7, 100}) {
    bytes b = encode(sample());
    b.insert(b.end(), extra, 0);
    EXPECT_TRUE(is_protocol_error(decode(b))) << extra;
  }
}

TEST(OptimizerConfigCodec, DuplicateParameterNamesFail) {
  optimizer_config c{"sgd", {{"aa", 1.0}, {"ab", 2.0}}};
  bytes b = encode(c);
  // The second name's last byte: after the header, type, count, first (len, "aa", value),
  // the second's length.
  const std::size_t second_name = type_length_offset + 8 + 3 + 8 + (8 + 2 + 8) + 8;
  ASSERT_EQ(b.at(second_name + 1), 'b');
  b[second_name + 1] = 'a';
  EXPECT_TRUE(is_protocol_error(decode(b)));
}

TEST(OptimizerConfigCodec, HugeLengthClaimsFailFast) {
  const bytes b = encode(sample());
  const std::size_t count_offset = type_length_offset + 8 + 3;  // "sgd"
  const std::size_t first_name_offset = count_offset + 8;
  config_caps no_caps;
  no_caps.max_name_length = std::numeric_limits<std::size_t>::max();
  no_caps.max_params = std::numeric_limits<std::size_t>::max();
  const auto start = std::chrono::steady_clock::now();
  for (std::uint64_t claim : {std::uint64_t{1} << 40, ~std::uint64_t{0}, std::uint64_t{1} << 63,
                              std::uint64_t{b.size()}}) {
    for (std::size_t offset : {type_length_offset, count_offset, first_name_offset}) {
      bytes bad = b;
      put_u64(bad, offset, claim);
      // Caught by the caps with default caps, by the bytes left without them; either way
      // without trying to allocate the claimed size.
      EXPECT_TRUE(is_protocol_error(decode(bad))) << claim << " at " << offset;
      EXPECT_TRUE(is_protocol_error(decode(bad, no_caps))) << claim << " at " << offset;
    }
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(OptimizerConfigCodec, NullData) {
  EXPECT_TRUE(is_protocol_error(decode_optimizer_config(nullptr, 0)));
  EXPECT_TRUE(is_protocol_error(decode_optimizer_config(nullptr, 16)));
  EXPECT_TRUE(is_protocol_error(decode_optimizer_config(nullptr, 1u << 30)));
}

TEST(OptimizerConfigCodec, Caps) {
  const auto c = sample();
  const bytes b = encode(c);
  config_caps caps;
  caps.max_bytes = b.size();
  EXPECT_TRUE(decode(b, caps).has_value());
  caps.max_bytes = b.size() - 1;
  EXPECT_TRUE(is_protocol_error(decode(b, caps)));

  caps = {};
  caps.max_params = c.params.size();
  EXPECT_TRUE(decode(b, caps).has_value());
  caps.max_params = c.params.size() - 1;
  EXPECT_TRUE(is_protocol_error(decode(b, caps)));

  // The name cap applies to the type and to every parameter name.
  caps = {};
  caps.max_name_length = 13;  // "learning_rate" and "clip_gradient" are 13 long
  EXPECT_TRUE(decode(b, caps).has_value());
  caps.max_name_length = 12;
  EXPECT_TRUE(is_protocol_error(decode(b, caps)));
  optimizer_config long_type{"a_long_optimizer_name", {}};
  caps.max_name_length = 20;
  EXPECT_TRUE(is_protocol_error(decode(encode(long_type), caps)));
  caps.max_name_length = 21;
  EXPECT_TRUE(decode(encode(long_type), caps).has_value());
}

TEST(OptimizerConfigCodec, CorruptBytesNeverCrash) {
  const bytes b = encode(sample());
  std::mt19937 rng(5);
  for (std::size_t i = 0; i < b.size(); ++i) {
    for (int trial = 0; trial < 8; ++trial) {
      bytes bad = b;
      bad[i] = static_cast<std::uint8_t>(rng());
      auto r = decode(bad);
      if (!r.has_value()) {
        ASSERT_EQ(r.error().code(), errc::protocol_error) << i;
      }
    }
  }
  for (int trial = 0; trial < 2000; ++trial) {
    bytes junk(rng() % 64);
    for (auto& x : junk)
      x = static_cast<std::uint8_t>(rng());
    auto r = decode(junk);
    if (!r.has_value()) {
      ASSERT_EQ(r.error().code(), errc::protocol_error);
    }
  }
}

// ---------------------------------------------------------------- bounded_input

bytes archive_bytes(std::uint64_t length_field, const std::string& payload) {
  std::ostringstream out;
  {
    cereal::PortableBinaryOutputArchive ar(out);
    ar(length_field);
    ar(cereal::binary_data(payload.data(), payload.size()));
  }
  const std::string s = out.str();
  return bytes(s.begin(), s.end());
}

TEST(BoundedInput, ReadLengthChecksCapAndBytesLeft) {
  using serialization::bounded_input;
  using serialization::decode_failure;
  {
    auto b = archive_bytes(3, "abc");
    bounded_input in(b.data(), b.size());
    EXPECT_EQ(in.read_length(10, 1, "x"), 3u);
    EXPECT_EQ(in.remaining(), 3u);
  }
  {
    auto b = archive_bytes(3, "abc");
    bounded_input in(b.data(), b.size());
    EXPECT_THROW(in.read_length(2, 1, "x"), decode_failure) << "over the cap";
  }
  {
    auto b = archive_bytes(4, "abc");
    bounded_input in(b.data(), b.size());
    EXPECT_THROW(in.read_length(100, 1, "x"), decode_failure) << "more than the bytes left";
  }
  {
    auto b = archive_bytes(2, "abc");
    bounded_input in(b.data(), b.size());
    EXPECT_THROW(in.read_length(100, 2, "x"), decode_failure) << "2 elements of 2 bytes > 3";
  }
  {
    auto b = archive_bytes(~std::uint64_t{0}, "");
    bounded_input in(b.data(), b.size());
    EXPECT_THROW(in.read_length(~std::uint64_t{0}, 1, "x"), decode_failure);
  }
}

// cereal's portable layout may come from a big-endian writer (its first byte says so): the
// reader swaps integers, not bytes of strings.
TEST(BoundedInput, ReadsAnArchiveOfTheOtherByteOrder) {
  std::ostringstream out;
  {
    cereal::PortableBinaryOutputArchive ar(
        out, cereal::PortableBinaryOutputArchive::Options::BigEndian());
    ar(std::uint64_t{0x0102030405060708ull}, std::int32_t{-2}, std::uint16_t{0xabcd});
    const std::string s = "swap";
    ar(std::uint64_t{s.size()});
    ar(cereal::binary_data(s.data(), s.size()));
  }
  const std::string raw = out.str();
  ASSERT_EQ(static_cast<std::uint8_t>(raw[0]), 0u) << "cereal's flag for big-endian";
  serialization::bounded_input in(reinterpret_cast<const std::uint8_t*>(raw.data()), raw.size());
  std::uint64_t a = 0;
  std::int32_t b = 0;
  std::uint16_t c = 0;
  in.read(a);
  in.read(b);
  in.read(c);
  EXPECT_EQ(a, 0x0102030405060708ull);
  EXPECT_EQ(b, -2);
  EXPECT_EQ(c, 0xabcd);
  std::string s;
  in.read_string(s, 16, "s");
  EXPECT_EQ(s, "swap");
  EXPECT_EQ(in.remaining(), 0u);
}

TEST(BoundedInput, EmptyInputIsTruncated) {
  const std::uint8_t none = 0;
  EXPECT_THROW(serialization::bounded_input(&none, 0), serialization::decode_failure);
}

TEST(BoundedInput, ReadStringAndTruncatedReads) {
  using serialization::bounded_input;
  using serialization::decode_failure;
  auto b = archive_bytes(5, "hello");
  {
    bounded_input in(b.data(), b.size());
    std::string s;
    in.read_string(s, 5, "s");
    EXPECT_EQ(s, "hello");
    EXPECT_EQ(in.remaining(), 0u);
    std::uint32_t more = 0;
    EXPECT_THROW(in.read(more), decode_failure);
  }
  {
    bounded_input in(b.data(), b.size());
    std::string s;
    EXPECT_THROW(in.read_string(s, 4, "s"), decode_failure);
  }
  {
    // Five bytes: the endianness byte and half of a u64.
    bounded_input in(b.data(), 5);
    std::uint64_t n = 0;
    EXPECT_THROW(in.read(n), decode_failure);
  }
}

}  // namespace
}  // namespace kvactor
