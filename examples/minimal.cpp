// kvactor in one page: MXNet's KVStore API from C++.
#include <iostream>
#include <vector>

#include "kvactor/kvstore.hpp"

using kvactor::tensor;

static void show(const char* what, const tensor& t) {
  std::cout << what << ':';
  for (double x : t.to_vector())
    std::cout << ' ' << x;
  std::cout << '\n';
}

int main() {
  const kvactor::shape shape{2, 3};
  auto kv = kvactor::create("local");

  // Every call returns a future at once; get() waits and throws kvactor::error on failure.
  kv.init(3, tensor::ones(shape)).get();
  kv.init({5, 7}, {tensor::zeros(shape), tensor::zeros(shape)}).get();  // one value per key

  // One value per device: push sums them. No wait is needed between push and pull: a pull
  // sees every earlier push of the same key, and reading `a` waits for the pull to land.
  std::vector<tensor> grads(4);
  for (auto& g : grads)
    g = tensor::ones(shape);
  kv.push(3, grads);
  tensor a = tensor::zeros(shape);
  kv.pull(3, a);
  show("push 4 x ones, pull", a);

  // With an updater, push runs updater(key, merged, stored) instead of storing the sum.
  // MXNet's documentation example:
  kv.set_updater([](const kvactor::key&, const tensor& input, tensor& stored) {
    float* s = stored.data<float>();
    const float* in = input.data<float>();
    for (std::size_t i = 0; i < stored.size(); ++i)
      s[i] += in[i] * 2;
  });
  kv.pull(3, a);
  show("set_updater, pull", a);
  kv.push(3, tensor::ones(shape));
  kv.pull(3, a);
  show("push ones, pull", a);
  kv.pushpull(3, tensor::ones(shape), a).get();
  show("pushpull ones", a);

  // String keys live in a store of their own (one store never mixes key kinds).
  auto named = kvactor::create("local");
  named.init("weight", tensor::full(shape, 0.5)).get();
  tensor w = tensor::zeros(shape);
  // then() runs on a store thread when the pull is done: keep it short.
  auto first = named.pull("weight", w).then([&w](const kvactor::future<void>& done) {
    done.get();  // rethrows the pull's error, which then becomes `first`'s error
    return w.at(0);
  });
  std::cout << "then(): weight[0] = " << first.get() << '\n';

  try {
    kv.pull(42, a).get();
  } catch (const kvactor::error& e) {
    std::cout << "error: " << kvactor::to_string(e.code()) << ": " << e.message() << '\n';
  }
}
