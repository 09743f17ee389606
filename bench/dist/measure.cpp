#include "measure.hpp"

#include <algorithm>

namespace kvbench::dist {

rates block_rates(const block_times& b, std::size_t bytes_per_op) {
  rates r;
  long long first = b.t0.front(), last = b.t1.front();
  double sum = 0, op = 0;
  for (std::size_t i = 0; i < b.t0.size(); ++i) {
    const double s = double(b.t1[i] - b.t0[i]) * 1e-9;
    sum += double(b.ops_per_client * bytes_per_op) / s;
    op += s / double(b.ops_per_client);
    first = std::min(first, b.t0[i]);
    last = std::max(last, b.t1[i]);
  }
  r.per_client = sum / double(b.t0.size());
  r.op_s = op / double(b.t0.size());
  r.aggregate =
      double(b.ops_per_client * bytes_per_op * b.t0.size()) / (double(last - first) * 1e-9);
  return r;
}

void case_stats::add(const block_times& b, std::size_t bytes_per_op) {
  const rates r = block_rates(b, bytes_per_op);
  per_client.push_back(r.per_client);
  aggregate.push_back(r.aggregate);
  op_s.push_back(r.op_s);
  for (long long l : b.lat)
    lat_us.push_back(double(l) * 1e-3);
  cpu_ns += double(b.cpu_ns);
  cswitches += double(b.cswitches);
  long long first = b.t0.front(), last = b.t1.front();
  for (std::size_t i = 0; i < b.t0.size(); ++i) {
    first = std::min(first, b.t0[i]);
    last = std::max(last, b.t1[i]);
  }
  wall_ns += double(last - first);
  ops += double(b.ops_per_client * b.t0.size());
}

}  // namespace kvbench::dist
