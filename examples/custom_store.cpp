// A store type of your own behind kvactor's kvstore API (MXNet's KVStoreBase.register): derive
// from kvactor::custom_store, override what the store supports, register a factory under a
// name, and create("name") returns it. Everything not overridden completes with
// errc::unsupported.
#include <iostream>
#include <memory>
#include <mutex>
#include <vector>

#include "kvactor/custom_store.hpp"

using kvactor::tensor;

namespace {

// MXNet's TestStore: pushpull sums the values given for a key (one per device) and writes the
// sum to the outputs, or back into the values; broadcast copies a value into the outputs.
class summing_store : public kvactor::custom_store {
 public:
  kvactor::future<void> pushpull(const kvactor::key_list& keys, const kvactor::value_list& values,
                                 const kvactor::value_list& outs, int) override {
    // Called from every thread that uses the kvstore: this store serialises its calls.
    std::lock_guard<std::mutex> lock(mu_);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      auto vals = tensors_of(keys, values, i);
      tensor sum = tensor::zeros(vals.front().shape(), vals.front().dtype());
      for (const auto& v : vals)
        for (std::size_t j = 0; j < sum.size(); ++j)
          sum.set(j, sum.at(j) + v.at(j));
      for (auto& out : outs.empty() ? vals : tensors_of(keys, outs, i))
        sum.copy_to(out);
    }
    return kvactor::future<void>::ready_with({});
  }

  kvactor::future<void> broadcast(const kvactor::key_list& keys, const kvactor::value_list& values,
                                  const kvactor::value_list& outs, int) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (std::size_t i = 0; i < keys.size(); ++i)
      for (auto& out : tensors_of(keys, outs, i))
        tensors_of(keys, values, i).front().copy_to(out);
    return kvactor::future<void>::ready_with({});
  }

 private:
  // The tensors a call gives its i-th key: one, one per device, or a list per key.
  static std::vector<tensor> tensors_of(const kvactor::key_list& keys, const kvactor::value_list& v,
                                        std::size_t i) {
    switch (v.shape()) {
      case kvactor::value_list::form::single:
        return {v.single()};
      case kvactor::value_list::form::list:
        return keys.is_list() ? std::vector<tensor>{v.flat()[i]} : v.flat();
      case kvactor::value_list::form::nested:
        return v.nested()[i];
      case kvactor::value_list::form::none:
        break;
    }
    throw kvactor::error{kvactor::errc::invalid_argument, "no tensors given"};
  }

  std::mutex mu_;
};

}  // namespace

int main() {
  kvactor::register_store(
      "summing", [](const kvactor::options&) { return std::make_unique<summing_store>(); });
  auto kv = kvactor::create("summing");
  std::cout << "type: " << kv.type() << '\n';

  const kvactor::shape shape{2, 3};
  tensor out = tensor::zeros(shape);
  kv.broadcast(3, tensor::full(shape, 5), out).get();
  std::cout << "broadcast: " << out.at(0) << '\n';

  // Two devices' values, summed.
  kv.pushpull(3, {tensor::ones(shape), tensor::full(shape, 2)}, out).get();
  std::cout << "pushpull: " << out.at(0) << '\n';

  // Not capable of "optimizer": set_optimizer is refused without reaching the store.
  const auto st = kv.set_optimizer(kvactor::sgd_config(0.1)).get_status();
  std::cout << "optimizer capable: " << kv.is_capable("optimizer")
            << ", set_optimizer: " << st.to_string() << '\n';

  const bool ok =
      kv.type() == "summing" && out.at(0) == 3 && st.code() == kvactor::errc::unsupported;
  return ok ? 0 : 1;
}
