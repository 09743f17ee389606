// The shard's scheduler (actors/src/key_scheduler.*) with plain items: FIFO per key, one item
// per key at a time, priority across keys with inheritance from a key's queued items, arrival
// order among equals, passes that stop for a busy mailbox, and fences.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "key_scheduler.hpp"

namespace kvactor::detail {
namespace {

using sched = key_scheduler<int>;

// Plays the owning actor: `quiet` is its mailbox being empty, `passes` counts the passes it
// was asked for, `log` the items started and fences run, in order.
struct harness {
  bool quiet = true;
  int passes = 0;
  std::vector<std::string> log;
  // Items the harness finishes inside run() (as a shard finishes a small op inline).
  std::vector<int> finish_inline;
  sched s{sched::hooks{[this] { ++passes; }, [this] { return quiet; }}};
  std::function<void(sched::key&, int)> run = [this](sched::key& k, int item) {
    log.push_back(std::to_string(item));
    for (int i : finish_inline)
      if (i == item) s.finished(k, run);
  };

  void submit(sched::key& k, int item, int priority = 0) { s.submit(k, item, priority, run); }
  void pass() { s.run_ready(run); }
  void done(sched::key& k) { s.finished(k, run); }
  void fence(const std::string& name) {
    s.fence([this, name] { log.push_back(name); });
  }
};

using log_t = std::vector<std::string>;

TEST(KeyScheduler, AnItemRunsAtOnceWhenNothingCompetes) {
  harness h;
  sched::key a;
  h.submit(a, 1);
  EXPECT_EQ(h.log, log_t{"1"});
  EXPECT_TRUE(a.busy());
  EXPECT_EQ(h.s.live(), 1u);
  EXPECT_EQ(h.passes, 0);  // no pass needed
  h.done(a);
  EXPECT_FALSE(a.busy());
  EXPECT_EQ(h.s.live(), 0u);
}

TEST(KeyScheduler, ABusyMailboxQueuesTheItemAndAsksForOnePass) {
  harness h;
  h.quiet = false;
  sched::key a, b;
  h.submit(a, 1);
  h.submit(b, 2);
  EXPECT_TRUE(h.log.empty());
  EXPECT_EQ(h.s.ready_keys(), 2u);
  EXPECT_EQ(h.passes, 1);  // one request however many keys are ready
  EXPECT_TRUE(h.s.pass_pending());
  h.quiet = true;
  h.pass();
  EXPECT_EQ(h.log, (log_t{"1", "2"}));
  EXPECT_EQ(h.s.ready_keys(), 0u);
  EXPECT_FALSE(h.s.pass_pending());
}

TEST(KeyScheduler, ItemsOfOneKeyRunInArrivalOrderOneAtATime) {
  harness h;
  sched::key a;
  h.submit(a, 1);
  h.submit(a, 2, 5);  // a higher priority does not overtake on its own key
  h.submit(a, 3);
  EXPECT_EQ(h.log, log_t{"1"});
  EXPECT_EQ(a.queued(), 2u);
  EXPECT_EQ(h.s.ready_keys(), 0u);  // busy: not ready
  h.pass();
  EXPECT_EQ(h.log, log_t{"1"});  // nothing to pick while the key is busy
  h.done(a);
  EXPECT_EQ(h.s.ready_keys(), 1u);
  h.pass();
  EXPECT_EQ(h.log, (log_t{"1", "2"}));
  h.pass();
  EXPECT_EQ(h.log, (log_t{"1", "2"}));  // 3 waits for 2
  h.done(a);
  h.pass();
  EXPECT_EQ(h.log, (log_t{"1", "2", "3"}));
  h.done(a);
  EXPECT_EQ(h.s.live(), 0u);
  EXPECT_EQ(a.queued(), 0u);
}

TEST(KeyScheduler, ABusyKeyIsNotPickedWhileOtherKeysRun) {
  harness h;
  sched::key a, b;
  h.submit(a, 1);
  h.quiet = false;
  h.submit(a, 2, 9);
  h.submit(b, 3, 0);
  h.quiet = true;
  h.pass();
  EXPECT_EQ(h.log, (log_t{"1", "3"}));  // b's item, though a's waiting one is more urgent
  EXPECT_EQ(a.queued(), 1u);
  EXPECT_TRUE(b.busy());
}

TEST(KeyScheduler, KeysRunByPriority) {
  harness h;
  h.quiet = false;
  sched::key a, b, c;
  h.submit(a, 1, 0);
  h.submit(b, 2, 5);
  h.submit(c, 3, 1);
  h.quiet = true;
  h.pass();
  EXPECT_EQ(h.log, (log_t{"2", "3", "1"}));
}

TEST(KeyScheduler, EqualPrioritiesRunInArrivalOrder) {
  harness h;
  h.quiet = false;
  sched::key a, b, c, d;
  h.submit(c, 1, 2);
  h.submit(a, 2, 2);
  h.submit(d, 3, 0);
  h.submit(b, 4, 2);
  h.quiet = true;
  h.pass();
  EXPECT_EQ(h.log, (log_t{"1", "2", "4", "3"}));
}

TEST(KeyScheduler, APassStartsOneItemThenStopsForNewMessages) {
  harness h;
  h.quiet = false;
  sched::key a, b;
  h.submit(a, 1, 1);
  h.submit(b, 2, 0);
  h.pass();
  EXPECT_EQ(h.log, log_t{"1"});  // at least one, so arrivals cannot starve the queue
  EXPECT_TRUE(h.s.pass_pending());
  EXPECT_EQ(h.passes, 2);  // the rest asks for another pass
  h.pass();
  EXPECT_EQ(h.log, (log_t{"1", "2"}));
  EXPECT_FALSE(h.s.pass_pending());
}

TEST(KeyScheduler, AnUrgentItemLiftsItsKeyThenTheKeyDropsBack) {
  harness h;
  h.quiet = false;  // one item per pass
  sched::key a, b, c;
  h.submit(a, 1, 0);
  h.submit(a, 2, 9);
  h.submit(a, 3, 0);
  h.submit(b, 4, 5);
  EXPECT_EQ(a.inherited_priority(), 9);
  h.pass();
  EXPECT_EQ(h.log, log_t{"1"});  // a's first item, lifted by the 9 behind it, beats b's 5
  h.pass();
  EXPECT_EQ(h.log, (log_t{"1", "4"}));
  h.submit(c, 5, 5);
  h.done(a);
  h.pass();
  EXPECT_EQ(h.log, (log_t{"1", "4", "2"}));  // still lifted: 9 > c's 5
  EXPECT_EQ(a.inherited_priority(), 0);      // 2 gone: back to its own
  h.done(a);
  h.pass();
  EXPECT_EQ(h.log, (log_t{"1", "4", "2", "5"}));  // now c's 5 beats a's 0
  h.pass();
  EXPECT_EQ(h.log, (log_t{"1", "4", "2", "5", "3"}));
}

TEST(KeyScheduler, AWaitingKeyIsLiftedByALaterUrgentItem) {
  harness h;
  h.quiet = false;
  sched::key a, b;
  h.submit(a, 1, 0);
  h.submit(b, 2, 3);
  h.submit(a, 3, 7);  // a waits in the ready heap; its entry is superseded
  h.quiet = true;
  h.pass();
  EXPECT_EQ(h.log, (log_t{"1", "2"}));
  EXPECT_EQ(h.s.ready_keys(), 0u);  // the superseded entry did not count twice
  h.done(a);
  h.pass();
  EXPECT_EQ(h.log, (log_t{"1", "2", "3"}));
}

TEST(KeyScheduler, SeveralItemsAtTheTopPriorityKeepTheKeyLifted) {
  harness h;
  sched::key a;
  h.submit(a, 1);
  h.submit(a, 2, 4);
  h.submit(a, 3, 4);
  h.submit(a, 4, 1);
  h.done(a);
  h.pass();
  EXPECT_EQ(a.inherited_priority(), 4);  // one 4 left
  h.done(a);
  h.pass();
  EXPECT_EQ(a.inherited_priority(), 1);
  EXPECT_EQ(h.log, (log_t{"1", "2", "3"}));
}

TEST(KeyScheduler, AFenceOnAnIdleSchedulerRunsAtOnce) {
  harness h;
  h.fence("F");
  EXPECT_EQ(h.log, log_t{"F"});
  EXPECT_FALSE(h.s.fence_waiting());
  sched::key a;
  h.submit(a, 1);
  EXPECT_EQ(h.log, (log_t{"F", "1"}));
}

TEST(KeyScheduler, AFenceWaitsForRunningAndEarlierItemsAndHoldsLaterOnes) {
  harness h;
  sched::key a, b;
  h.submit(a, 1);
  h.submit(a, 2);  // queued behind 1
  h.fence("F");
  h.submit(b, 3);  // b is idle, yet waits for the fence
  h.fence("G");
  EXPECT_EQ(h.log, log_t{"1"});
  EXPECT_TRUE(h.s.fence_waiting());
  EXPECT_EQ(h.s.held(), 2u);
  EXPECT_EQ(h.s.live(), 2u);  // held items are not live
  h.done(a);
  h.pass();
  EXPECT_EQ(h.log, (log_t{"1", "2"}));  // the earlier queued item still runs first
  h.done(a);
  // F ran, then 3 was replayed (running at once), and G waits for it.
  EXPECT_EQ(h.log, (log_t{"1", "2", "F", "3"}));
  EXPECT_TRUE(h.s.fence_waiting());
  h.done(b);
  EXPECT_EQ(h.log, (log_t{"1", "2", "F", "3", "G"}));
  EXPECT_FALSE(h.s.fence_waiting());
  EXPECT_EQ(h.s.held(), 0u);
  EXPECT_EQ(h.s.live(), 0u);
}

TEST(KeyScheduler, FencesBackToBackRunInOrderWithNothingBetween) {
  harness h;
  sched::key a;
  h.submit(a, 1);
  h.fence("F");
  h.fence("G");
  h.submit(a, 2);
  h.done(a);
  EXPECT_EQ(h.log, (log_t{"1", "F", "G", "2"}));
}

TEST(KeyScheduler, ItemsFinishedInsideRunLetReplayedItemsAndFencesFollowInOrder) {
  harness h;
  h.finish_inline = {2, 3, 4};
  sched::key a, b;
  h.submit(a, 1);
  h.fence("F");
  h.submit(a, 2);
  h.submit(b, 3);
  h.fence("G");
  h.submit(b, 4);
  h.done(a);
  // 2 and 3 finish inside their runs, so G runs during the replay, before 4.
  EXPECT_EQ(h.log, (log_t{"1", "F", "2", "3", "G", "4"}));
  EXPECT_EQ(h.s.live(), 0u);
  EXPECT_FALSE(a.busy());
  EXPECT_FALSE(b.busy());
}

}  // namespace
}  // namespace kvactor::detail
