// A worker program for row-sparse outputs in real clusters (issue 11, item 6): row_sparse_pull
// fills row_sparse_output handles with exactly the requested rows, on the host (dist_sync) or
// on the worker's devices (dist_sync_device), and pull skips or refuses them (ignore_sparse).
// Exits 0 after printing "OK <scenario>", or prints "FAIL: ..." and exits 1.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kvactor/cuda.hpp"
#include "kvactor/kvstore.hpp"
#include "node_util.hpp"

using kvactor::device;
using kvactor::dtype;
using kvactor::errc;
using kvactor::row_sparse_output;
using kvactor::row_sparse_tensor;
using kvactor::tensor;

namespace {

namespace node = kvactor::testing::node;
using node::check;
using node::code_of;
using node::fail;

const kvactor::shape table{6, 2};  // 12 > KVACTOR_BIGARRAY_BOUND=8: split by rows over servers

// The pulled rows: their indices `ids`, element (r, c) holding value(r, c).
template <class F>
void expect_rows(const row_sparse_tensor& r, const std::vector<std::int64_t>& ids, F value,
                 const std::string& what) {
  check(r.defined() && r.shape() == table, what + ": a row-sparse value of the table's shape");
  const auto idx = r.host_indices().to_vector();
  check(idx.size() == ids.size(), what + ": " + std::to_string(idx.size()) + " rows");
  const auto data = r.data().copy_to(device::cpu()).to_vector();
  for (std::size_t k = 0; k < ids.size(); ++k) {
    check(idx[k] == static_cast<double>(ids[k]), what + ": index " + std::to_string(k));
    for (std::size_t c = 0; c < 2; ++c)
      if (data.at(k * 2 + c) != value(ids[k], c))
        fail(what + ": row " + std::to_string(ids[k]) + " column " + std::to_string(c) + " is " +
             std::to_string(data[k * 2 + c]));
  }
}

tensor ids(std::vector<std::int64_t> v) {
  return tensor::from(v, {static_cast<std::int64_t>(v.size())});
}

void rows_out(kvactor::kvstore& kv, bool on_devices) {
  const int W = kv.num_workers();
  const device here =
      on_devices ? device::cuda(node::rank % kvactor::cuda_device_count()) : device::cpu();
  for (dtype t : {dtype::float32, dtype::float16}) {
    const std::string what = std::string{"dtype "} + kvactor::to_string(t);
    const std::string k = std::string{"emb_"} + kvactor::to_string(t);
    tensor v = tensor::zeros(table, t);
    for (std::size_t i = 0; i < v.size(); ++i)
      v.set(i, static_cast<double>((i / 2) * 10 + i % 2));
    kv.init(k, v).get();
    row_sparse_output out{here}, wide{here, dtype::float32};
    kv.row_sparse_pull(k, {out, wide}, ids({5, 0, 3, 0})).get();
    auto initial = [](std::int64_t r, std::size_t c) { return static_cast<double>(r * 10 + c); };
    expect_rows(out.value(), {0, 3, 5}, initial, what + ": unsorted, repeated ids");
    check(out.value().device() == here && out.value().dtype() == t, what + ": where and what");
    check(wide.value().dtype() == dtype::float32, what + ": the output's own type");
    expect_rows(wide.value(), {0, 3, 5}, initial, what + ": converting output");
    kv.barrier().get();
    // Each worker pushes rows {1, 4} of value rank + 1; the round's merged rows replace the value.
    kv.push(k,
            row_sparse_tensor::from(ids({1, 4}), tensor::full({2, 2}, node::rank + 1, t), table));
    kv.row_sparse_pull(k, out, ids({4, 2})).get();
    const double sum = W * (W + 1) / 2.0;
    expect_rows(
        out.value(), {2, 4}, [&](std::int64_t r, std::size_t) { return r == 4 ? sum : 0.0; },
        what + ": after the push");
    // A bad id, or a pull that asks for sparse outputs to be written, leaves it as it was.
    check(code_of(kv.row_sparse_pull(k, out, ids({1, 6}))) == errc::out_of_range,
          what + ": id 6 is out of range");
    check(code_of(kv.pull(k, out, 0, false)) == errc::invalid_argument,
          what + ": pull refuses a row-sparse output without ignore_sparse");
    kv.pull(k, out).get();  // skipped
    expect_rows(
        out.value(), {2, 4}, [&](std::int64_t r, std::size_t) { return r == 4 ? sum : 0.0; },
        what + ": untouched");
    kv.barrier().get();
  }
  if (!on_devices && kvactor::cuda_device_count() > 0) {
    // Plain dist_sync takes host outputs only.
    row_sparse_output d{device::cuda(0)};
    check(code_of(kv.row_sparse_pull("emb_float32", d, ids({0}))) == errc::unsupported,
          "a device output is unsupported on dist_sync");
    check(!d.value().defined(), "the refused output stays empty");
  }
  kv.barrier().get();
}

}  // namespace

int main(int argc, char** argv) {
  return node::run_node(argc, argv, "host", node::on_devices_for("device"),
                        {{"host", [](kvactor::kvstore& kv) { rows_out(kv, false); }},
                         {"device", [](kvactor::kvstore& kv) {
                            check(kvactor::cuda_device_count() > 0,
                                  "devices (KVACTOR_EMULATE_CUDA=2)");
                            rows_out(kv, true);
                          }}});
}
