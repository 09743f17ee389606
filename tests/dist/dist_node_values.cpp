// dist_node scenarios on what values travel: row-sparse rows, device values and
// gradient compression.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "dist_node.hpp"
#include "kvactor/cuda.hpp"
#include "kvactor/kvstore.hpp"

namespace kvactor::testing::dist_node {

using node::check;
using node::fail;

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

}  // namespace kvactor::testing::dist_node
