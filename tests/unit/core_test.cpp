// shape, key, status / error / result: the vocabulary every layer shares.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <system_error>
#include <unordered_set>
#include <variant>
#include <vector>

#include "kvactor/error.hpp"
#include "kvactor/key.hpp"
#include "kvactor/result.hpp"
#include "kvactor/shape.hpp"

namespace kvactor {
namespace {

// ---------------------------------------------------------------- shape

TEST(Shape, NumelIsTheProductOfPositiveDims) {
  EXPECT_EQ((shape{2, 3}).numel(), 6);
  EXPECT_EQ((shape{5}).numel(), 5);
  EXPECT_EQ((shape{2, 3, 4, 5}).numel(), 120);
  EXPECT_EQ((shape{1, 1, 1}).numel(), 1);
  EXPECT_EQ(shape(std::vector<std::int64_t>{7, 11}).numel(), 77);
}

TEST(Shape, EmptyZeroNegativeAndOverflowingShapesHaveNoElements) {
  EXPECT_EQ(shape{}.numel(), 0);
  EXPECT_EQ((shape{0}).numel(), 0);
  EXPECT_EQ((shape{3, 0, 2}).numel(), 0);
  EXPECT_EQ((shape{-1}).numel(), 0);
  EXPECT_EQ((shape{4, -2}).numel(), 0);
  EXPECT_EQ((shape{-2, -3}).numel(), 0) << "two negatives must not multiply to a positive";
  constexpr std::int64_t big = std::int64_t{1} << 32;
  EXPECT_EQ((shape{big, big}).numel(), 0) << "2^64 elements overflow int64";
  EXPECT_EQ((shape{big, big / 2}).numel(), 0) << "exactly 2^63 overflows too";
  EXPECT_EQ((shape{big, big / 4}).numel(), std::int64_t{1} << 62);
}

TEST(Shape, ValidityRequiresAtLeastOnePositiveDimAndNoOther) {
  EXPECT_TRUE((shape{1}).is_valid_nonempty());
  EXPECT_TRUE((shape{2, 3}).is_valid_nonempty());
  EXPECT_FALSE(shape{}.is_valid_nonempty());
  EXPECT_FALSE((shape{0}).is_valid_nonempty());
  EXPECT_FALSE((shape{2, 0}).is_valid_nonempty());
  EXPECT_FALSE((shape{-1, 4}).is_valid_nonempty());
  EXPECT_FALSE((shape{-2, -3}).is_valid_nonempty());
}

TEST(Shape, ToStringUsesPythonTupleSyntax) {
  EXPECT_EQ((shape{2, 3}).to_string(), "(2, 3)");
  EXPECT_EQ((shape{5}).to_string(), "(5,)");
  EXPECT_EQ(shape{}.to_string(), "()");
  EXPECT_EQ((shape{1, 0, -7}).to_string(), "(1, 0, -7)");
  EXPECT_EQ((shape{std::numeric_limits<std::int64_t>::max()}).to_string(),
            "(9223372036854775807,)");
}

TEST(Shape, AccessorsAndEquality) {
  shape s{4, 5, 6};
  EXPECT_EQ(s.ndim(), 3u);
  EXPECT_EQ(s[0], 4);
  EXPECT_EQ(s[2], 6);
  EXPECT_EQ(s.dims(), (std::vector<std::int64_t>{4, 5, 6}));
  EXPECT_EQ(s, (shape{4, 5, 6}));
  EXPECT_NE(s, (shape{4, 5}));
  EXPECT_NE(s, (shape{6, 5, 4}));
  EXPECT_NE((shape{6}), (shape{6, 1}));
}

// ---------------------------------------------------------------- key

TEST(Key, IntAndStringKinds) {
  key a = 7;
  key b = std::int64_t{1} << 40;
  key c = "weight";
  key d = std::string("bias");
  key e = std::string_view("emb");
  key def;
  EXPECT_TRUE(a.is_int());
  EXPECT_FALSE(a.is_string());
  EXPECT_EQ(a.as_int(), 7);
  EXPECT_EQ(b.as_int(), std::int64_t{1} << 40);
  EXPECT_TRUE(c.is_string());
  EXPECT_EQ(c.as_string(), "weight");
  EXPECT_EQ(d.as_string(), "bias");
  EXPECT_EQ(e.as_string(), "emb");
  EXPECT_TRUE(def.is_int());
  EXPECT_EQ(def.as_int(), 0);
  EXPECT_THROW(a.as_string(), std::bad_variant_access);
  EXPECT_THROW(c.as_int(), std::bad_variant_access);
}

TEST(Key, EqualityDistinguishesKinds) {
  EXPECT_EQ(key(3), key(std::int64_t{3}));
  EXPECT_EQ(key("3"), key(std::string("3")));
  EXPECT_NE(key(3), key("3"));
  EXPECT_NE(key(1), key(2));
  EXPECT_NE(key("a"), key("b"));
  EXPECT_NE(key(""), key(0));
  EXPECT_FALSE(key(1) != key(1));
}

TEST(Key, ToStringQuotesStrings) {
  EXPECT_EQ(key(7).to_string(), "7");
  EXPECT_EQ(key(-12).to_string(), "-12");
  EXPECT_EQ(key(std::numeric_limits<std::int64_t>::min()).to_string(), "-9223372036854775808");
  EXPECT_EQ(key("weight").to_string(), "\"weight\"");
  EXPECT_EQ(key("").to_string(), "\"\"");
  EXPECT_EQ(key("7").to_string(), "\"7\"");
}

// The hash is specified as a splitmix64 finaliser over the int, or over the FNV-1a hash of the
// string's bytes, so that every process of a cluster agrees. These references implement the
// published algorithms and are checked against their published test vectors first.
std::uint64_t splitmix64_first_output(std::uint64_t seed) {
  std::uint64_t z = seed + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
std::uint64_t fnv1a64(const std::string& s) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

TEST(Key, ReferenceHashesMatchPublishedVectors) {
  // splitmix64 seeded with 0 yields 0xe220a8397b1dcdaf, then 0x6e789e6aa1b965f4.
  EXPECT_EQ(splitmix64_first_output(0), 0xe220a8397b1dcdafull);
  EXPECT_EQ(splitmix64_first_output(0x9e3779b97f4a7c15ull), 0x6e789e6aa1b965f4ull);
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ull);
}

TEST(Key, HashIsStableAcrossProcesses) {
  static_assert(sizeof(std::size_t) == 8, "the reference assumes 64-bit size_t");
  for (std::int64_t k :
       {std::int64_t{0}, std::int64_t{1}, std::int64_t{-1}, std::int64_t{42},
        std::numeric_limits<std::int64_t>::max(), std::numeric_limits<std::int64_t>::min()}) {
    EXPECT_EQ(key(k).hash(), splitmix64_first_output(static_cast<std::uint64_t>(k))) << k;
  }
  for (const char* s : {"", "1", "weight", "fc1_weight", "a longer key with spaces"}) {
    EXPECT_EQ(key(s).hash(), splitmix64_first_output(fnv1a64(s))) << s;
  }
  // Bytes >= 0x80 are hashed as unsigned bytes.
  const std::string high = "\xc3\xa9t\xc3\xa9";
  EXPECT_EQ(key(high).hash(), splitmix64_first_output(fnv1a64(high)));
}

TEST(Key, HashAgreesWithEqualityAndStdHash) {
  EXPECT_EQ(key(5).hash(), key(std::int64_t{5}).hash());
  EXPECT_EQ(key("x").hash(), key(std::string("x")).hash());
  EXPECT_EQ(std::hash<key>{}(key("x")), key("x").hash());
  EXPECT_NE(key(1).hash(), key("1").hash());
  EXPECT_NE(key(0).hash(), key("").hash());
  std::unordered_set<key> set{key(1), key("1"), key(2), key("2"), key(1)};
  EXPECT_EQ(set.size(), 4u);
}

TEST(Key, ConsecutiveIntKeysSpreadOverShards) {
  constexpr int shards = 16, keys = 16000;
  std::vector<int> count(shards, 0);
  for (int k = 0; k < keys; ++k)
    ++count[key(k).hash() % shards];
  for (int s = 0; s < shards; ++s) {
    EXPECT_GT(count[s], keys / shards * 8 / 10) << "shard " << s;
    EXPECT_LT(count[s], keys / shards * 12 / 10) << "shard " << s;
  }
}

TEST(Key, OrderingIsStrictWeak) {
  std::set<key> keys{key(3), key(1), key("b"), key("a"), key(2)};
  EXPECT_EQ(keys.size(), 5u);
  EXPECT_TRUE(key(1) < key(2));
  EXPECT_FALSE(key(2) < key(1));
  EXPECT_TRUE(key("a") < key("b"));
  EXPECT_NE(key(1) < key("1"), key("1") < key(1)) << "kinds are ordered one way only";
}

// ---------------------------------------------------------------- errc, category

const std::vector<std::pair<errc, std::string>>& all_codes() {
  static const std::vector<std::pair<errc, std::string>> codes{
      {errc::ok, "ok"},
      {errc::not_initialized, "not_initialized"},
      {errc::already_initialized, "already_initialized"},
      {errc::shape_mismatch, "shape_mismatch"},
      {errc::dtype_mismatch, "dtype_mismatch"},
      {errc::mixed_key_types, "mixed_key_types"},
      {errc::invalid_argument, "invalid_argument"},
      {errc::peer_lost, "peer_lost"},
      {errc::timeout, "timeout"},
      {errc::protocol_error, "protocol_error"},
      {errc::unauthenticated, "unauthenticated"},
      {errc::unsupported, "unsupported"},
      {errc::out_of_range, "out_of_range"},
      {errc::updater_failed, "updater_failed"},
      {errc::shut_down, "shut_down"},
      {errc::internal, "internal"},
      {errc::aborted, "aborted"},
  };
  return codes;
}

TEST(Errc, EveryCodeIsNamedAfterItsEnumerator) {
  for (const auto& [code, name] : all_codes())
    EXPECT_EQ(to_string(code), name);
  EXPECT_EQ(static_cast<int>(errc::ok), 0);
  EXPECT_EQ(static_cast<int>(errc::not_initialized), 1);
}

TEST(Errc, ErrorCodeCategory) {
  EXPECT_STREQ(kvactor_category().name(), "kvactor");
  EXPECT_EQ(&kvactor_category(), &kvactor_category());
  for (const auto& [code, name] : all_codes()) {
    std::error_code ec = code;  // implicit through is_error_code_enum
    EXPECT_EQ(ec, make_error_code(code));
    EXPECT_EQ(&ec.category(), &kvactor_category());
    EXPECT_EQ(ec.value(), static_cast<int>(code));
    EXPECT_EQ(ec.message(), name);
    EXPECT_EQ(static_cast<bool>(ec), code != errc::ok);
  }
  EXPECT_NE(std::error_code(errc::timeout), std::make_error_code(std::errc::timed_out))
      << "a different category";
}

// ---------------------------------------------------------------- status

TEST(Status, DefaultIsOk) {
  status s;
  EXPECT_TRUE(s.is_ok());
  EXPECT_TRUE(static_cast<bool>(s));
  EXPECT_EQ(s.code(), errc::ok);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.to_string(), "ok");
  EXPECT_NO_THROW(s.raise_if_error());
  EXPECT_TRUE(status::ok().is_ok());
  EXPECT_TRUE(status(errc::ok, "ignored").is_ok());
}

TEST(Status, ErrorCarriesCodeAndMessage) {
  status s(errc::shape_mismatch, "key 3: got (2,), want (3,)");
  EXPECT_FALSE(s.is_ok());
  EXPECT_FALSE(static_cast<bool>(s));
  EXPECT_EQ(s.code(), errc::shape_mismatch);
  EXPECT_EQ(s.message(), "key 3: got (2,), want (3,)");
  EXPECT_EQ(s.to_string(), "shape_mismatch: key 3: got (2,), want (3,)");
  status copy = s;
  EXPECT_EQ(copy.code(), errc::shape_mismatch);
  EXPECT_EQ(&copy.message(), &s.message()) << "copies share the text";
  status empty_msg(errc::timeout, "");
  EXPECT_FALSE(empty_msg.is_ok());
  EXPECT_EQ(empty_msg.to_string(), "timeout: ");
}

TEST(Status, RaiseIfErrorThrowsKvactorError) {
  status s(errc::peer_lost, "server 2");
  try {
    s.raise_if_error();
    FAIL() << "no exception";
  } catch (const error& e) {
    EXPECT_EQ(e.code(), errc::peer_lost);
    EXPECT_EQ(e.message(), "server 2");
    EXPECT_STREQ(e.what(), "peer_lost: server 2");
    EXPECT_EQ(e.to_status().code(), errc::peer_lost);
    EXPECT_EQ(e.to_status().message(), "server 2");
  }
  // kvactor::error is a std::runtime_error.
  EXPECT_THROW(s.raise_if_error(), std::runtime_error);
}

TEST(Error, ConstructorsAgree) {
  error a(errc::invalid_argument, "bad k");
  error b(status(errc::invalid_argument, "bad k"));
  EXPECT_EQ(a.code(), b.code());
  EXPECT_EQ(a.message(), b.message());
  EXPECT_STREQ(a.what(), b.what());
  EXPECT_STREQ(a.what(), "invalid_argument: bad k");
}

// ---------------------------------------------------------------- result

TEST(Result, HoldsAValue) {
  result<std::string> r = std::string("abc");
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(static_cast<bool>(r));
  EXPECT_TRUE(r.error().is_ok());
  EXPECT_EQ(r.value(), "abc");
  EXPECT_EQ(*r, "abc");
  EXPECT_EQ(r->size(), 3u);
  r.value() += "d";
  EXPECT_EQ(*r, "abcd");
  const auto& cr = r;
  EXPECT_EQ(cr.value(), "abcd");
  std::string moved = std::move(r).value();
  EXPECT_EQ(moved, "abcd");
}

TEST(Result, HoldsAnError) {
  result<int> r(errc::out_of_range, "index 9");
  EXPECT_FALSE(r.has_value());
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_EQ(r.error().code(), errc::out_of_range);
  EXPECT_EQ(r.error().message(), "index 9");
  try {
    (void)r.value();
    FAIL() << "no exception";
  } catch (const error& e) {
    EXPECT_EQ(e.code(), errc::out_of_range);
    EXPECT_EQ(e.message(), "index 9");
  }
  result<int> from_status = status(errc::timeout, "t");
  EXPECT_EQ(from_status.error().code(), errc::timeout);
  EXPECT_THROW((void)std::move(from_status).value(), error);
}

TEST(Result, AnOkStatusWithoutValueIsAnInternalError) {
  result<int> r = status::ok();
  EXPECT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), errc::internal);
  EXPECT_THROW((void)r.value(), error);
}

}  // namespace
}  // namespace kvactor
