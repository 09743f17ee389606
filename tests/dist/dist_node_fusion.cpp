// dist_node's scenario on fusion of small keys: hundreds of small keys in one call, each key's
// own order kept while its pushes and pulls carry different priorities, and one key's error on
// the servers leaving its batch-mates' results standing. The same scenario runs with fusion
// off, with a window and with fusion on (fusion_test.cpp): the results must not differ.
#include <string>
#include <vector>

#include "dist_node.hpp"
#include "kvactor/kvstore.hpp"
#include "kvactor/serialization/optimizer_config.hpp"

namespace kvactor::testing::dist_node {

using node::check;
using node::fail;

namespace {

// Key i holds 1 + i % 37 floats (4 to 148 bytes): small, of many sizes.
kvactor::shape shape_of(int i) {
  return kvactor::shape{1 + i % 37};
}

}  // namespace

void fusion(kvactor::kvstore& kv) {
  const int W = kv.num_workers();
  const double sum_ranks = W * (W + 1) / 2.0;  // sum of (rank + 1)
  constexpr int n = 300;
  std::vector<kvactor::key> keys;
  std::vector<tensor> values, outs;
  for (int i = 0; i < n; ++i) {
    keys.emplace_back(std::int64_t{1000 + i});
    values.push_back(tensor::full(shape_of(i), i));
    outs.push_back(tensor::zeros(shape_of(i)));
  }
  kv.init(keys, values).get();
  kv.pull(keys, outs).get();
  for (int i = 0; i < n; ++i)
    expect_all(outs[i], i, "key " + std::to_string(1000 + i) + " after init");

  // Rounds: every key pushed with a priority of its own, then pulled with another, all issued
  // before any is waited for; a worker's pull after its push sees the round's sum.
  for (int round = 1; round <= 3; ++round) {
    std::vector<kvactor::future<void>> fs;
    for (int i = 0; i < n; ++i)
      fs.push_back(
          kv.push(keys[i], tensor::full(shape_of(i), (node::rank + 1) * round * (i + 1)), i % 7));
    for (int i = 0; i < n; ++i)
      fs.push_back(kv.pull(keys[i], outs[i], (i * 3) % 5 - 2));
    for (auto& f : fs)
      f.get();
    for (int i = 0; i < n; ++i)
      expect_all(outs[i], sum_ranks * round * (i + 1),
                 "round " + std::to_string(round) + " key " + std::to_string(1000 + i));
  }
  // One call of many keys: pushpull.
  std::vector<tensor> grads;
  for (int i = 0; i < n; ++i)
    grads.push_back(tensor::full(shape_of(i), 1));
  kv.pushpull(keys, grads, outs).get();
  for (int i = 0; i < n; ++i)
    expect_all(outs[i], W, "pushpull key " + std::to_string(1000 + i));

  // One key's error: SGD updates floating-point weights only, so an int32 key's round fails
  // on its server, while the float keys pushed in the same call are updated.
  const kvactor::key bad{std::int64_t{5000}};
  kv.init(bad, tensor::zeros(kvactor::shape{3}, kvactor::dtype::int32)).get();
  kv.set_optimizer(kvactor::sgd_config(0.5)).get();
  kv.barrier().get();
  std::vector<kvactor::key> mixed(keys.begin(), keys.begin() + 20);
  std::vector<tensor> mixed_grads(grads.begin(), grads.begin() + 20);
  mixed.insert(mixed.begin() + 10, bad);
  mixed_grads.insert(mixed_grads.begin() + 10,
                     tensor::full(kvactor::shape{3}, 1, kvactor::dtype::int32));
  const kvactor::status e = kv.push(mixed, mixed_grads).get_status();
  check(!e.is_ok(), "the int32 key's push under SGD failed");
  check(e.message().find("5000") != std::string::npos,
        "the failure names the int32 key: " + e.to_string());
  for (int i = 0; i < 20; ++i) {
    kv.pull(keys[i], outs[i]).get();
    expect_all(outs[i], W - 0.5 * W, "key " + std::to_string(1000 + i) + " updated beside it");
  }
}

}  // namespace kvactor::testing::dist_node
