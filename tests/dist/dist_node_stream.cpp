// dist_node scenario on pushes summed into their round as they arrive (the server's push
// intake, actors/src/dist/push_intake.hpp): keys whose parts are big enough for it, of several
// element types, exact values per element after every round, with pushes in flight (a worker's
// next push arrives while its round is open and takes the ordinary way), pushpull, an
// optimizer.
#include <string>
#include <vector>

#include "dist_node.hpp"
#include "kvactor/kvstore.hpp"

namespace kvactor::testing::dist_node {

namespace {

// 300000 float32, 200000 float16, 100000 int32: parts of 200-600 KB on two servers, above the
// 64 KiB a server's I/O thread serves itself.
const std::vector<key> keys{20, 21, 22};
const std::vector<kvactor::shape> shapes{{300000}, {200000}, {100000}};
const std::vector<dtype> types{dtype::float32, dtype::float16, dtype::int32};

// Worker `rank`'s push in round r: element i is (rank + 1) * (i % 7) + r.
tensor push_value(std::size_t k, int rank, int r) {
  tensor t = tensor::zeros(shapes[k], types[k]);
  for (std::size_t i = 0; i < t.size(); ++i)
    t.set(i, (rank + 1) * static_cast<double>(i % 7) + r);
  return t;
}

// What every element holds after a round r that replaced the value (no optimizer).
void expect_round(const tensor& got, int workers, int r, const std::string& what) {
  const double ranks = workers * (workers + 1) / 2.0;
  const auto xs = got.to_vector();
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double want = ranks * static_cast<double>(i % 7) + workers * r;
    if (xs[i] != want)
      node::fail(what + ": element " + std::to_string(i) + " is " + std::to_string(xs[i]) +
                 ", expected " + std::to_string(want));
  }
}

std::vector<tensor> outputs() {
  std::vector<tensor> outs;
  for (std::size_t k = 0; k < keys.size(); ++k)
    outs.push_back(tensor::zeros(shapes[k], types[k]));
  return outs;
}

std::vector<tensor> pushes(int rank, int r) {
  std::vector<tensor> v;
  for (std::size_t k = 0; k < keys.size(); ++k)
    v.push_back(push_value(k, rank, r));
  return v;
}

}  // namespace

void streamed_rounds(kvactor::kvstore& kv) {
  const int W = kv.num_workers();
  std::vector<tensor> init;
  for (std::size_t k = 0; k < keys.size(); ++k)
    init.push_back(tensor::zeros(shapes[k], types[k]));
  kv.init(keys, init).get();
  // One round at a time.
  for (int r = 1; r <= 3; ++r) {
    kv.push(keys, pushes(node::rank, r));
    auto outs = outputs();
    kv.pull(keys, outs).get();
    for (std::size_t k = 0; k < keys.size(); ++k)
      expect_round(outs[k], W, r, "round " + std::to_string(r) + " key " + keys[k].to_string());
  }
  // Two rounds in flight per worker: the second push of each arrives while its first's round
  // is open.
  for (int r = 4; r <= 8; r += 2) {
    auto first = kv.push(keys, pushes(node::rank, r));
    auto second = kv.push(keys, pushes(node::rank, r + 1));
    auto outs = outputs();
    kv.pull(keys, outs).get();
    first.get();
    second.get();
    for (std::size_t k = 0; k < keys.size(); ++k)
      expect_round(outs[k], W, r + 1,
                   "rounds in flight " + std::to_string(r + 1) + " key " + keys[k].to_string());
  }
  // pushpull answers with the round's result.
  for (int r = 10; r <= 11; ++r) {
    auto outs = outputs();
    kv.pushpull(keys, pushes(node::rank, r), outs).get();
    for (std::size_t k = 0; k < keys.size(); ++k)
      expect_round(outs[k], W, r, "pushpull " + std::to_string(r) + " key " + keys[k].to_string());
  }
  kv.barrier().get();
  // SGD once per round on the streamed sum: w -= 0.5 * sum (float32 key only).
  kv.set_optimizer(kvactor::sgd_config(0.5)).get();
  kv.barrier().get();
  tensor w = tensor::zeros(shapes[0]);
  kv.pull(keys[0], w).get();
  std::vector<double> expect = w.to_vector();
  for (int r = 0; r < 2; ++r) {
    kv.pushpull(keys[0], tensor::full(shapes[0], node::rank + 1), w).get();
    for (auto& x : expect)
      x = static_cast<double>(static_cast<float>(x) - 0.5f * static_cast<float>(W * (W + 1) / 2));
    const auto got = w.to_vector();
    for (std::size_t i = 0; i < got.size(); ++i)
      if (got[i] != expect[i])
        node::fail("sgd round " + std::to_string(r) + ": element " + std::to_string(i) + " is " +
                   std::to_string(got[i]) + ", expected " + std::to_string(expect[i]));
  }
}

}  // namespace kvactor::testing::dist_node
