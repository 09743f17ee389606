// The worker program of the multi-process tests: each scenario checks exact results inside a
// real cluster and exits 0 when they hold (or prints "FAIL: ..." and exits 1).
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "kvactor/cuda.hpp"
#include "kvactor/kvstore.hpp"
#include "kvactor/serialization/optimizer_config.hpp"
#include "node_util.hpp"

using kvactor::tensor;

namespace {

namespace node = kvactor::testing::node;
using node::check;
using node::fail;

void expect_all(const tensor& t, double v, const std::string& what) {
  auto xs = t.to_vector();
  for (std::size_t i = 0; i < xs.size(); ++i)
    if (xs[i] != v)
      fail(what + ": element " + std::to_string(i) + " is " + std::to_string(xs[i]) +
           ", expected " + std::to_string(v));
}

long long monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

// MXNet's nightly dist_sync test, in kvactor: every worker pushes a rank-dependent value each
// round; pulls see the closed-form result. Small, big (split across servers) and string keys.
void sync_rounds(kvactor::kvstore& kv) {
  const int W = kv.num_workers();
  const double sum_ranks = W * (W + 1) / 2.0;      // sum of (rank + 1)
  const kvactor::shape small{2, 3}, big{1200, 3};  // big: above KVACTOR_BIGARRAY_BOUND=1000
  kv.init({3, 99}, {tensor::full(small, 1), tensor::full(big, 1)}).get();
  // Phase 1, no optimizer: a round's pushes replace the value with their sum.
  for (int round = 1; round <= 3; ++round) {
    kv.push({3, 99}, {tensor::full(small, (node::rank + 1) * round),
                      tensor::full(big, (node::rank + 1) * round)});
    tensor a = tensor::zeros(small), b = tensor::zeros(big);
    kv.pull({3, 99}, {a, b}).get();
    expect_all(a, sum_ranks * round, "replace round " + std::to_string(round) + " key 3");
    expect_all(b, sum_ranks * round, "replace round " + std::to_string(round) + " key 99");
  }
  kv.barrier().get();
  // Phase 2: SGD w -= lr * g, once per round with the round's merged gradient.
  kv.set_optimizer(kvactor::sgd_config(0.125)).get();
  kv.barrier().get();
  double w3 = sum_ranks * 3, w99 = sum_ranks * 3;
  for (int round = 1; round <= 5; ++round) {
    kv.push(3, tensor::full(small, node::rank + 1));
    tensor b = tensor::zeros(big);
    kv.pushpull(99, tensor::full(big, 2.0 * (node::rank + 1)), b).get();
    w99 -= 0.125 * 2 * sum_ranks;
    expect_all(b, w99, "sgd round " + std::to_string(round) + " key 99 (pushpull)");
    tensor a = tensor::zeros(small);
    kv.pull(3, a).get();
    w3 -= 0.125 * sum_ranks;
    expect_all(a, w3, "sgd round " + std::to_string(round) + " key 3");
  }
  // Several devices on a worker are summed there before the one push per worker.
  kv.init(7, tensor::full(small, 0)).get();
  kv.push(7, {tensor::full(small, 1), tensor::full(small, 2)});
  tensor c = tensor::zeros(small);
  kv.pull(7, c).get();
  expect_all(c, -0.125 * 3 * W, "two devices per worker");
}

void string_keys(kvactor::kvstore& kv) {
  const kvactor::shape s{4};
  kv.init({"weight", "bias"}, {tensor::full(s, 0), tensor::full(s, 0)}).get();
  kv.push({"weight", "bias"}, {tensor::full(s, node::rank + 1), tensor::full(s, 1)});
  tensor w = tensor::zeros(s), b = tensor::zeros(s);
  kv.pull({"weight", "bias"}, {w, b}).get();
  const int W = kv.num_workers();
  expect_all(w, W * (W + 1) / 2.0, "string key weight");
  expect_all(b, W, "string key bias");
  tensor bc = tensor::zeros(s);
  kv.broadcast("bcast", tensor::full(s, 10 + node::rank), bc).get();
  expect_all(bc, 10, "broadcast takes rank 0's value");
}

void async_updates(kvactor::kvstore& kv) {
  const kvactor::shape s{5};
  kv.init(1, tensor::full(s, 0)).get();
  // Without an optimizer a dist_async push cannot apply: a clear error, nothing changes.
  auto st = kv.push(1, tensor::full(s, 1)).get_status();
  check(st.code() == kvactor::errc::invalid_argument,
        "async push without optimizer: " + st.to_string());
  kv.barrier().get();
  kv.set_optimizer(kvactor::sgd_config(0.5)).get();
  kv.barrier().get();
  for (int i = 0; i < 20; ++i)
    kv.push(1, tensor::full(s, node::rank + 1));
  kv.wait_all();
  kv.barrier().get();
  tensor out = tensor::zeros(s);
  kv.pull(1, out).get();
  const int W = kv.num_workers();
  expect_all(out, -0.5 * 20 * W * (W + 1) / 2.0, "async sum of every push");
}

void commands(kvactor::kvstore& kv) {
  kv.init(1, tensor::full({3}, 1)).get();
  auto cfg = kvactor::encode(kvactor::sgd_config(1.0));
  kv.send_command_to_servers(0, std::string(cfg.begin(), cfg.end())).get();  // controller
  kv.barrier().get();
  kv.push(1, tensor::full({3}, 1));
  tensor out = tensor::zeros({3});
  kv.pull(1, out).get();
  expect_all(out, 1 - kv.num_workers(), "controller command installs the optimizer");
  auto bad = kv.send_command_to_servers(9, "").get_status();
  check(bad.code() == kvactor::errc::invalid_argument, "unknown command: " + bad.to_string());
  auto mode = kv.send_command_to_servers(3, "maybe").get_status();
  check(mode.code() == kvactor::errc::invalid_argument, "bad sync mode: " + mode.to_string());
  // Multi-precision: float16 weights updated through a float32 master copy. An update of
  // at most 0.00015 per step is below half a float16 step at 1.0, so without the master copy the
  // weight never moves.
  const int W = kv.num_workers();
  kv.init({50, 51}, {tensor::full({8}, 1, kvactor::dtype::float16),
                     tensor::full({8}, 1, kvactor::dtype::float16)})
      .get();
  kv.set_optimizer(kvactor::sgd_config(0.00005)).get();
  kv.barrier().get();
  for (int i = 0; i < 10; ++i)
    kv.push(50, tensor::full({8}, 1, kvactor::dtype::float16));
  tensor h = tensor::zeros({8}, kvactor::dtype::float16);
  kv.pull(50, h).get();
  expect_all(h, 1.0, "float16 without multi-precision stays at 1");
  kv.send_command_to_servers(1, "").get();  // set_multi_precision
  kv.barrier().get();
  float w = 1.0f;
  for (int i = 0; i < 10; ++i) {
    kv.push(51, tensor::full({8}, 1, kvactor::dtype::float16));
    w = 1.0f * w - 0.00005f * static_cast<float>(W);  // the SGD kernel's float arithmetic
  }
  kv.pull(51, h).get();
  expect_all(h, kvactor::to_float(kvactor::to_float16(w)), "float16 through a float32 master");
  // Gradient compression parameters are checked and recorded on every server.
  kv.send_command_to_servers(4, "type=2bit,threshold=0.5").get();
  auto gc = kv.send_command_to_servers(4, "type=3bit").get_status();
  check(gc.code() == kvactor::errc::invalid_argument, "bad compression type: " + gc.to_string());
  // The profiler counts what the servers handle and writes it out on stop.
  const std::string prof = "/tmp/kvactor-profile-" + std::to_string(getpid()) + ".json";
  kv.send_command_to_servers(5, "state=run").get();
  for (int i = 0; i < 3; ++i)
    kv.push(1, tensor::full({3}, 1));
  kv.barrier().get();
  kv.send_command_to_servers(5, "state=stop,filename=" + prof).get();
  for (int server = 0; server < 2; ++server) {
    const std::string file = prof + ".server" + std::to_string(server);
    std::FILE* f = std::fopen(file.c_str(), "r");
    check(f != nullptr, "profile file written: " + file);
    char buf[512] = {0};
    std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    std::remove(file.c_str());
    check(n > 0 && std::string(buf).find("\"push\":{\"count\":") != std::string::npos,
          std::string{"profile content: "} + buf);
  }
  auto bad_prof = kv.send_command_to_servers(5, "colour=blue").get_status();
  check(bad_prof.code() == kvactor::errc::invalid_argument, "bad profiler params");
  // int64 keys keep all their bits end to end.
  const std::int64_t big_key = (std::int64_t{1} << 40) + 3, neg_key = -(std::int64_t{1} << 33);
  kv.init({big_key, neg_key}, {tensor::full({2}, 5), tensor::full({2}, 7)}).get();
  tensor bk = tensor::zeros({2}), nk = tensor::zeros({2});
  kv.pull({big_key, neg_key}, {bk, nk}).get();
  expect_all(bk, 5, "key 2^40+3");
  expect_all(nk, 7, "key -2^33");
  auto e = kv.push(42, tensor::full({3}, 1)).get_status();
  check(e.code() == kvactor::errc::not_initialized, "push of unknown key: " + e.to_string());
  auto sm = kv.push(1, tensor::full({4}, 1)).get_status();
  check(sm.code() == kvactor::errc::shape_mismatch, "shape mismatch: " + sm.to_string());
  check(kv.type() == "dist_sync", "type");
  check(kv.is_capable("optimizer"), "optimizer capability");
  try {
    kv.set_updater([](const kvactor::key&, const tensor&, tensor&) {});
    fail("set_updater accepted on a dist store");
  } catch (const kvactor::error& ex) {
    check(ex.code() == kvactor::errc::unsupported, "set_updater error code");
  }
}

// A small high-priority push overtakes a queued big low-priority one on the wire.
void priority(kvactor::kvstore& kv) {
  const kvactor::shape big{16 << 20}, small{4};  // 64 MiB of float32
  kv.init({1, 2}, {tensor::zeros(big), tensor::zeros(small)}).get();
  tensor g = tensor::full(big, 1);
  std::vector<int> order;
  std::mutex mu;
  for (int round = 0; round < 3; ++round) {
    order.clear();
    auto fb = kv.push(1, g, 0).then([&](const kvactor::future<void>& f) {
      f.get();
      std::lock_guard<std::mutex> l(mu);
      order.push_back(1);
    });
    auto fs = kv.push(2, tensor::full(small, 1), 10).then([&](const kvactor::future<void>& f) {
      f.get();
      std::lock_guard<std::mutex> l(mu);
      order.push_back(2);
    });
    fb.get();
    fs.get();
    check(order == std::vector<int>({2, 1}), "the small high-priority push finished first");
  }
}

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

// Checkpoints on dist stores: every server saves its part of the optimizer state and loads
// it back; a zero gradient then moves each weight by momentum * the restored momentum.
void checkpoint(kvactor::kvstore& kv) {
  const std::string prefix = std::string{"/tmp/kvactor-ckpt-"} + std::getenv("KVACTOR_CLUSTER_ID");
  const kvactor::shape big{1200}, small{4};  // 1200 > KVACTOR_BIGARRAY_BOUND=1000: split
  kv.init({1, 2}, {tensor::full(small, 0), tensor::full(big, 0)}).get();
  kv.set_optimizer(kvactor::sgd_config(0.5, 0.9)).get();
  kv.barrier().get();
  for (int i = 1; i <= 3; ++i)
    kv.push({1, 2}, {tensor::full(small, i), tensor::full(big, -i)});
  kv.wait_all();
  if (node::rank == 0) kv.save_optimizer_states(prefix, true).get();
  kv.barrier().get();
  auto delta = [&](int key, const kvactor::shape& s) {
    tensor a = tensor::zeros(s), b = tensor::zeros(s);
    kv.pull(key, a).get();
    kv.push(key, tensor::full(s, 0));
    kv.pull(key, b).get();
    return std::make_pair(b.at(0) - a.at(0), b.at(s[0] - 1) - a.at(s[0] - 1));
  };
  const auto d1 = delta(1, small), d2 = delta(2, big);
  check(d1.first != 0 && d2.second != 0, "momentum moves the weights");
  for (int i = 0; i < 4; ++i)
    kv.push({1, 2}, {tensor::full(small, 0), tensor::full(big, 0)});
  kv.wait_all();
  kv.barrier().get();
  if (node::rank == 0) {
    kv.load_optimizer_states(prefix).get();
    auto missing = kv.load_optimizer_states(prefix + ".missing").get_status();
    check(missing.code() == kvactor::errc::invalid_argument,
          "missing checkpoint: " + missing.to_string());
  }
  kv.barrier().get();
  // The weights moved on meanwhile, so w + m rounds a little differently: compare closely.
  const auto r1 = delta(1, small), r2 = delta(2, big);
  auto close = [](double a, double b) { return std::abs(a - b) <= 1e-5 * std::abs(b); };
  check(close(r1.first, d1.first) && close(r1.second, d1.second) && close(r2.first, d2.first) &&
            close(r2.second, d2.second),
        "restored momentum: " + std::to_string(r1.first) + " vs " + std::to_string(d1.first) +
            ", " + std::to_string(r2.second) + " vs " + std::to_string(d2.second));
  kv.barrier().get();
  if (node::rank == 0)
    for (int s = 0; s < 8; ++s)
      std::remove((prefix + ".server" + std::to_string(s)).c_str());
}

// Row-sparse values on dist stores: rows merge across workers, pulls get exactly the rows
// asked for, and only those rows cross the wire (the servers' profiler counts the bytes).
void sparse(kvactor::kvstore& kv) {
  const kvactor::shape table{2000, 4};  // 8000 > KVACTOR_BIGARRAY_BOUND=1000: split by rows
  const int W = kv.num_workers();
  kv.init("emb", kvactor::row_sparse_tensor::zeros(table)).get();
  auto rows = [&](std::vector<std::int64_t> ids, float v) {
    std::vector<float> vals(ids.size() * 4, v);
    return kvactor::row_sparse_tensor::from_rows(
        ids, tensor::from(vals, {static_cast<std::int64_t>(ids.size()), 4}), table);
  };
  const std::string prof =
      "/tmp/kvactor-sparse-" + std::string{std::getenv("KVACTOR_CLUSTER_ID")} + ".json";
  if (node::rank == 0) kv.send_command_to_servers(5, "state=run").get();
  kv.barrier().get();
  // Worker r pushes rows 5 (shared by all) and 1500 + r, with value r + 1.
  kv.push("emb", rows({5, 1500 + node::rank}, static_cast<float>(node::rank + 1))).get();
  tensor out = tensor::full(table, -1);
  kv.row_sparse_pull("emb", out, tensor::from<std::int64_t>({1500, 5, 7, 1501}, {4})).get();
  const double sum = W * (W + 1) / 2.0;
  check(out.at(5 * 4) == sum, "row 5 sums every worker");
  check(out.at(1500 * 4) == 1, "row 1500 from worker 0");
  check(out.at(1501 * 4) == (W > 1 ? 2 : 0), "row 1501 from worker 1");
  check(out.at(7 * 4) == 0 && out.at(0) == 0 && out.at(1999 * 4) == 0, "other rows are zero");
  kv.barrier().get();
  if (node::rank == 0) {
    kv.send_command_to_servers(5, "state=stop,filename=" + prof).get();
    for (int server = 0; server < 2; ++server) {
      const std::string file = prof + ".server" + std::to_string(server);
      std::FILE* f = std::fopen(file.c_str(), "r");
      check(f != nullptr, "profile written: " + file);
      char buf[512] = {0};
      check(std::fread(buf, 1, sizeof buf - 1, f) > 0, "profile read");
      std::fclose(f);
      std::remove(file.c_str());
      // Each worker pushed one row (16 bytes + an 8-byte id) to each server, not a part of
      // 1000 rows (16000 bytes).
      const std::string p{buf};
      const auto at = p.find("\"push\":{\"count\":");
      check(at != std::string::npos, "profile has pushes: " + p);
      const auto bytes = std::stoull(p.substr(p.find("\"bytes_in\":", at) + 11));
      check(bytes == static_cast<unsigned long long>(24 * W),
            "only pushed rows crossed the wire: " + p);
    }
  }
  kv.barrier().get();
  // Lazy SGD: only pushed rows change; weight decay leaves the others alone.
  kv.set_optimizer(kvactor::optimizer_config{"sgd", {{"learning_rate", 0.5}, {"wd", 0.1}}}).get();
  kv.barrier().get();
  kv.push("emb", rows({3}, 1.0f)).get();
  tensor after = tensor::zeros(table);
  kv.pull("emb", after).get();
  check(after.at(3 * 4) == -0.5 * W, "row 3 updated: " + std::to_string(after.at(12)));
  check(after.at(5 * 4) == sum,
        "row 5 untouched by the lazy update: " + std::to_string(after.at(20)));
}

// dist_sync_device (run on two emulated devices, or real ones): each worker's device values are
// summed on a device, then pushed once; device outputs are filled from the servers' value.
void device_values(kvactor::kvstore& kv) {
  const int W = kv.num_workers();
  const std::int64_t n = 1001;
  const kvactor::device d0 = kvactor::device::cuda(0),
                        d1 = kvactor::device::cuda(1 % kvactor::cuda_device_count());
  kv.init(5, tensor::zeros({n})).get();
  const double ranks = W * (W + 1) / 2.0;  // sum of (rank + 1)
  for (int round = 1; round <= 3; ++round) {
    const std::string what = "round " + std::to_string(round);
    // Not waited for: the pull after it must still see it.
    kv.push(5, {tensor::full({n}, node::rank + 1, kvactor::dtype::float32, d0),
                tensor::full({n}, round, kvactor::dtype::float32, d1)});
    std::vector<tensor> outs = {tensor::full({n}, -1, kvactor::dtype::float32, d0),
                                tensor::full({n}, -1, kvactor::dtype::float32, d1)};
    kv.pull(5, outs).get();
    for (const auto& o : outs) {
      check(o.device() != kvactor::device::cpu(), what + ": output stays on its device");
      expect_all(o, ranks + W * round, what);
    }
    kv.barrier().get();
  }
  // pushpull in place on device values; a host output alongside.
  std::vector<tensor> vals = {tensor::full({n}, 1, kvactor::dtype::float32, d0),
                              tensor::full({n}, 2, kvactor::dtype::float32, d1)};
  kv.pushpull(5, vals).get();
  for (const auto& v : vals)
    expect_all(v, 3.0 * W, "pushpull in place");
  kv.barrier().get();
  // Values of one key that disagree are refused before anything moves.
  bool refused = false;
  try {
    kv.push(5, {tensor::ones({n}, kvactor::dtype::float32, d0),
                tensor::ones({n + 1}, kvactor::dtype::float32, d1)})
        .get();
  } catch (const kvactor::error& e) {
    refused = e.code() == kvactor::errc::shape_mismatch;
  }
  check(refused, "mismatched device values are refused with shape_mismatch");
  tensor host = tensor::zeros({n});
  kv.pull(5, host).get();
  expect_all(host, 3.0 * W, "the store is as it was");
  kv.barrier().get();
}

// dist_async_device: every push of a worker's device values updates at once; wait_all covers
// the calls still in the front's FIFO.
void device_async(kvactor::kvstore& kv) {
  const std::int64_t n = 33;
  const kvactor::device d0 = kvactor::device::cuda(0),
                        d1 = kvactor::device::cuda(1 % kvactor::cuda_device_count());
  kv.init(1, tensor::zeros({n})).get();
  kv.set_optimizer(kvactor::sgd_config(0.5)).get();
  kv.barrier().get();
  for (int i = 0; i < 20; ++i)
    kv.push(1, {tensor::full({n}, node::rank + 1, kvactor::dtype::float32, d0),
                tensor::full({n}, 1, kvactor::dtype::float32, d1)});
  kv.wait_all();
  check(kv.outstanding() == 0, "nothing outstanding after wait_all");
  kv.barrier().get();
  tensor out = tensor::full({n}, 1, kvactor::dtype::float32, d1);
  kv.pull(1, out).get();
  const int W = kv.num_workers();
  expect_all(out, -0.5 * 20 * (W * (W + 1) / 2.0 + W), "async sum of every device push");
}

// Gradient compression on dist stores: each worker quantizes with its residual, the servers
// decode and sum; the wire carries ceil(n / 16) words per 2-bit push.
void compressed(kvactor::kvstore& kv) {
  const std::int64_t n = 1000;
  const int W = kv.num_workers();
  kv.init(1, tensor::zeros({n})).get();
  kv.set_gradient_compression("2bit", 0.5).get();
  const std::string prof =
      "/tmp/kvactor-gc-" + std::string{std::getenv("KVACTOR_CLUSTER_ID")} + ".json";
  if (node::rank == 0) kv.send_command_to_servers(5, "state=run").get();
  kv.barrier().get();
  // 0.3 per push: codes 0, +t (r = 0.1), 0, +t (r = -0.3 + 0.5?)... computed like the rule.
  float r = 0.0f;
  for (int step = 0; step < 4; ++step) {
    float code = 0.0f;
    r += 0.3f;
    if (r >= 0.5f) {
      r -= 0.5f;
      code = 0.5f;
    } else if (r <= -0.5f) {
      r += 0.5f;
      code = -0.5f;
    }
    tensor out = tensor::zeros({n});
    kv.pushpull(1, tensor::full({n}, 0.3), out).get();
    check(out.cdata<float>()[0] == code * W && out.cdata<float>()[n - 1] == code * W,
          "compressed round " + std::to_string(step) + ": " + std::to_string(out.at(0)));
  }
  kv.barrier().get();
  if (node::rank == 0) {
    kv.send_command_to_servers(5, "state=stop,filename=" + prof).get();
    std::FILE* f = std::fopen((prof + ".server0").c_str(), "r");
    check(f != nullptr, "profile written");
    char buf[512] = {0};
    check(std::fread(buf, 1, sizeof buf - 1, f) > 0, "profile read");
    std::fclose(f);
    std::remove((prof + ".server0").c_str());
    const std::string p{buf};
    // pushpull counts with pushpull: 4 rounds x W workers x ceil(1000 / 16) words x 4 bytes.
    const auto at = p.find("\"pushpull\":{\"count\":");
    check(at != std::string::npos, "profile: " + p);
    const auto bytes = std::stoull(p.substr(p.find("\"bytes_in\":", at) + 11));
    check(bytes == static_cast<unsigned long long>(4 * W * 63 * 4), "compressed wire bytes: " + p);
  }
}

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

}  // namespace

int main(int argc, char** argv) {
  auto store_of = [](const std::string& scenario) {
    return scenario == "async"           ? "dist_async"
           : scenario == "device_values" ? "dist_sync_device"
           : scenario == "device_async"  ? "dist_async_device"
                                         : "dist_sync";
  };
  const node::scenario_table scenarios = {
      {"sync_rounds", sync_rounds},
      {"string_keys", string_keys},
      {"async", async_updates},
      {"commands", commands},
      {"priority", priority},
      {"until_failure", until_failure},
      {"steady", steady},
      {"checkpoint", checkpoint},
      {"sparse", sparse},
      {"compressed", compressed},
      {"device_values", device_values},
      {"device_async", device_async},
      {"empty", [](kvactor::kvstore&) {}},
      // A handle assigned over the store ends it as its destructor would (orderly).
      {"reassigned",
       [](kvactor::kvstore& kv) {
         kv.init(1, tensor::ones({4})).get();
         kv = kvactor::kvstore{};
         if (kv.valid()) fail("the handle is still valid after the assignment");
       }},
      {"limits", limits},
      {"refused_round", refused_round},
      {"departed", departed},
  };
  return node::run_node(argc, argv, "sync_rounds", store_of, scenarios);
}
