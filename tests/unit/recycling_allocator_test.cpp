// recycling_allocator: objects made through it are whole and independent, a block given back
// is handed out again (where the build recycles: not under a sanitizer), blocks cross threads,
// a thread's own free blocks go to the shared list when it ends, and arrays take the plain path;
// byte_vector_cache: capacity comes back, bytes do not.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "kvactor/detail/recycling_allocator.hpp"

namespace kvactor::detail {
namespace {

struct sample {
  explicit sample(int v) : value(v) { fill.fill(static_cast<std::uint8_t>(v)); }
  int value;
  std::array<std::uint8_t, 200> fill{};
};

std::shared_ptr<sample> make(int v) {
  return std::allocate_shared<sample>(recycling_allocator<sample>{}, v);
}

bool whole(const sample& s, int v) {
  for (auto b : s.fill)
    if (b != static_cast<std::uint8_t>(v)) return false;
  return s.value == v;
}

TEST(RecyclingAllocator, ObjectsAreWholeAndIndependent) {
  std::vector<std::shared_ptr<sample>> held;
  for (int i = 0; i < 100; ++i)
    held.push_back(make(i));
  for (int i = 0; i < 100; ++i)
    EXPECT_TRUE(whole(*held[static_cast<std::size_t>(i)], i)) << i;
  held.clear();
  auto again = make(7);
  EXPECT_TRUE(whole(*again, 7));
}

TEST(RecyclingAllocator, AFreedBlockIsHandedOutAgain) {
  if (!block_list<1, 1>::recycles) GTEST_SKIP() << "a sanitizer build allocates plainly";
  const void* first = nullptr;
  {
    auto a = make(1);
    first = a.get();
  }
  auto b = make(2);
  EXPECT_EQ(static_cast<const void*>(b.get()), first) << "the last block given back comes first";
}

TEST(RecyclingAllocator, BlocksMadeOnOneThreadAreFreedOnAnother) {
  // More blocks than the shared list keeps (4096): those beyond it are freed; what comes
  // back is whole and independent.
  std::vector<std::shared_ptr<sample>> made;
  for (int i = 0; i < 6000; ++i)
    made.push_back(make(i % 251));
  std::thread t([&] { made.clear(); });
  t.join();
  std::vector<std::shared_ptr<sample>> again;
  for (int i = 0; i < 6000; ++i)
    again.push_back(make(i % 13));
  for (int i = 0; i < 6000; ++i)
    ASSERT_TRUE(whole(*again[static_cast<std::size_t>(i)], i % 13)) << i;
}

// A size of its own, so that no other test's blocks are in its lists.
struct odd_sized {
  explicit odd_sized(int v) : value(v) {}
  int value;
  std::array<char, 333> pad{};
};

TEST(RecyclingAllocator, AThreadsOwnFreeBlocksGoToTheSharedListWhenItEnds) {
  if (!block_list<1, 1>::recycles) GTEST_SKIP() << "a sanitizer build allocates plainly";
  std::vector<const void*> kept_by_thread;
  std::thread t([&] {
    std::vector<std::shared_ptr<odd_sized>> made;
    for (int i = 0; i < 10; ++i)
      made.push_back(std::allocate_shared<odd_sized>(recycling_allocator<odd_sized>{}, i));
    for (const auto& m : made)
      kept_by_thread.push_back(m.get());
  });  // the ten blocks were given back on that thread, kept there, and left with it
  t.join();
  std::vector<std::shared_ptr<odd_sized>> again;
  for (int i = 0; i < 10; ++i)
    again.push_back(std::allocate_shared<odd_sized>(recycling_allocator<odd_sized>{}, i));
  for (const auto& a : again)
    EXPECT_NE(
        std::find(kept_by_thread.begin(), kept_by_thread.end(), static_cast<const void*>(a.get())),
        kept_by_thread.end())
        << "a block the ended thread kept is handed out here";
}

TEST(RecyclingAllocator, ArraysTakeThePlainPath) {
  recycling_allocator<std::uint64_t> a;
  std::uint64_t* p = a.allocate(64);
  for (std::uint64_t i = 0; i < 64; ++i)
    p[i] = i * 3;
  EXPECT_EQ(p[63], 189u);
  a.deallocate(p, 64);
  std::vector<std::uint64_t, recycling_allocator<std::uint64_t>> v(1000, 5);
  EXPECT_EQ(v.back(), 5u);
}

// A vector given back is handed out again with its capacity and no bytes; vectors over the
// size bound are not kept.
TEST(ByteVectorCache, GivesBackCapacityNotBytes) {
  if (!block_list<1, 1>::recycles) GTEST_SKIP() << "a sanitizer build allocates plainly";
  std::vector<std::uint8_t> v(100, 7);
  const auto* data = v.data();
  byte_vector_cache::give(std::move(v));
  auto again = byte_vector_cache::take();
  EXPECT_TRUE(again.empty());
  EXPECT_GE(again.capacity(), 100u);
  EXPECT_EQ(again.data(), data);
  std::vector<std::uint8_t> big(byte_vector_cache::max_bytes + 1);
  const auto* big_data = big.data();
  byte_vector_cache::give(std::move(big));
  auto next = byte_vector_cache::take();
  EXPECT_NE(next.data(), big_data) << "an oversized vector is not kept";
}

}  // namespace
}  // namespace kvactor::detail
