#include <kvactor/kvstore.hpp>

#include <cstdio>

int main() {
  auto kv = kvactor::create("local");
  kv.init(3, kvactor::tensor::ones({2, 3})).get();
  kv.push(3, {kvactor::tensor::ones({2, 3}), kvactor::tensor::ones({2, 3})});
  auto out = kvactor::tensor::zeros({2, 3});
  kv.pull(3, out).get();
  std::printf("consumer: %g\n", out.at(5));
  return out.at(5) == 2.0 ? 0 : 1;
}
