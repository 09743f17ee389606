// dist_node scenarios on failures and limits: nodes that fail or leave, a steady job for the
// hostile tests, and messages over the transport's caps.
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "dist_node.hpp"
#include "kvactor/kvstore.hpp"

namespace kvactor::testing::dist_node {

using node::check;
using node::fail;

// Fault scenarios: announce readiness, then keep the cluster busy until an error arrives.
void until_failure(kvactor::kvstore& kv) {
  kv.init(1, tensor::full({16}, 0)).get();
  std::printf("READY worker %d pid %d\n", node::rank, static_cast<int>(getpid()));
  std::fflush(stdout);
  tensor out = tensor::zeros({16});
  for (;;) {
    auto st = kv.pushpull(1, tensor::full({16}, 1), out).get_status();
    if (!st.is_ok()) {
      std::printf("ERROR %s at %lld: %s\n", kvactor::to_string(st.code()), monotonic_ns(),
                  st.message().c_str());
      std::fflush(stdout);
      // Later calls fail at once too.
      auto again = kv.pull(1, out).get_status();
      check(!again.is_ok(), "a call after the failure succeeded");
      return;
    }
  }
}

namespace {

// A call's status within 10 s (a hang fails the scenario rather than the test's timeout).
kvactor::status status_of(kvactor::future<void> f, const std::string& what) {
  check(f.wait_for(std::chrono::seconds(10)), what + ": no answer within 10 s");
  return f.get_status();
}

void expect_refused(kvactor::future<void> f, kvactor::errc code, const std::string& words,
                    const std::string& what) {
  const auto st = status_of(std::move(f), what);
  check(st.code() == code && st.message().find(words) != std::string::npos,
        what + ": expected " + kvactor::to_string(code) + " naming \"" + words + "\", got " +
            st.to_string());
}

}  // namespace

// Keeps pushing and checking until a line arrives on stdin, so the test can do things to
// the cluster meanwhile (hostile connections) and then see that this worker carried on.
void steady(kvactor::kvstore& kv) {
  kv.init(1, tensor::full({256}, 0)).get();
  kv.set_optimizer(kvactor::sgd_config(1.0)).get();
  std::printf("READY worker %d\n", node::rank);
  std::fflush(stdout);
  const int W = kv.num_workers();
  tensor out = tensor::zeros({256});
  for (long round = 1;; ++round) {
    kv.pushpull(1, tensor::full({256}, 1), out).get();
    expect_all(out, -static_cast<double>(W) * round, "steady round " + std::to_string(round));
    pollfd pfd{0, POLLIN, 0};
    if (::poll(&pfd, 1, 0) > 0) {
      std::printf("ROUNDS %ld\n", round);
      return;
    }
  }
}

// Messages over the transport's caps (run with KVACTOR_MAX_MESSAGE_BYTES=65536): refused up
// front with the limit named, or sliced into parts that fit; the store works on after.
void limits(kvactor::kvstore& kv) {
  expect_refused(kv.init(std::string(70000, 'k'), tensor::ones({4})),
                 kvactor::errc::invalid_argument, "at most 4096 bytes", "a 70000-byte key");
  expect_refused(kv.init(std::string(4097, 'k'), tensor::ones({4})),
                 kvactor::errc::invalid_argument, "at most 4096 bytes", "a 4097-byte key");
  kvactor::optimizer_config many{"sgd", {{"learning_rate", 0.1}}};
  for (int i = 0; i < 3505; ++i)
    many.params["lr_mult.some_layer_weight_" + std::to_string(i)] = 1.0;
  expect_refused(kv.set_optimizer(many), kvactor::errc::invalid_argument, "limit of 65536 bytes",
                 "set_optimizer with 3505 lr_mult parameters");
  expect_refused(kv.send_command_to_servers(5, std::string(70000, 'x')),
                 kvactor::errc::invalid_argument, "limit of 65536 bytes", "a 70 kB command");
  // One row of 20000 float32 (80000 bytes) cannot travel in a 65536-byte message.
  expect_refused(kv.init(7, tensor::ones({2, 20000})), kvactor::errc::invalid_argument,
                 "KVACTOR_MAX_MESSAGE_BYTES", "a key whose row is over the message cap");
  // 40000 float32 are 160000 bytes: the key travels in parts, with exact results.
  const int W = kv.num_workers();
  const kvactor::shape big{40000};
  kv.init(8, tensor::full(big, 1)).get();
  tensor out = tensor::zeros(big);
  kv.pull(8, out).get();
  expect_all(out, 1, "sliced key after init");
  kv.push(8, tensor::full(big, node::rank + 1));
  kv.pull(8, out).get();
  expect_all(out, W * (W + 1) / 2.0, "sliced key after a push round");
  kv.pushpull(8, tensor::full(big, 2), out).get();
  expect_all(out, 2.0 * W, "sliced key after pushpull");
  // Row-sparse on a 2-D key of 20000 x 4 float32 (320000 bytes) in parts.
  const kvactor::shape table{20000, 4};
  kv.init(9, tensor::zeros(table)).get();
  std::vector<float> vals(8, static_cast<float>(node::rank + 1));
  kv.push(9, kvactor::row_sparse_tensor::from_rows({3, 19999}, tensor::from(vals, {2, 4}), table))
      .get();
  tensor rows = tensor::full(table, -1);
  kv.row_sparse_pull(9, rows, tensor::from<std::int64_t>({19999, 3, 10000}, {3})).get();
  check(rows.at(3 * 4) == W * (W + 1) / 2.0 && rows.at(19999 * 4 + 3) == W * (W + 1) / 2.0,
        "row-sparse rows of a sliced key");
  check(rows.at(10000 * 4) == 0 && rows.at(0) == 0, "rows not pushed are zero");
}

// dist_sync round that worker 1 can never join as it should: its registry has key 1 with
// another shape than the one rank 0 stored, so the server refuses its pushes. Each round
// then fails for every worker in it (aborted, naming worker 1), the value stays, and the
// stores shut down promptly.
void refused_round(kvactor::kvstore& kv) {
  kv.init(1, node::rank == 0 ? tensor::full({4}, 3) : tensor::full({5}, 3)).get();
  for (int round = 0; round < 2; ++round) {
    const std::string what = "round " + std::to_string(round);
    if (node::rank == 0) {
      expect_refused(kv.push(1, tensor::ones({4})), kvactor::errc::aborted,
                     "worker 1's push was refused (shape_mismatch", what);
      tensor out = tensor::zeros({4});
      kv.pull(1, out).get();
      expect_all(out, 3, what + ": the stored value is unchanged");
    } else {
      expect_refused(kv.push(1, tensor::ones({5})), kvactor::errc::shape_mismatch, "", what);
    }
  }
  std::printf("LEAVING worker %d at %lld\n", node::rank, monotonic_ns());
}

// Worker 1 leaves without pushing: worker 0's round fails (aborted, naming worker 1) instead
// of waiting forever, and both stores shut down.
void departed(kvactor::kvstore& kv) {
  kv.init(1, tensor::full({4}, 3)).get();
  if (node::rank != 0) return;
  expect_refused(kv.push(1, tensor::ones({4})), kvactor::errc::aborted,
                 "worker 1 left (its store shut down) without pushing", "push after worker 1 left");
  tensor out = tensor::zeros({4});
  kv.pull(1, out).get();
  expect_all(out, 3, "the stored value is unchanged");
}

}  // namespace kvactor::testing::dist_node
