// The device store: a key lives on a GPU, pushes from every GPU are summed there, the
// optimizer runs there, and pulls copy device to device. Without a GPU, run it with
// KVACTOR_EMULATE_CUDA=2 (two emulated devices); with none at all it says so and exits 0.
#include <cstdio>
#include <vector>

#include "kvactor/cuda.hpp"
#include "kvactor/kvstore.hpp"

using kvactor::tensor;

int main() {
  const int gpus = kvactor::cuda_device_count();
  if (gpus == 0) {
    std::puts("no CUDA device (set KVACTOR_EMULATE_CUDA=2 to emulate two)");
    return 0;
  }
  const kvactor::shape shape{1024, 256};
  auto kv = kvactor::create("device");                    // topology: options.reduction
  kv.set_optimizer(kvactor::sgd_config(0.1, 0.9)).get();  // runs on the key's GPU
  kv.init(0, tensor::zeros(shape)).get();                 // placed on the least-loaded GPU

  std::vector<tensor> grads, weights;
  for (int g = 0; g < gpus; ++g) {
    const auto d = kvactor::device::cuda(g);
    grads.push_back(tensor::ones(shape, kvactor::dtype::float32, d));
    weights.push_back(tensor::zeros(shape, kvactor::dtype::float32, d));
  }
  for (int step = 0; step < 3; ++step) {
    kv.push(0, grads);          // summed on the GPUs (finish the kernels that wrote them first)
    kv.pull(0, weights).get();  // device to device
  }
  // SGD with momentum 0.9, lr 0.1, gradient = number of GPUs: w = -0.1 * g * (1 + 1.9 + 2.71).
  const double want = -0.1 * gpus * (1 + 1.9 + 2.71);
  for (const auto& w : weights) {
    const double got = w.at(0);
    std::printf("%s: %.6f (expected %.6f)\n", w.device().to_string().c_str(), got, want);
    if (got < want - 1e-4 || got > want + 1e-4) return 1;
  }
  std::printf("%s, %d device%s: OK\n", kvactor::cuda_device_name(kvactor::device::cuda(0)).c_str(),
              gpus, gpus == 1 ? "" : "s");
  return 0;
}
