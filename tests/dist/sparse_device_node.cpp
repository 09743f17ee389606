// A worker program for row-sparse values on devices in real clusters (issue 11, items 2 and 3):
// dist_sync_device takes rows, row ids and outputs on the worker's devices, with exact results;
// plain dist_sync refuses them with unsupported. Exits 0 after printing "OK <scenario>", or
// prints "FAIL: ..." and exits 1.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kvactor/cuda.hpp"
#include "kvactor/kvstore.hpp"
#include "node_util.hpp"

using kvactor::device;
using kvactor::dtype;
using kvactor::row_sparse_tensor;
using kvactor::tensor;

namespace {

namespace node = kvactor::testing::node;
using node::check;
using node::code_of;
using node::expect_values;
using node::fail;

device dev(int i) {
  return device::cuda(i % kvactor::cuda_device_count());
}

const kvactor::shape table{6, 2};  // 12 > KVACTOR_BIGARRAY_BOUND=8: split by rows over servers

// Rows `ids` (sorted) of the table, each element `v`, rows and indices on device i.
row_sparse_tensor rows_on(std::vector<std::int64_t> ids, double v, dtype t, int i) {
  const auto n = static_cast<std::int64_t>(ids.size());
  return row_sparse_tensor::from(tensor::from(ids, {n}).copy_to(dev(i)),
                                 tensor::full({n, 2}, v, t, dev(i)), table);
}

// The table with rows `ids` set to v[k] (k-th id) and zero elsewhere.
std::vector<double> table_with(const std::vector<std::int64_t>& ids, const std::vector<double>& v) {
  std::vector<double> out(12, 0.0);
  for (std::size_t k = 0; k < ids.size(); ++k)
    out[static_cast<std::size_t>(ids[k]) * 2] = out[static_cast<std::size_t>(ids[k]) * 2 + 1] =
        v[k];
  return out;
}

void device_rows(kvactor::kvstore& kv) {
  check(kvactor::cuda_device_count() > 0, "devices are present (KVACTOR_EMULATE_CUDA=2)");
  const int W = kv.num_workers();
  const double ranks = W * (W + 1) / 2.0;  // sum of (rank + 1)
  for (dtype t : {dtype::float32, dtype::float16}) {
    const std::string what = std::string{"dtype "} + kvactor::to_string(t);
    const std::string k = std::string{"emb_"} + kvactor::to_string(t);
    // Init from rows on a device (rank 0's value counts).
    kv.init(k, rows_on({1, 4}, 3, t, 1)).get();
    tensor out = tensor::full(table, -1, t, dev(0));
    kv.pull(k, out).get();
    expect_values(out, table_with({1, 4}, {3, 3}), what + ": init from device rows");
    kv.barrier().get();
    // Each worker: rows {0, 5} on device 0 (value rank + 1) and {5} on device 1 (value 1);
    // without an optimizer the value becomes the round's merged rows.
    kv.push(k, {rows_on({0, 5}, node::rank + 1, t, 0), rows_on({5}, 1, t, 1)});
    std::vector<tensor> outs = {tensor::full(table, -1, t, dev(1)), tensor::full(table, -1, t)};
    std::vector<tensor> ids = {tensor::from<std::int64_t>({5, 0, 3}, {3}).copy_to(dev(0)),
                               tensor::from<float>({5}, {1}).copy_to(dev(1))};
    kv.row_sparse_pull(k, outs, ids).get();
    check(outs[0].device() == dev(1), what + ": the output stays on its device");
    expect_values(outs[0], table_with({0, 5}, {ranks, ranks + W}), what + ": device output");
    expect_values(outs[1], table_with({5}, {ranks + W}), what + ": host output");
    kv.barrier().get();
  }
  // Lazy SGD on the servers: only the pushed rows move.
  kv.init("w", tensor::full(table, 8, dtype::float32, dev(0))).get();
  kv.set_optimizer(kvactor::sgd_config(0.5)).get();
  kv.barrier().get();
  kv.push("w", rows_on({2}, 1, dtype::float32, 1)).get();
  kv.barrier().get();
  tensor w = tensor::full(table, -1, dtype::float32, dev(1));
  kv.row_sparse_pull("w", w, tensor::from<std::int64_t>({2, 3}, {2}).copy_to(dev(0))).get();
  expect_values(w, table_with({2, 3}, {8 - 0.5 * W, 8}), "lazy sgd on device rows");
  kv.barrier().get();
}

// Plain dist_sync takes host tensors only: device rows, outputs and ids are refused, not read.
void device_rows_refused(kvactor::kvstore& kv) {
  check(kvactor::cuda_device_count() > 0, "devices are present (KVACTOR_EMULATE_CUDA=2)");
  check(code_of(kv.init("e", rows_on({1}, 1, dtype::float32, 0))) == kvactor::errc::unsupported,
        "init from device rows is unsupported");
  kv.init("e", row_sparse_tensor::zeros(table)).get();
  check(code_of(kv.push("e", rows_on({1}, 1, dtype::float32, 1))) == kvactor::errc::unsupported,
        "a push of device rows is unsupported");
  tensor dev_out = tensor::full(table, -1, dtype::float32, dev(0));
  check(code_of(kv.row_sparse_pull("e", dev_out, tensor::from<std::int64_t>({1}, {1}))) ==
            kvactor::errc::unsupported,
        "a device output is unsupported");
  tensor out = tensor::full(table, -1);
  check(
      code_of(kv.row_sparse_pull("e", out, tensor::from<std::int64_t>({1}, {1}).copy_to(dev(1)))) ==
          kvactor::errc::unsupported,
      "device row ids are unsupported");
  expect_values(dev_out, std::vector<double>(12, -1), "the device output is untouched");
  kv.row_sparse_pull("e", out, tensor::from<std::int64_t>({1}, {1})).get();
  expect_values(out, std::vector<double>(12, 0), "the value is as it was");
  kv.barrier().get();
}

}  // namespace

int main(int argc, char** argv) {
  return node::run_node(
      argc, argv, "device_rows", node::on_devices_for("device_rows"),
      {{"device_rows", device_rows}, {"device_rows_refused", device_rows_refused}});
}
