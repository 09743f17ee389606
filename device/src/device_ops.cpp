#include "kvactor/detail/device_ops.hpp"

#include <mutex>

#include "kvactor/detail/device_kernels.hpp"
#include "kvactor/detail/device_memory.hpp"

namespace kvactor {

std::vector<tensor> sum_on_device_async(const device_stream& s, const std::vector<tensor>& inputs,
                                        tensor& out) {
  const device d = s.device();
  std::vector<tensor> temps;
  std::vector<const void*> srcs;
  for (const auto& in : inputs) {
    if (in.device() == d) {
      srcs.push_back(in.data_unchecked());
      continue;
    }
    tensor local = tensor::empty(in.shape(), in.dtype(), d);
    device_kernels::copy_async(s, local.data_unchecked(), d, in.data_unchecked(), in.device(),
                               in.nbytes());
    srcs.push_back(local.data_unchecked());
    temps.push_back(std::move(local));
  }
  device_kernels::sum_async(s, out.dtype(), out.data_unchecked(), srcs.data(), srcs.size(),
                            out.size());
  return temps;
}

tensor pinned_empty(const shape& s, dtype t) {
  if (cuda_available()) {
    const std::size_t bytes = static_cast<std::size_t>(s.numel()) * size_of(t);
    try {
      return tensor::from_buffer(pinned_pool::global().acquire(bytes), s, t);
    } catch (const error&) {
      // No pinned memory to be had: pageable memory works too (the copies stage it).
    }
  }
  return tensor::empty(s, t);
}

void when_all_done(const std::vector<device_stream>& streams,
                   std::function<void(const status&)> fn) {
  struct countdown {
    std::mutex mu;
    std::size_t left = 0;
    status first;
    std::function<void(const status&)> fn;
  };
  auto c = std::make_shared<countdown>();
  c->left = streams.size();
  c->fn = std::move(fn);
  auto arrive = [c](const status& st, std::size_t count) {
    std::function<void(const status&)> call;
    status result;
    {
      std::lock_guard<std::mutex> g(c->mu);
      if (!st.is_ok() && c->first.is_ok()) c->first = st;
      c->left -= count;
      if (c->left != 0) return;
      call = std::move(c->fn);
      result = c->first;
    }
    call(result);
  };
  if (streams.empty()) return arrive(status{}, 0);
  for (std::size_t i = 0; i < streams.size(); ++i) {
    try {
      enqueue_callback(streams[i], [arrive](const status& st) { arrive(st, 1); });
    } catch (const std::exception& e) {
      arrive(status{errc::internal, std::string{"device completion: "} + e.what()},
             streams.size() - i);
      return;
    }
  }
}

}  // namespace kvactor
