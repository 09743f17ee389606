// Worker program of the row-sparse cluster tests (sparse_cluster_test.cpp): each scenario
// checks exact results inside a real cluster and exits 0 when they hold, or prints
// "FAIL: ..." and exits 1. Run with KVACTOR_BIGARRAY_BOUND=1000 so that the 600 x 4 keys
// below are split over the servers by rows.
//
//   sparse_node mp_rows float16|bfloat16 [store]   row-sparse pushes under multi-precision
//       (store dist_sync_device: values, rows, row ids and outputs on cuda(rank), where any)
//   sparse_node gc_rows                    row-sparse pushes while gradient compression is on
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "kvactor/cuda.hpp"
#include "kvactor/kvstore.hpp"
#include "kvactor/row_sparse.hpp"
#include "node_util.hpp"

using kvactor::dtype;
using kvactor::row_sparse_tensor;
using kvactor::tensor;

namespace {

namespace node = kvactor::testing::node;
using node::check;
using node::fail;
bool on_device_ = false;  // values, rows, row ids and outputs on a device

tensor placed(tensor x) {
  return on_device_ ? x.copy_to(kvactor::device::cuda(node::rank % kvactor::cuda_device_count()))
                    : x;
}

const kvactor::shape table{600, 4};  // 2400 elements > KVACTOR_BIGARRAY_BOUND=1000

row_sparse_tensor rows_of(std::vector<std::int64_t> ids, double v, dtype t,
                          const kvactor::shape& of = table) {
  const std::int64_t row = of.numel() / of[0];
  return row_sparse_tensor::from_rows(
      ids, placed(tensor::full({static_cast<std::int64_t>(ids.size()), row}, v, t)), of);
}

// Every element of `got` against want(row), the value its row must hold.
template <typename F>
void expect_rows(const tensor& got, F want, const std::string& what) {
  const std::size_t row = got.size() / static_cast<std::size_t>(got.shape()[0]);
  const auto xs = got.to_vector();
  for (std::size_t i = 0; i < xs.size(); ++i)
    if (xs[i] != want(static_cast<std::int64_t>(i / row)))
      fail(what + ": row " + std::to_string(i / row) + " element " + std::to_string(i % row) +
           " is " + std::to_string(xs[i]) + ", expected " +
           std::to_string(want(static_cast<std::int64_t>(i / row))));
}

// dist_sync, multi-precision SGD (lr 1, no wd, lazy row updates) on float16/bfloat16 keys
// updated by row-sparse pushes: the servers' float32 masters take the rows (issue 11 item 1).
void mp_rows(kvactor::kvstore& kv, dtype t) {
  const int W = kv.num_workers();
  check((W & (W - 1)) == 0, "mp_rows splits gradients exactly over a power of two of workers");
  auto cfg = kvactor::sgd_config(1.0);
  cfg.params["multi_precision"] = 1;
  kv.set_optimizer(cfg).get();
  // The example (MXNet: [[1,1,1],[0,0,0]]): row 1 gets 1 in all (1 / W per worker),
  // so it becomes 1 - 1 * 1 = 0; row 0, not pushed, stays 1.
  kv.init("w", placed(tensor::ones({2, 3}, t))).get();
  kv.push("w", rows_of({1}, 1.0 / W, t, {2, 3})).get();
  tensor w = placed(tensor::zeros({2, 3}, t));
  kv.pull("w", w).get();
  expect_rows(
      w, [](std::int64_t r) { return r == 0 ? 1.0 : 0.0; }, "the issue's example");

  // A key split over the servers, rows on both sides of the split, one row per worker too.
  // Each round lowers a pushed row's master by d, a quarter of the spacing u of t just below
  // 1 (float16 2^-11, bfloat16 2^-8). The weight is the master rounded to t, to nearest
  // even: after rounds 1..4 it is 1, 1 (1 - 2d is a tie), 1 - u, 1 - u; an update of the
  // weight itself, without the master, would stay at 1 for ever.
  const double u = t == dtype::float16 ? 1.0 / 2048 : 1.0 / 256, d = u / 4;
  const double after[] = {1.0, 1.0, 1.0 - u, 1.0 - u};
  kv.init("emb", placed(tensor::ones(table, t))).get();
  const std::vector<std::int64_t> shared = {0, 299, 300, 599};
  auto pushed = [&](std::int64_t r) {
    for (auto s : shared)
      if (r == s) return true;
    return r >= 100 && r < 100 + W;
  };
  for (int round = 0; round < 4; ++round) {
    // Worker rank pushes the shared rows (d / W each) and row 100 + rank alone (d).
    std::vector<std::int64_t> ids = shared;
    ids.insert(ids.begin() + 1, 100 + node::rank);
    std::vector<double> vals(ids.size() * 4, d / W);
    for (int c = 0; c < 4; ++c)
      vals[4 + static_cast<std::size_t>(c)] = d;
    tensor data = tensor::from(vals, {static_cast<std::int64_t>(ids.size()), 4}).astype(t);
    kv.push("emb", row_sparse_tensor::from_rows(ids, placed(data), table)).get();
    const std::string what = "round " + std::to_string(round + 1);
    tensor all = placed(tensor::zeros(table, t));
    kv.pull("emb", all).get();
    expect_rows(
        all, [&](std::int64_t r) { return pushed(r) ? after[round] : 1.0; }, what + ", pull");
    tensor some = placed(tensor::full(table, -1, t));
    kv.row_sparse_pull("emb", some, placed(tensor::from<std::int64_t>({300, 100, 7}, {3}))).get();
    expect_rows(
        some,
        [&](std::int64_t r) { return r == 300 || r == 100 ? after[round]
                                     : r == 7             ? 1.0
                                                          : 0.0; },
        what + ", row_sparse_pull");
  }
  check(after[3] != 1.0, "the rounds reach a value only the master can");
}

// dist_sync with 2-bit compression (threshold 0.5) and no optimizer: dense pushes are
// quantized with each worker's residual; row-sparse pushes travel and merge exactly (MXNet
// refuses them; kvactor keeps the superset, see kvstore.hpp) and leave the residuals alone.
void gc_rows(kvactor::kvstore& kv) {
  const int W = kv.num_workers();
  kv.init("emb", tensor::zeros(table)).get();
  kv.init("half", tensor::zeros({2, 3}, dtype::float16)).get();
  kv.set_gradient_compression("2bit", 0.5).get();
  tensor out = tensor::full(table, -1);
  // 0.3 per element: residual 0.3, code 0 on every worker.
  kv.pushpull("emb", tensor::full(table, 0.3), out).get();
  expect_rows(
      out, [](std::int64_t) { return 0.0; }, "compressed pushpull 1");
  // Exact rows: 0.3 from every worker on the shared rows, 0.3 from one on row 590 + rank.
  kv.push("emb", rows_of({5, 299, 300, 590 + node::rank}, 0.3, dtype::float32)).get();
  float sum = 0;
  for (int w = 0; w < W; ++w)
    sum += 0.3f;
  kv.pull("emb", out).get();
  expect_rows(
      out,
      [&](std::int64_t r) {
        if (r == 5 || r == 299 || r == 300) return static_cast<double>(sum);
        return r >= 590 && r < 590 + W ? static_cast<double>(0.3f) : 0.0;
      },
      "row-sparse push under compression");
  // The residuals still hold 0.3: 0.3 more makes 0.6 >= 0.5, code 0.5 on every worker.
  kv.pushpull("emb", tensor::full(table, 0.3), out).get();
  expect_rows(
      out, [&](std::int64_t) { return 0.5 * W; }, "compressed pushpull 2");
  // float16: dense pushes are refused while compression is on (it compresses float32);
  // row-sparse pushes are not compressed, so they are taken.
  const auto st = kv.push("half", tensor::ones({2, 3}, dtype::float16)).get_status();
  check(st.code() == kvactor::errc::unsupported, "dense float16 push: " + st.to_string());
  kv.push("half", rows_of({1}, 0.25, dtype::float16, {2, 3})).get();
  tensor h = tensor::zeros({2, 3}, dtype::float16);
  kv.pull("half", h).get();
  expect_rows(
      h, [&](std::int64_t r) { return r == 1 ? 0.25 * W : 0.0; }, "float16 rows");
}

}  // namespace

int main(int argc, char** argv) {
  const std::string type_name = argc > 2 ? argv[2] : "float16";
  const std::string store = argc > 3 ? argv[3] : "dist_sync";
  const dtype t = type_name == "bfloat16" ? dtype::bfloat16 : dtype::float16;
  on_device_ = store == "dist_sync_device" && kvactor::cuda_device_count() > 0;
  return node::run_node(
      argc, argv, "", [&](const std::string&) { return store; },
      {{"mp_rows", [t](kvactor::kvstore& kv) { mp_rows(kv, t); }}, {"gc_rows", gc_rows}},
      [] { return on_device_ ? " with device values" : ""; });
}
