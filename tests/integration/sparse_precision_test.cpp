// Row-sparse pushes under multi-precision on the local and device stores: float16 and
// bfloat16 weights updated row by row through float32 masters, with exact values (issue 11
// item 1; the cluster side is tests/dist/sparse_cluster_test.cpp). With devices (emulated in
// CI: emulated.test_sparse_precision) the keys start on them: the device store's row-sparse
// push then moves a key, its master and all, to host memory.
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "kvactor/cuda.hpp"
#include "kvactor/kvstore.hpp"
#include "kvactor/row_sparse.hpp"

using kvactor::dtype;
using kvactor::row_sparse_tensor;
using kvactor::tensor;

namespace {

struct param {
  std::string store;
  dtype t;
  bool on_device;  // the key's initial value (and so the key) on cuda(0)
};

std::string name_of(const param& p) {
  return p.store + "_" + kvactor::to_string(p.t) + (p.on_device ? "_device" : "_host");
}

// gtest names the parameter with this (and not with its bytes).
void PrintTo(const param& p, std::ostream* os) {
  *os << name_of(p);
}

class SparsePrecision : public ::testing::TestWithParam<param> {
 protected:
  void SetUp() override {
    if (GetParam().on_device && kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  }
  tensor initial(const kvactor::shape& s) const {
    tensor x = tensor::ones(s, GetParam().t);
    return GetParam().on_device ? x.copy_to(kvactor::device::cuda(0)) : x;
  }
  kvactor::kvstore store() const {
    auto kv = kvactor::create(GetParam().store);
    auto cfg = kvactor::sgd_config(1.0);
    cfg.params["multi_precision"] = 1;
    kv.set_optimizer(cfg).get();
    return kv;
  }
};

std::vector<double> pulled(kvactor::kvstore& kv, const char* k, const kvactor::shape& s, dtype t) {
  tensor out = tensor::zeros(s, t);
  kv.pull(k, out).get();
  return out.to_vector();
}

// The issue's example: MXNet gives [[1,1,1],[0,0,0]] (row 1: 1 - 1 * 1; row 0 not pushed).
TEST_P(SparsePrecision, IssueExample) {
  const dtype t = GetParam().t;
  auto kv = store();
  kv.init("w", initial({2, 3})).get();
  kv.push("w", row_sparse_tensor::from_rows({1}, tensor::full({1, 3}, 1.0, t), {2, 3})).get();
  EXPECT_EQ(pulled(kv, "w", {2, 3}, t), (std::vector<double>{1, 1, 1, 0, 0, 0}));
}

// Each push lowers rows 0 and 2 of the master by d, a quarter of the spacing u of t below 1;
// the weights are the master rounded to nearest even: 1, 1 (a tie), 1 - u, 1 - u. A dense
// push first makes the state (on the device for the device store), the rows go on from it.
TEST_P(SparsePrecision, RowsGoOnFromTheMaster) {
  const dtype t = GetParam().t;
  const double u = t == dtype::float16 ? 1.0 / 2048 : 1.0 / 256, d = u / 4;
  auto kv = store();
  kv.init("e", initial({3, 2})).get();
  kv.push("e", tensor::zeros({3, 2}, t)).get();  // SGD with a zero gradient: no change
  const double after[] = {1.0, 1.0, 1.0 - u, 1.0 - u};
  for (int step = 0; step < 4; ++step) {
    kv.push("e", row_sparse_tensor::from_rows({0, 2}, tensor::full({2, 2}, d, t), {3, 2})).get();
    const double a = after[step];
    EXPECT_EQ(pulled(kv, "e", {3, 2}, t), (std::vector<double>{a, a, 1, 1, a, a}))
        << "step " << step + 1;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Stores, SparsePrecision,
    ::testing::Values(param{"local", dtype::float16, false}, param{"local", dtype::bfloat16, false},
                      param{"device", dtype::float16, false},
                      param{"device", dtype::bfloat16, false}, param{"local", dtype::float16, true},
                      param{"local", dtype::bfloat16, true}, param{"device", dtype::float16, true},
                      param{"device", dtype::bfloat16, true}),
    [](const auto& info) { return name_of(info.param); });

}  // namespace
