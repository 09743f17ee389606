// wait_all() throws the first error since the previous wait_all() that nobody observed
// through its future (as MXNet's WaitAll rethrows), once; an error handled through get(),
// get_status(), then() or when_all() is not thrown again. Local stores and, through the same
// facade, a worker of an in-process cluster.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "in_process_cluster.hpp"
#include "kvactor/kvstore.hpp"

namespace kvactor::testing {
namespace {

using namespace std::chrono_literals;

// The error wait_all() throws, or ok when it returns normally.
status wait_all_status(kvstore& kv) {
  try {
    kv.wait_all();
  } catch (const error& e) {
    return e.to_status();
  }
  return {};
}

void expect_reported(kvstore& kv, errc code, const std::string& mention) {
  const status s = wait_all_status(kv);
  EXPECT_EQ(s.code(), code) << s.to_string();
  EXPECT_NE(s.message().find(mention), std::string::npos) << s.to_string();
}

TEST(WaitAll, ThrowsADroppedErrorOnce) {
  auto kv = create("local");
  kv.init(1, tensor::ones({4})).get();
  tensor out = tensor::zeros({4});
  kv.pull(42, out);  // not initialised; the future is dropped
  kv.push(1, tensor::ones({4}));
  expect_reported(kv, errc::not_initialized, "key 42");
  // Reported once: the next wait_all() starts a new period.
  EXPECT_TRUE(wait_all_status(kv).is_ok());
  kv.pull(1, out).get();
  EXPECT_EQ(out.to_vector(), (std::vector<double>(4, 1.0)));
}

TEST(WaitAll, AnErrorHandledThroughItsFutureIsNotThrownAgain) {
  auto kv = create("local");
  tensor out = tensor::zeros({4});
  EXPECT_THROW(kv.pull(42, out).get(), error);
  EXPECT_EQ(kv.pull(43, out).get_status().code(), errc::not_initialized);
  auto handled = kv.pull(44, out).then([](const future<void>& f) { return f.get_status().code(); });
  EXPECT_EQ(handled.get(), errc::not_initialized);
  EXPECT_EQ(when_all({kv.pull(45, out), kv.pull(46, out)}).get_status().code(),
            errc::not_initialized);
  EXPECT_TRUE(wait_all_status(kv).is_ok());
}

TEST(WaitAll, WaitingIsNotObserving) {
  auto kv = create("local");
  tensor out = tensor::zeros({4});
  auto f = kv.pull(42, out);
  f.wait();
  EXPECT_TRUE(f.ready());
  expect_reported(kv, errc::not_initialized, "key 42");
  // The future still has its error for whoever asks it later.
  EXPECT_EQ(f.get_status().code(), errc::not_initialized);
}

TEST(WaitAll, FirstUnobservedErrorInCompletionOrder) {
  auto kv = create("local");
  tensor out = tensor::zeros({4});
  auto first = kv.pull(41, out);  // observed below, so not the one reported
  kv.pull(42, out);
  kv.pull(43, out);
  EXPECT_EQ(first.get_status().code(), errc::not_initialized);
  expect_reported(kv, errc::not_initialized, "key 42");
}

// An error that arrives from a shard thread after the call returned: a throwing updater.
TEST(WaitAll, AsynchronousErrorsToo) {
  auto kv = create("local");
  kv.init(7, tensor::zeros({8})).get();
  kv.set_updater(
      [](const key&, const tensor&, tensor&) { throw std::runtime_error("the updater refuses"); });
  kv.push(7, tensor::ones({8}));
  expect_reported(kv, errc::updater_failed, "the updater refuses");
  EXPECT_TRUE(wait_all_status(kv).is_ok());
}

// Many failures in a row (the store keeps only what can still be the answer): handled ones
// are forgotten, and of the dropped ones the first is reported.
TEST(WaitAll, ManyErrorsKeepTheFirstUnobserved) {
  auto kv = create("local");
  tensor out = tensor::zeros({4});
  for (int k = 100; k < 1100; ++k)
    EXPECT_FALSE(kv.pull(k, out).get_status().is_ok());
  for (int k = 2000; k < 3000; ++k)
    kv.pull(k, out);
  expect_reported(kv, errc::not_initialized, "key 2000 ");
}

// The dist worker's calls go through the same facade: an error found before anything is sent
// (an uninitialised key) and one a server sends back (a bad profiler command).
TEST(WaitAll, DistWorkerReportsDroppedErrors) {
  const int port = unused_port();
  ASSERT_GT(port, 0);
  const auto cfg = cluster_config_for(port, 1, 1, 20000ms);
  node_threads nodes(cfg);
  {
    auto kv = join_as_worker(cfg, "dist_sync");
    kv.init(1, tensor::ones({4})).get();
    tensor out = tensor::zeros({4});
    kv.pull(42, out);
    kv.push(1, tensor::ones({4}));
    expect_reported(kv, errc::not_initialized, "key 42");
    EXPECT_TRUE(wait_all_status(kv).is_ok());

    kv.send_command_to_servers(5, "state=bogus");
    expect_reported(kv, errc::invalid_argument, "profiler");

    EXPECT_FALSE(kv.send_command_to_servers(5, "state=bogus").get_status().is_ok());
    EXPECT_TRUE(wait_all_status(kv).is_ok());
    kv.pull(1, out).get();
    EXPECT_EQ(out.to_vector(), (std::vector<double>(4, 1.0)));
  }
  EXPECT_EQ(nodes.join(), (std::vector<int>{0, 0}));  // an orderly end, errors or not
}

}  // namespace
}  // namespace kvactor::testing
