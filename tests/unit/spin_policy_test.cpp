// The rule that decides whether a waiting thread spins before parking (actors/src/spin_policy.hpp):
// it spins while at least quick_needed of its last `remembered` waits ended within the window.
#include <gtest/gtest.h>

#include <chrono>

#include "spin_policy.hpp"

namespace kvactor::detail {
namespace {

using std::chrono::microseconds;
constexpr auto quick = microseconds(5);
constexpr auto slow = microseconds(200);

TEST(SpinPolicy, ANewThreadSpins) {
  EXPECT_TRUE(spin_policy{}.should_spin());
}

TEST(SpinPolicy, StopsOnceTooFewOfTheLastWaitsWereQuick) {
  spin_policy p;
  const int allowed_slow = spin_policy::remembered - spin_policy::quick_needed;
  for (int i = 0; i < allowed_slow; ++i) {
    p.record(slow);
    EXPECT_TRUE(p.should_spin()) << "after " << i + 1 << " slow waits";
  }
  p.record(slow);
  EXPECT_FALSE(p.should_spin());
}

TEST(SpinPolicy, AWaitOfExactlyTheWindowCountsAsQuick) {
  spin_policy p;
  for (int i = 0; i < spin_policy::remembered; ++i)
    p.record(slow);
  for (int i = 0; i < spin_policy::quick_needed - 1; ++i)
    p.record(spin_policy::window);
  EXPECT_FALSE(p.should_spin());
  p.record(spin_policy::window);
  EXPECT_TRUE(p.should_spin());
  p.record(spin_policy::window + microseconds(1));
  EXPECT_TRUE(p.should_spin()) << "the quick waits are still among the remembered ones";
}

TEST(SpinPolicy, QuickWaitsAgeOutOfTheHistory) {
  spin_policy p;
  for (int i = 0; i < spin_policy::remembered; ++i)
    p.record(slow);
  for (int i = 0; i < spin_policy::quick_needed; ++i)
    p.record(quick);
  ASSERT_TRUE(p.should_spin());
  // The quick waits are the newest; once `remembered - quick_needed + 1` slow waits follow,
  // the oldest of them has fallen out and too few are left.
  for (int i = 0; i < spin_policy::remembered - spin_policy::quick_needed; ++i)
    p.record(slow);
  EXPECT_TRUE(p.should_spin());
  p.record(slow);
  EXPECT_FALSE(p.should_spin());
}

TEST(SpinPolicy, MixedWaitsKeepSpinningWhileAQuarterAreQuick) {
  spin_policy p;
  for (int round = 0; round < 8; ++round) {
    p.record(quick);
    p.record(slow);
    p.record(slow);
    p.record(slow);
    EXPECT_TRUE(p.should_spin()) << "round " << round;
  }
}

}  // namespace
}  // namespace kvactor::detail
