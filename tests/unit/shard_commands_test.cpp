// Every command a server shard receives (dist/shard_commands.hpp), applied to a server_core
// without actors: settings, the profiler, optimizer states (snapshot, check, restore) and a
// worker's departure; the collectors sum what several shards report.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "../support/server_requests.hpp"
#include "dist/shard_commands.hpp"
#include "optimizers.hpp"

namespace kvactor::detail {
namespace {

using testing::fill4;
using testing::reply_log;
using testing::request;

std::shared_ptr<const updater> sgd(double lr, double momentum = 0.0) {
  auto u = make_optimizer(sgd_config(lr, momentum));
  EXPECT_TRUE(u.has_value());
  return *u;
}

// The state record of key k in recs (its first slot as floats), or none.
const wire::key_state_record* record_of(const std::vector<wire::key_state_record>& recs, key k) {
  for (const auto& r : recs)
    if (r.key.to_key() == k) return &r;
  return nullptr;
}

std::vector<float> floats(const wire::slot_record& s) {
  std::vector<float> out(s.bytes.size() / sizeof(float));
  std::memcpy(out.data(), s.bytes.data(), out.size() * sizeof(float));
  return out;
}

TEST(ShardCommands, SettingsReachTheCore) {
  server_core core(1);
  apply_command(core, cmd::set_sync{false});
  EXPECT_FALSE(core.sync());
  apply_command(core, cmd::set_compression{compression_config{"2bit", 0.25}});
  EXPECT_EQ(core.compression().type, "2bit");
  EXPECT_EQ(core.compression().threshold, 0.25);
  const auto u = sgd(0.1);
  apply_command(core, cmd::set_updater{u});
  EXPECT_EQ(core.effective_updater(), u);
  apply_command(core, cmd::set_multi_precision{true});
  ASSERT_TRUE(core.effective_updater());
  EXPECT_NE(core.effective_updater(), u);  // the wrapper around u
  apply_command(core, cmd::noop{});        // changes nothing
  EXPECT_FALSE(core.sync());
  EXPECT_EQ(core.compression().type, "2bit");
  EXPECT_NE(core.effective_updater(), u);
  apply_command(core, cmd::set_multi_precision{false});
  EXPECT_EQ(core.effective_updater(), u);
  apply_command(core, cmd::set_sync{true});
  EXPECT_TRUE(core.sync());
}

TEST(ShardCommands, ProfilerStartsFreshStopsAndSumsTheShards) {
  reply_log log;
  server_core a(1), b(1);
  a.handle(request(log, wire::msg::init, 0, 1, fill4(0)));  // not profiled
  const auto run = cmd::profiler::change::run;
  auto first = std::make_shared<profile_total>();
  apply_command(a, cmd::profiler{run, first});
  a.handle(request(log, wire::msg::push, 0, 1, fill4(1)));
  auto fresh = std::make_shared<profile_total>();
  for (auto* core : {&a, &b})
    apply_command(*core, cmd::profiler{run, fresh});  // a run starts from zero
  EXPECT_EQ(fresh->sum().count[1], 0u);

  a.handle(request(log, wire::msg::push, 0, 1, fill4(1)));
  b.handle(request(log, wire::msg::init, 0, 2, fill4(0)));
  b.handle(request(log, wire::msg::push, 0, 2, fill4(1)));
  auto stopped = std::make_shared<profile_total>();
  for (auto* core : {&a, &b})
    apply_command(*core, cmd::profiler{cmd::profiler::change::stop, stopped});
  const server_profile sum = stopped->sum();
  EXPECT_EQ(sum.count[0], 1u);  // b's init
  EXPECT_EQ(sum.count[1], 2u);  // a push on each
  EXPECT_EQ(sum.bytes_in[1], 32u);
  EXPECT_EQ(sum.count[2], 0u);

  a.handle(request(log, wire::msg::pull, 0, 1, {}));  // stopped: not counted
  auto later = std::make_shared<profile_total>();
  for (auto* core : {&a, &b})
    apply_command(*core, cmd::profiler{cmd::profiler::change::none, later});
  EXPECT_EQ(later->sum().count[1], 2u);
  EXPECT_EQ(later->sum().count[2], 0u);
  EXPECT_EQ(log.events.size(), 6u);  // every request was answered
}

TEST(ShardCommands, StatesSnapshotCheckAndRestore) {
  reply_log log;
  const auto u = sgd(0.1, 0.9);
  server_core first(1), other(1);  // two shards of one server
  for (auto* core : {&first, &other})
    apply_command(*core, cmd::set_updater{u});
  first.handle(request(log, wire::msg::init, 0, 1, fill4(0)));
  first.handle(request(log, wire::msg::push, 0, 1, fill4(1)));
  other.handle(request(log, wire::msg::init, 0, 2, fill4(0)));
  other.handle(request(log, wire::msg::push, 0, 2, fill4(2)));
  auto saved = std::make_shared<states_total>();
  for (auto* core : {&first, &other})
    apply_command(*core, cmd::snapshot_states{saved});
  const auto recs = std::make_shared<const std::vector<wire::key_state_record>>(saved->take());
  ASSERT_EQ(recs->size(), 2u);
  ASSERT_TRUE(record_of(*recs, 1));
  EXPECT_EQ(record_of(*recs, 1)->count, 1u);
  EXPECT_TRUE(saved->take().empty());

  // A server holding key 1 only, without an optimizer.
  server_core second(1);
  second.handle(request(log, wire::msg::init, 0, 1, fill4(0)));
  auto no_optimizer = std::make_shared<states_check>();
  apply_command(second, cmd::check_states{recs, nullptr, false, no_optimizer});
  EXPECT_EQ(no_optimizer->error().code(), errc::invalid_argument);
  auto misfit = std::make_shared<states_check>();  // plain SGD keeps no momentum
  apply_command(second, cmd::check_states{recs, sgd(0.1), false, misfit});
  EXPECT_FALSE(misfit->error().is_ok());
  auto fits = std::make_shared<states_check>();
  apply_command(second, cmd::check_states{recs, u, false, fits});
  EXPECT_TRUE(fits->error().is_ok()) << fits->error().to_string();
  EXPECT_EQ(fits->matched(), 1u);                  // key 2 is not this shard's
  EXPECT_EQ(second.effective_updater(), nullptr);  // a check installs nothing

  apply_command(second, cmd::restore_states{recs, u, false});
  EXPECT_EQ(second.effective_updater(), u);
  // The restored momentum carries on as the first server's: one more push each, and both
  // hold the same state (a fresh one would have count 1 and momentum -0.1).
  first.handle(request(log, wire::msg::push, 0, 1, fill4(1)));
  second.handle(request(log, wire::msg::push, 0, 1, fill4(1)));
  const auto a = first.snapshot_states();
  const auto b = second.snapshot_states();
  ASSERT_TRUE(record_of(a, 1) && record_of(b, 1));
  EXPECT_EQ(record_of(b, 1)->count, 2u);
  ASSERT_EQ(record_of(b, 1)->slots.size(), 1u);
  EXPECT_EQ(floats(record_of(b, 1)->slots[0]), floats(record_of(a, 1)->slots[0]));
}

TEST(ShardCommands, WorkerLeftFailsARoundWithoutItsPush) {
  reply_log log;
  server_core core(2);
  core.handle(request(log, wire::msg::init, 0, 1, fill4(0)));
  core.handle(request(log, wire::msg::push, 0, 1, fill4(1)));  // waits for worker 1
  EXPECT_EQ(log.events.back(), "w0:init:ok");
  apply_command(core, cmd::worker_left{1});
  EXPECT_EQ(log.events.back(), "w0:push:aborted");
}

}  // namespace
}  // namespace kvactor::detail
