// A worker program for tests/dist/rules_test.cpp: MXNet's pull rules (issue 11 items 4 and
// 5) in a real cluster. Each scenario checks exact results, then prints "OK <scenario>" and
// exits 0 (or prints "FAIL: ..." and exits 1).
//   row_ids      (dist_sync): row ids of any shape read flat; bad float ids refused whole
//   casts        (dist_sync): float16 / bfloat16 keys pulled into float32 outputs, and back
//   device_casts (dist_sync_device, on devices): the same with device values and outputs
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kvactor/cuda.hpp"
#include "kvactor/kvstore.hpp"
#include "node_util.hpp"

using kvactor::dtype;
using kvactor::tensor;

namespace {

namespace node = kvactor::testing::node;
using node::check;
using node::expect_values;
using node::fail;

void expect_code(kvactor::future<void> f, kvactor::errc code, const std::string& what) {
  check(f.wait_for(std::chrono::seconds(10)), what + ": no answer within 10 s");
  const auto st = f.get_status();
  check(st.code() == code,
        what + ": expected " + kvactor::to_string(code) + ", got " + st.to_string());
}

const kvactor::shape s43{4, 3};

// Element i is i / 2: exact in float16, bfloat16 and float32.
tensor halves(dtype t, kvactor::device d = kvactor::device::cpu()) {
  tensor x = tensor::zeros(s43, t);
  for (std::size_t i = 0; i < x.size(); ++i)
    x.set(i, static_cast<double>(i) / 2);
  return d.is_cpu() ? x : x.copy_to(d);
}

// The rows of halves() times `scale`, zero elsewhere.
std::vector<double> rows(std::vector<int> rs, double scale = 1) {
  std::vector<double> v(12, 0.0);
  for (int r : rs)
    for (int c = 0; c < 3; ++c)
      v[static_cast<std::size_t>(r * 3 + c)] = scale * (r * 3 + c) / 2.0;
  return v;
}

void row_ids(kvactor::kvstore& kv) {
  kv.init("w", halves(dtype::float32)).get();
  tensor out = tensor::full(s43, -1);
  // MXNet: a (2, 2) float32 id array {0, 2, 2, 0} pulls rows {0, 2}.
  kv.row_sparse_pull("w", out, tensor::from<float>({0, 2, 2, 0}, {2, 2})).get();
  expect_values(out, rows({0, 2}), "(2, 2) float ids");
  kv.row_sparse_pull("w", out, tensor::from<std::int64_t>({3, 1, 3, 3}, {2, 1, 2})).get();
  expect_values(out, rows({1, 3}), "(2, 1, 2) int64 ids");
  tensor fresh = tensor::full(s43, -1);
  expect_code(kv.row_sparse_pull("w", fresh, tensor::from<float>({0.5f}, {1, 1})),
              kvactor::errc::invalid_argument, "a fractional id");
  expect_code(kv.row_sparse_pull("w", fresh, tensor::from<float>({-1, 0}, {2, 1})),
              kvactor::errc::out_of_range, "a negative id");
  expect_code(kv.row_sparse_pull("w", fresh, tensor::from<double>({4}, {1})),
              kvactor::errc::out_of_range, "an id past the last row");
  expect_values(fresh, std::vector<double>(12, -1), "refused pulls wrote nothing");
  kv.barrier().get();
}

void casts(kvactor::kvstore& kv) {
  const int W = kv.num_workers();
  for (dtype t : {dtype::float16, dtype::bfloat16}) {
    const std::string k = std::string{"w_"} + kvactor::to_string(t);
    kv.init(k, halves(t)).get();
    tensor out = tensor::full(s43, -1, dtype::float32);
    kv.row_sparse_pull(k, out, tensor::from<std::int64_t>({2, 0}, {2})).get();
    expect_values(out, rows({0, 2}), k + ": row_sparse_pull into float32");
    // A push round of every worker, then a dense pull into float32 and float64 outputs.
    kv.push(k, halves(t));
    tensor f32 = tensor::full(s43, -1), f64 = tensor::full(s43, -1, dtype::float64);
    kv.pull(k, {f32, f64}).get();
    expect_values(f32, rows({0, 1, 2, 3}, W), k + ": pull into float32");
    expect_values(f64, rows({0, 1, 2, 3}, W), k + ": pull into float64");
    // pushpull writes the round's sum into a float32 output.
    kv.pushpull(k, halves(t), f32).get();
    expect_values(f32, rows({0, 1, 2, 3}, W), k + ": pushpull into float32");
    kv.barrier().get();
  }
  // float32 into float16; a push keeps its rule (values of the key's type).
  kv.init("f32", halves(dtype::float32)).get();
  tensor h = tensor::full(s43, -1, dtype::float16);
  kv.row_sparse_pull("f32", h, tensor::from<float>({1, 3}, {2, 1})).get();
  expect_values(h, rows({1, 3}), "float32 into float16");
  expect_code(kv.push("f32", halves(dtype::float16)), kvactor::errc::dtype_mismatch,
              "a float16 push into a float32 key");
  kv.barrier().get();
}

void device_casts(kvactor::kvstore& kv) {
  const int W = kv.num_workers();
  const kvactor::device d0 = kvactor::device::cuda(0),
                        d1 = kvactor::device::cuda(1 % kvactor::cuda_device_count());
  kv.init("w", halves(dtype::float16)).get();
  kv.push("w", {halves(dtype::float16, d0), halves(dtype::float16, d1)});
  std::vector<tensor> outs = {tensor::full(s43, -1, dtype::float32, d0),
                              tensor::full(s43, -1, dtype::float64, d1),
                              tensor::full(s43, -1, dtype::float32)};
  kv.pull("w", outs).get();
  for (const auto& o : outs)
    expect_values(o, rows({0, 1, 2, 3}, 2.0 * W), "pull into " + o.describe());
  check(!outs[0].device().is_cpu() && !outs[1].device().is_cpu(), "outputs stay on devices");
  tensor host = tensor::full(s43, -1, dtype::float32);
  kv.row_sparse_pull("w", host, tensor::from<float>({3, 0, 3, 0}, {2, 2})).get();
  expect_values(host, rows({0, 3}, 2.0 * W), "row_sparse_pull into a float32 host output");
  kv.barrier().get();
}

}  // namespace

int main(int argc, char** argv) {
  return node::run_node(argc, argv, "row_ids", node::on_devices_for("device_casts"),
                        {{"row_ids", row_ids}, {"casts", casts}, {"device_casts", device_casts}});
}
